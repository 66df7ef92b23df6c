// The engines on a bf16 model (issue #15, docs/design.md §1): every SAE product, dot product and sum
// runs in fp32 whatever the model's dtype, and every patching effect takes its baseline from the
// same forward as the patched run. Checked against the fp32 Hugging Face fixture, against exact
// (fp64) arithmetic on the bf16 model's own activations, and on nodes whose effect is exactly 0.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <array>
#include <iostream>
#include <numeric>

#include "sfc/engines/engines.h"
#include "support/engine_fixture.h"
#include "support/tensor_compare.h"

namespace sfc::engines {
namespace {

std::string key(const char* prefix, Site site, int64_t layer) {
  return std::string(prefix) + "." + site_name(site) + ".L" + std::to_string(layer);
}

double max_abs(const torch::Tensor& x) { return x.abs().max().item<double>(); }

// Every fixture array against the project's sign: the fixture's metric is −LD.
torch::Tensor from_ref(const std::string& name) { return -test::flatten_heads(test::ref(name)).to(torch::kFloat64); }

class Bf16Engines : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    model32_ = new model::Gemma2(model::load_gemma2(test::tiny_dir() / "model"));
    model16_ = new model::Gemma2(model::load_gemma2(test::tiny_dir() / "model", {torch::kBFloat16, torch::kCPU}));
    saes_ = new SaeSet(test::fixture_saes((*model32_)->config()));  // fp32, as `sfc run` loads them
  }
  static void TearDownTestSuite() {
    delete model32_;
    delete model16_;
    delete saes_;
  }
  static const model::Gemma2Impl& model(torch::Dtype dtype) {
    return dtype == torch::kBFloat16 ? **model16_ : **model32_;
  }
  static int64_t n_layer() { return (*model32_)->config().n_layer; }
  static model::Gemma2* model32_;
  static model::Gemma2* model16_;
  static SaeSet* saes_;
};
model::Gemma2* Bf16Engines::model32_ = nullptr;
model::Gemma2* Bf16Engines::model16_ = nullptr;
SaeSet* Bf16Engines::saes_ = nullptr;

// The mean over α = k/N of the model's gradient at (site, layer) with the site set to x + α(x' − x)
// (formed in fp64, written into the model once), from full forwards, summed in fp64: (B, T, W).
// Independent of the engine's resumed, stacked path.
torch::Tensor mean_gradient(const model::Gemma2Impl& model, const data::PairBatch& batch, Site site, int64_t layer,
                            const torch::Tensor& x, const torch::Tensor& x_patch, int64_t N) {
  const int64_t L = model.config().n_layer;
  auto all = torch::ones({x.size(0), x.size(1)}, torch::kBool);
  auto sum = torch::zeros_like(x, torch::kFloat64);
  for (int64_t k = 0; k < N; ++k) {
    model::SiteCalls sites(L);
    sites.replace(site, layer, (x + (double(k) / double(N)) * (x_patch - x)).to(model.dtype()), all);
    sites.record(site, layer, /*grad=*/true);
    auto h = model.forward(batch.clean_ids, &sites);
    sites.backward(model::logit_diff(model, h, batch.answers).sum());
    sum += sites.gradient(site, layer).to(torch::kFloat64);
  }
  return sum / double(N);
}

