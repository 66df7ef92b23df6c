// SAE stage against the Hugging Face reference: all 12 fixture SAEs found by SaeLocator, their
// latents and errors on the reference activations, the SAELens layout, and the load/locate errors.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <fstream>

#include "sfc/core/error.h"
#include "sfc/io/npz.h"
#include "sfc/sae/sae.h"
#include "support/expect_load_error.h"
#include "support/safetensors_bytes.h"
#include "support/tensor_compare.h"
#include "support/test_support.h"

namespace {

namespace fs = std::filesystem;
using sfc::Site;
using sfc::io::NpzFile;
using sfc::sae::JumpReluSae;
using sfc::sae::load_sae;
using sfc::sae::SaeLocator;
using sfc::sae::SaeSelection;
using sfc::test::close_rel_max;
using sfc::test::TempDir;
using sfc::test::throws_load_error;

constexpr int64_t kLayers = 4, kD = 64, kAttnWidth = 96, kF = 112;
constexpr double kTol = 1e-4;  // fixture README: relative to each array's largest magnitude

fs::path sae_root() { return sfc::test::tiny_dir() / "saes"; }
int64_t width_of(Site s) { return s == Site::kAttn ? kAttnWidth : kD; }

const NpzFile& reference() {
  static const NpzFile f(sfc::test::tiny_dir() / "reference.npz");
  return f;
}

// Site input as the SAE sees it: (B, T, W); the attn site is z (B, T, H, Dh) flattened head-major.
torch::Tensor site_input(Site s, int64_t layer, const std::string& run) {
  const std::string L = run + ".L" + std::to_string(layer) + ".";
  switch (s) {
    case Site::kResid: return reference().load(L + "resid_post");
    case Site::kMlp: return reference().load(L + "mlp_out");
    case Site::kAttn: return reference().load(L + "z").flatten(2);
  }
  return {};
}

TEST(Sae, AllFixtureSaesMatchReference) {
  SaeLocator locator(sae_root());
  for (Site s : sfc::kAllSites) {
    for (int64_t layer = 0; layer < kLayers; ++layer) {
      const std::string tag = std::string("sae.") + sfc::site_name(s) + ".L" + std::to_string(layer);
      const fs::path where = locator.locate(s, layer);
      JumpReluSae sae = load_sae(where, width_of(s));
      EXPECT_EQ(sae.d_in(), width_of(s)) << tag;
      EXPECT_EQ(sae.d_sae(), kF) << tag;
      EXPECT_EQ(sae.source, where) << tag;
      for (const std::string run : {"clean", "patch"}) {
        auto x = site_input(s, layer, run);  // (B, T, W)
        auto f = sae.encode(x);              // (B, T, F)
        auto e = sae.error(x);               // (B, T, W)
        auto f_ref = reference().load(tag + ".f_" + run);
        auto e_ref = reference().load(tag + ".e_" + run).flatten(2);  // attn stored as (B, T, H, Dh)
        EXPECT_TRUE(close_rel_max(f, f_ref, kTol, tag + ".f_" + run));
        EXPECT_TRUE(close_rel_max(e, e_ref, kTol, tag + ".e_" + run));
        // The gate pattern must match exactly: thresholds sit far from every pre-activation.
        EXPECT_TRUE(torch::equal(f > 0, f_ref > 0)) << tag << " " << run;
        // Splice identity: decode(encode(x)) + error(x) == x.
        EXPECT_TRUE(close_rel_max(sae.decode(f) + e, x, 1e-5, tag + " splice"));
      }
    }
  }
}

TEST(Sae, LocatorFollowsCanonicalJson) {
  SaeLocator locator(sae_root());
  EXPECT_EQ(locator.locate(Site::kAttn, 3),
            sae_root() / "gemma-scope-tiny-pt-att/layer_3/width_112/average_l0_26/params.npz");
  SaeLocator explicit_sel(sae_root(), {"gemma-scope-tiny-pt", "112", "canonical"});
  EXPECT_EQ(explicit_sel.locate(Site::kMlp, 0),
            sae_root() / "gemma-scope-tiny-pt-mlp/layer_0/width_112/average_l0_29/params.npz");
  SaeLocator by_l0(sae_root(), {"", "", "100"});  // nearest L0 of the only folder
  EXPECT_EQ(by_l0.locate(Site::kResid, 1),
            sae_root() / "gemma-scope-tiny-pt-res/layer_1/width_112/average_l0_28/params.npz");
}

TEST(Sae, DtypeAndFolderArgument) {
  const fs::path dir = sae_root() / "gemma-scope-tiny-pt-res/layer_0/width_112/average_l0_29";
  JumpReluSae a = load_sae(dir, kD, torch::kBFloat16);  // folder holding params.npz
  EXPECT_EQ(a.W_enc.scalar_type(), torch::kBFloat16);
  EXPECT_EQ(a.threshold.scalar_type(), torch::kBFloat16);
  EXPECT_EQ(a.source, dir / "params.npz");
  JumpReluSae b = load_sae(dir / "params.npz", kD);
  EXPECT_TRUE(torch::equal(a.W_dec, b.W_dec.to(torch::kBFloat16)));
  EXPECT_THROW(b.encode(torch::zeros({2, kD + 1})), sfc::Error);
  EXPECT_THROW(b.decode(torch::zeros({2, kD})), sfc::Error);
}

TEST(Sae, WrongWidthIsLoadError) {
  const fs::path file = sae_root() / "gemma-scope-tiny-pt-att/layer_0/width_112/average_l0_27/params.npz";
  EXPECT_TRUE(throws_load_error([&] { load_sae(file, kD); }, file, {"d_in 96", "needs 64"}));
}

TEST(Sae, MissingFolderContents) {
  TempDir tmp;
  EXPECT_TRUE(throws_load_error([&] { load_sae(tmp.path(), kD); }, tmp.path(),
                                {"params.npz", "cfg.json", "sae_weights.safetensors"}));
  EXPECT_TRUE(throws_load_error([&] { load_sae(tmp / "nothing.npz", kD); }, tmp / "nothing.npz", {"not found"}));
}

// Writes the SAE as SAELens does: cfg.json + sae_weights.safetensors with the same tensor names.
void write_saelens(const fs::path& dir, const JumpReluSae& sae, int64_t cfg_d_in, int64_t cfg_d_sae,
                   bool with_threshold = true) {
  fs::create_directories(dir);
  sfc::test::SafetensorsBytes st;
  st.add("W_enc", sae.W_enc).add("W_dec", sae.W_dec).add("b_enc", sae.b_enc).add("b_dec", sae.b_dec);
  if (with_threshold) st.add("threshold", sae.threshold);
  st.write(dir / "sae_weights.safetensors");
  std::ofstream(dir / "cfg.json") << R"({"architecture": "jumprelu", "d_in": )" << cfg_d_in
                                  << R"(, "d_sae": )" << cfg_d_sae
                                  << R"(, "dtype": "float32", "apply_b_dec_to_input": false,
                                        "normalize_activations": "none", "hook_name": "blocks.0.hook_resid_post"})";
}