// (a) Scores of the bf16 model against the fp32 Hugging Face reference. The model's own bf16 test
// (Gemma2Bf16 in test_model_fixture.cpp) allows twice the error a reference bf16 computation makes
// against fp32; the bound here is of the same kind:
//  - patching effects are differences of LDs: twice HF's own bf16 LD error (the model test's LD bound);
//  - AtP and IG rest on bf16 site activations and gradients, for which the fixture has no HF bf16
//    run: twice the error of the same formulas evaluated exactly (fp64) on what the bf16 model gives
//    them (its activations, and its gradients from one full forward+backward per α).
// The measured errors are printed; for AtP and IG ours equal the exact ones to 6 digits. The path
// before issue #15 stays inside this bound too (error AtP 0.93, IG 0.92, patching 0.49 against
// bounds 1.73, 0.94, 0.73): on this fixture the bf16 model's own error (site activations rounded to
// bf16: 5–15% of an array's largest Δe) outweighs what bf16 SAE arithmetic adds, so the negative
// control for the arithmetic is the next test.
TEST_F(Bf16Engines, ScoresStayWithinTheBf16ErrorOfTheFp32Reference) {
  const auto& m = model(torch::kBFloat16);
  const auto batch = test::fixture_batch();
  const int64_t L = n_layer();
  EngineOptions options;
  auto cache = run_clean_and_patch(m, batch, *saes_, options);
  ASSERT_EQ(cache.at(cache.clean, Site::kResid, 0).scalar_type(), torch::kFloat32) << "upcast once, in the cache";
  auto result = empty_result(batch.size(), L, batch.n_tokens(), *saes_, options);
  run_atp(m, batch, *saes_, options, cache, result);
  run_ig(m, batch, *saes_, options, cache, result);
  run_patch(m, batch, *saes_, options, cache, result);

  const auto saes64 = test::saes_as(*saes_, torch::kFloat64);
  enum { kAtp, kLatentAtp, kIg, kLatentIg, kPatch, kPatchGlobal, kFullSite, kCount };
  const char* names[kCount] = {"error AtP", "latent AtP", "error IG", "latent IG", "patching per position",
                               "patching global", "full-site patching"};
  double ours[kCount] = {}, exact[kCount] = {};
  auto worst = [](double& w, const torch::Tensor& a, const torch::Tensor& b) {
    w = std::max(w, max_abs(a.to(torch::kFloat64) - b.to(torch::kFloat64)));
  };
  const auto per_position = -test::ref("patch_error.per_position");  // (B, 3, L, T)
  const auto global = -test::ref("patch_error.global");              // (B, 3, L)
  const auto full_site = -test::ref("patch_full_site.global");       // (B, 3, L)
  std::vector<int64_t> layers(L);
  std::iota(layers.begin(), layers.end(), 0);
  for (Site site : kAllSites) {
    const int s = static_cast<int>(site);
    const auto& e = result.error[s];
    for (int64_t l = 0; l < L; ++l) {
      const auto& sae = saes64.at(site, l);
      auto x = cache.at(cache.clean, site, l).to(torch::kFloat64);
      auto x_patch = cache.at(cache.patch, site, l).to(torch::kFloat64);
      auto g = cache.at(cache.grad, site, l).to(torch::kFloat64);
      auto g_mean = mean_gradient(m, batch, site, l, x, x_patch, options.ig_steps);
      auto d_error = sae.error(x_patch) - sae.error(x);   // (B, T, W)
      auto d_latent = sae.encode(x_patch) - sae.encode(x);  // (B, T, F)
      const auto atp = from_ref(key("atp_st", site, l) + ".error"), latent_atp = from_ref(key("atp_st", site, l) + ".latent");
      const auto ig = from_ref(key("ig_st", site, l) + ".error"), latent_ig = from_ref(key("ig_st", site, l) + ".latent");
      worst(ours[kAtp], e.atp.select(1, l), atp);
      worst(ours[kLatentAtp], result.latents[s].atp.select(1, l), latent_atp);
      worst(ours[kIg], e.ig.select(1, l), ig);
      worst(ours[kLatentIg], result.latents[s].ig.select(1, l), latent_ig);
      worst(exact[kAtp], (g * d_error).sum(-1), atp);
      worst(exact[kLatentAtp], sae.latent_grad(g) * d_latent, latent_atp);
      worst(exact[kIg], (g_mean * d_error).sum(-1), ig);
      worst(exact[kLatentIg], sae.latent_grad(g_mean) * d_latent, latent_ig);
      worst(ours[kPatch], e.patch_effect.select(1, l), per_position.select(1, s).select(1, l));
      worst(ours[kPatchGlobal], e.patch_effect_global.select(1, l), global.select(1, s).select(1, l));
    }
    worst(ours[kFullSite], patch_full_site(m, batch, site, cache, layers), full_site.select(1, s));
  }
  const double hf_ld_error = std::max(max_abs(test::ref("bf16.ld_clean") - test::ref("ld_clean")),
                                      max_abs(test::ref("bf16.ld_patch") - test::ref("ld_patch")));
  for (int k = kPatch; k < kCount; ++k) exact[k] = hf_ld_error;
  for (int k = 0; k < kCount; ++k) {
    std::cout << names[k] << ": bf16 vs fp32 reference, max |diff| " << ours[k] << ", bound 2 x " << exact[k]
              << (k >= kPatch ? " (HF's bf16 LD error)\n" : " (exact arithmetic on the bf16 model's outputs)\n");
    EXPECT_LE(ours[k], 2.0 * exact[k]) << names[k];
  }
}