TEST(Sae, SaeLensLayoutLoadsIdentically) {
  TempDir tmp;
  const fs::path npz = sae_root() / "gemma-scope-tiny-pt-res/layer_2/width_112/average_l0_28/params.npz";
  JumpReluSae ref = load_sae(npz, kD);
  write_saelens(tmp / "lens", ref, kD, kF);
  for (const fs::path& arg : {tmp / "lens", tmp / "lens" / "cfg.json", tmp / "lens" / "sae_weights.safetensors"}) {
    JumpReluSae got = load_sae(arg, kD);
    EXPECT_TRUE(torch::equal(got.W_enc, ref.W_enc)) << arg;
    EXPECT_TRUE(torch::equal(got.W_dec, ref.W_dec)) << arg;
    EXPECT_TRUE(torch::equal(got.b_enc, ref.b_enc)) << arg;
    EXPECT_TRUE(torch::equal(got.b_dec, ref.b_dec)) << arg;
    EXPECT_TRUE(torch::equal(got.threshold, ref.threshold)) << arg;
  }
}

TEST(Sae, SaeLensErrors) {
  TempDir tmp;
  JumpReluSae ref = load_sae(sae_root() / "gemma-scope-tiny-pt-res/layer_0/width_112/average_l0_29/params.npz", kD);
  write_saelens(tmp / "bad_cfg", ref, kD, 200);
  EXPECT_TRUE(throws_load_error([&] { load_sae(tmp / "bad_cfg", kD); }, tmp / "bad_cfg" / "cfg.json",
                                {"d_sae 200", "[64, 112]"}));
  write_saelens(tmp / "no_threshold", ref, kD, kF, false);
  EXPECT_TRUE(throws_load_error([&] { load_sae(tmp / "no_threshold", kD); },
                                tmp / "no_threshold" / "sae_weights.safetensors", {"missing tensor 'threshold'"}));
  write_saelens(tmp / "wide", ref, kD, kF);
  EXPECT_TRUE(throws_load_error([&] { load_sae(tmp / "wide", kAttnWidth); },
                                tmp / "wide" / "sae_weights.safetensors", {"d_in 64", "needs 96"}));
}