// The negative control: the engines' SAE arithmetic on the bf16 model's activations adds only fp32
// rounding (the fixture's fp32 tolerance, 1e-4 of an array's largest value, against fp64), while the
// old arithmetic — SAE held in the model's dtype, Δe, Δf and g·Δe in bf16 — fails that bound by
// orders of magnitude: Δe is a difference of two errors x − x̂, each a difference itself (for real
// Gemma-2, x̂ cancels most of x), and bf16 keeps 8 bits of every term.
TEST_F(Bf16Engines, SaeArithmeticAddsOnlyFp32RoundingWhereBf16WouldNot) {
  const auto& m = model(torch::kBFloat16);
  const auto batch = test::fixture_batch();
  const int64_t L = n_layer();
  EngineOptions options;
  auto cache = run_clean_and_patch(m, batch, *saes_, options);
  auto result = empty_result(batch.size(), L, batch.n_tokens(), *saes_, options);
  run_atp(m, batch, *saes_, options, cache, result);
  const auto saes64 = test::saes_as(*saes_, torch::kFloat64);
  const auto saes16 = test::saes_as(*saes_, torch::kBFloat16);
  constexpr double kFp32Tol = 1e-4;
  double ours_worst = 0, old_worst = 0;  // relative to each array's largest exact value
  for (Site site : kAllSites) {
    const int s = static_cast<int>(site);
    for (int64_t l = 0; l < L; ++l) {
      const auto& sae64 = saes64.at(site, l);
      const auto& sae16 = saes16.at(site, l);
      auto x = cache.at(cache.clean, site, l), x_patch = cache.at(cache.patch, site, l), g = cache.at(cache.grad, site, l);
      auto x64 = x.to(torch::kFloat64), x_patch64 = x_patch.to(torch::kFloat64), g64 = g.to(torch::kFloat64);
      auto d_error = sae64.error(x_patch64) - sae64.error(x64);
      auto d_latent = sae64.encode(x_patch64) - sae64.encode(x64);
      // The old arithmetic, as src/engines/atp.cpp did it before issue #15, all in bf16.
      auto bf16 = [](const torch::Tensor& t) { return t.to(torch::kBFloat16); };
      auto error16 = [&](const torch::Tensor& v) {
        auto pre = torch::matmul(v, sae16.W_enc) + sae16.b_enc;
        auto f = torch::relu(pre) * (pre > sae16.threshold).to(pre.scalar_type());
        return std::pair{v - (torch::matmul(f, sae16.W_dec) + sae16.b_dec), f};
      };
      auto [e16, f16] = error16(bf16(x));
      auto [e16_patch, f16_patch] = error16(bf16(x_patch));
      const std::array<std::array<torch::Tensor, 3>, 3> checks = {{
          // {ours, old, exact}
          {result.error[s].atp.select(1, l), (bf16(g) * (e16_patch - e16)).sum(-1), (g64 * d_error).sum(-1)},
          {result.error[s].delta_norm.select(1, l), (e16_patch - e16).norm(2, -1), d_error.norm(2, -1)},
          {result.latents[s].atp.select(1, l), torch::matmul(bf16(g), sae16.W_dec.t()) * (f16_patch - f16),
           sae64.latent_grad(g64) * d_latent},
      }};
      for (const auto& [ours, old, exact] : checks) {
        const double scale = max_abs(exact);
        if (scale == 0) continue;
        ours_worst = std::max(ours_worst, max_abs(ours.to(torch::kFloat64) - exact) / scale);
        old_worst = std::max(old_worst, max_abs(old.to(torch::kFloat64) - exact) / scale);
      }
    }
  }
  std::cout << "SAE arithmetic on the bf16 model's activations vs fp64, max |diff| / max |exact| per array: fp32 (now) "
            << ours_worst << ", bf16 (before) " << old_worst << " (bound " << kFp32Tol << ")\n";
  EXPECT_LE(ours_worst, kFp32Tol);
  EXPECT_GT(old_worst, kFp32Tol) << "the negative control must fail the bound";
}

// (b) Exact zeros: a node whose Δ is exactly 0 (positions before the first differing token; a pair
// whose clean and patch prompts are identical), or whose patch cannot reach the answer (the last
// layer at any position but the answer's), has a patching effect of exactly 0.0 — fast and slow
// path, fp32 and bf16. The fast path knows these without a forward; the slow path runs every node
// against a baseline that is the same full forward with zero added. Before issue #15 the fast path
// subtracted the LD of the full clean forward from that of its resumed one: −1.9e-6 on the fp32
// last-layer mlp and attn nodes here, and a non-zero full-site effect for the identical pair.
TEST_F(Bf16Engines, PatchingEffectsAreExactlyZeroWhereNothingCanChange) {
  auto batch = test::fixture_batch();
  const int64_t identical = 1;  // pair 1 gets its clean prompt as its patch prompt
  batch.patch_ids[identical].copy_(batch.clean_ids[identical]);
  const int64_t first_diff[] = {3, -1, 5};  // fixture README; pair 1 no longer differs
  const int64_t L = n_layer(), T = batch.n_tokens();
  for (auto dtype : {torch::kFloat32, torch::kBFloat16}) {
    const auto& m = model(dtype);
    EngineOptions options;
    auto cache = run_clean_and_patch(m, batch, *saes_, options);
    auto fast = empty_result(batch.size(), L, T, *saes_, options);
    auto slow = empty_result(batch.size(), L, T, *saes_, options);
    run_atp(m, batch, *saes_, options, cache, fast);
    run_patch(m, batch, *saes_, options, cache, fast);
    run_patch_slow(m, batch, *saes_, options, cache, slow);
    const std::string tag = dtype == torch::kBFloat16 ? "bf16" : "fp32";
    int64_t zeros_checked = 0, last_layer_moved = 0;
    for (Site site : kAllSites) {
      const int s = static_cast<int>(site);
      for (const auto* r : {&fast, &slow}) {
        const auto& e = r->error[s];
        const std::string what = tag + " " + site_name(site) + (r == &fast ? " fast" : " slow");
        for (int64_t b = 0; b < batch.size(); ++b) {
          const int64_t before = first_diff[b] < 0 ? T : first_diff[b];
          for (int64_t l = 0; l < L; ++l)
            for (int64_t p = 0; p < before; ++p, ++zeros_checked)
              EXPECT_EQ(e.patch_effect[b][l][p].item<float>(), 0.0f) << what << " pair " << b << " L" << l << " pos " << p;
          // The last layer: only the answer position (T − 1) reaches the metric.
          for (int64_t p = before; p < T - 1; ++p, ++zeros_checked) {
            EXPECT_EQ(e.patch_effect[b][L - 1][p].item<float>(), 0.0f) << what << " pair " << b << " last layer pos " << p;
            if (fast.error[s].delta_norm[b][L - 1][p].item<float>() > 0) ++last_layer_moved;
          }
        }
        for (int64_t l = 0; l < L; ++l) {
          EXPECT_EQ(e.patch_effect_global[identical][l].item<float>(), 0.0f) << what << " global, identical pair";
          EXPECT_EQ(e.patch_effect_norm[identical][l].abs().max().item<float>(), 0.0f) << what << " identical pair";
        }
        EXPECT_GT(e.patch_effect.nan_to_num().abs().max().item<double>(), 1e-2) << what << ": non-trivial effects";
      }
      std::vector<int64_t> layers(L);
      std::iota(layers.begin(), layers.end(), 0);
      auto full = patch_full_site(m, batch, site, cache, layers);  // (B, L)
      EXPECT_EQ(full[identical].abs().max().item<float>(), 0.0f) << tag << " full site, identical pair";
    }
    EXPECT_GT(zeros_checked, 0);
    // The last-layer nodes are real interventions (Δ ≠ 0), not the Δ = 0 kind: the slow path runs them.
    EXPECT_GT(last_layer_moved, 0) << tag;
  }
}

}  // namespace
}  // namespace sfc::engines