TEST(Sae, BadShapeInNpz) {
  // b_dec of the wrong length: the message names the tensor and both shapes.
  TempDir tmp;
  JumpReluSae ref = load_sae(sae_root() / "gemma-scope-tiny-pt-res/layer_0/width_112/average_l0_29/params.npz", kD);
  ref.b_dec = torch::zeros({kD + 1});
  write_saelens(tmp / "x", ref, kD, kF);
  EXPECT_TRUE(throws_load_error([&] { load_sae(tmp / "x", kD); }, tmp / "x" / "sae_weights.safetensors",
                                {"b_dec has shape [65]", "[64]"}));
}

// A Gemma Scope tree with copies of one fixture SAE, for the locator's choices and errors.
void add_leaf(const fs::path& leaf) {
  fs::create_directories(leaf);
  fs::copy_file(sae_root() / "gemma-scope-tiny-pt-res/layer_0/width_112/average_l0_29/params.npz", leaf / "params.npz");
}

TEST(SaeLocatorErrors, AmbiguousRelease) {
  TempDir tmp;
  add_leaf(tmp / "rel-a-res/layer_0/width_16k/average_l0_10");
  add_leaf(tmp / "rel-b-res/layer_0/width_16k/average_l0_10");
  EXPECT_TRUE(throws_load_error([&] { SaeLocator(tmp.path()).locate(Site::kResid, 0); }, tmp.path(),
                                {"several releases", "rel-a", "rel-b"}));
  EXPECT_EQ(SaeLocator(tmp.path(), {"rel-b", "", ""}).locate(Site::kResid, 0),
            tmp / "rel-b-res/layer_0/width_16k/average_l0_10/params.npz");
  EXPECT_TRUE(throws_load_error([&] { SaeLocator(tmp.path(), {"rel-c", "", ""}).locate(Site::kResid, 0); },
                                tmp / "rel-c-res", {"rel-a-res", "rel-b-res"}));
  EXPECT_TRUE(throws_load_error([&] { SaeLocator(tmp.path()).locate(Site::kMlp, 0); }, tmp.path(),
                                {"-mlp", "mlp"}));
}

TEST(SaeLocatorErrors, WidthsAndL0s) {
  TempDir tmp;
  add_leaf(tmp / "r-res/layer_0/width_16k/average_l0_10");
  add_leaf(tmp / "r-res/layer_0/width_16k/average_l0_50");
  add_leaf(tmp / "r-res/layer_0/width_65k/average_l0_20");
  const fs::path layer = tmp / "r-res/layer_0";
  EXPECT_TRUE(throws_load_error([&] { SaeLocator(tmp.path()).locate(Site::kResid, 0); }, layer,
                                {"several widths", "width_16k", "width_65k"}));
  EXPECT_TRUE(throws_load_error([&] { SaeLocator(tmp.path(), {"", "16k", ""}).locate(Site::kResid, 0); },
                                layer / "width_16k", {"several L0 folders", "average_l0_10", "average_l0_50"}));
  EXPECT_EQ(SaeLocator(tmp.path(), {"", "16k", "12"}).locate(Site::kResid, 0),
            layer / "width_16k/average_l0_10/params.npz");
  EXPECT_EQ(SaeLocator(tmp.path(), {"", "16k", "40"}).locate(Site::kResid, 0),
            layer / "width_16k/average_l0_50/params.npz");
  EXPECT_TRUE(throws_load_error([&] { SaeLocator(tmp.path(), {"", "16k", "30"}).locate(Site::kResid, 0); },
                                layer / "width_16k", {"equally near", "average_l0_10", "average_l0_50"}));
  EXPECT_TRUE(throws_load_error([&] { SaeLocator(tmp.path(), {"", "1m", ""}).locate(Site::kResid, 0); },
                                layer / "width_1m", {"no such width", "width_16k, width_65k"}));
  EXPECT_TRUE(throws_load_error([&] { SaeLocator(tmp.path(), {"", "16k", "canonical"}).locate(Site::kResid, 0); },
                                tmp / "canonical.json", {"not found"}));
  // A canonical.json resolves the ambiguity.
  std::ofstream(tmp / "canonical.json") << R"({"r-res-canonical": {"layer_0/width_16k/canonical": "layer_0/width_16k/average_l0_50"}})";
  EXPECT_EQ(SaeLocator(tmp.path(), {"", "16k", ""}).locate(Site::kResid, 0),
            layer / "width_16k/average_l0_50/params.npz");
  EXPECT_TRUE(throws_load_error([&] { SaeLocator(tmp.path(), {"", "65k", "canonical"}).locate(Site::kResid, 0); },
                                tmp / "canonical.json", {"no entry", "layer_0/width_65k/canonical"}));
}

TEST(SaeLocatorErrors, MissingLayer) {
  SaeLocator locator(sae_root());
  EXPECT_TRUE(throws_load_error([&] { locator.locate(Site::kResid, 7); },
                                sae_root() / "gemma-scope-tiny-pt-res/layer_7",
                                {"layer 7", "layer_0, layer_1, layer_2, layer_3"}));
  EXPECT_THROW(SaeLocator(sae_root() / "nope"), sfc::LoadError);
}

TEST(SaeLocatorErrors, SaeLensLeafAccepted) {
  TempDir tmp;
  JumpReluSae ref = load_sae(sae_root() / "gemma-scope-tiny-pt-res/layer_0/width_112/average_l0_29/params.npz", kD);
  const fs::path leaf = tmp / "r-res/layer_0/width_112/average_l0_29";
  write_saelens(leaf, ref, kD, kF);
  const fs::path where = SaeLocator(tmp.path()).locate(Site::kResid, 0);
  EXPECT_EQ(where, leaf);
  EXPECT_TRUE(torch::equal(load_sae(where, kD).W_enc, ref.W_enc));
  fs::create_directories(tmp / "r-res/layer_1/width_112/average_l0_3");
  EXPECT_TRUE(throws_load_error([&] { SaeLocator(tmp.path()).locate(Site::kResid, 1); },
                                tmp / "r-res/layer_1/width_112/average_l0_3", {"no SAE here"}));
}

}  // namespace
