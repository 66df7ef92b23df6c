// The built-in SAE trainer (issue 5) on the tiny fixture model: the npz writer against the reader,
// activations per site, training lowers FVU, what is on disk is what was measured, the Gemma Scope
// layout resolves through SaeLocator, and the same seed writes the same bytes.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <fstream>
#include <iterator>
#include <map>

#include "sfc/builtin/sae_trainer.h"
#include "sfc/io/npz.h"
#include "sfc/io/npz_writer.h"
#include "sfc/model/gemma2.h"
#include "sfc/sae/sae.h"
#include "support/test_support.h"

namespace {

namespace fs = std::filesystem;
using sfc::Site;
using sfc::builtin::SaeQuality;
using sfc::builtin::SaeTrainOptions;
using sfc::test::TempDir;

constexpr int64_t kS = 12, kT = 24, kVocab = 300, kBos = 2, kWidth = 64;

TEST(NpzWriter, RoundTripThroughReader) {
  TempDir dir;
  torch::manual_seed(3);
  const torch::Tensor a = torch::randn({3, 5});                          // 2-D
  const torch::Tensor b = torch::randn({7});                             // 1-D: shape "(7,)"
  const torch::Tensor c = torch::randn({4, 3, 2}).transpose(0, 2);       // non-contiguous (2, 3, 4)
  const torch::Tensor d = torch::arange(6, torch::kFloat64).reshape({2, 3});  // cast to fp32
  sfc::io::write_npz(dir / "x.npz", {{"a", a}, {"b", b}, {"c", c}, {"d", d}});
  const sfc::io::NpzFile npz(dir / "x.npz");
  EXPECT_EQ(npz.names(), (std::vector<std::string>{"a", "b", "c", "d"}));
  for (const auto& [name, t] : std::vector<std::pair<std::string, torch::Tensor>>{{"a", a}, {"b", b}, {"c", c}, {"d", d}}) {
    EXPECT_EQ(npz.info(name).descr, "<f4") << name;
    EXPECT_FALSE(npz.info(name).fortran_order) << name;
    const torch::Tensor got = npz.load(name);
    EXPECT_EQ(got.sizes(), t.sizes()) << name;
    EXPECT_EQ(got.scalar_type(), torch::kFloat32) << name;
    EXPECT_TRUE(torch::equal(got, t.to(torch::kFloat32))) << name;
  }
}

std::string file_bytes(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// Relative path → bytes of every file under `root`.
std::map<std::string, std::string> tree(const fs::path& root) {
  std::map<std::string, std::string> out;
  for (const auto& e : fs::recursive_directory_iterator(root))
    if (e.is_regular_file()) out[fs::relative(e.path(), root).string()] = file_bytes(e.path());
  return out;
}

class SaeTrainerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    model_ = new sfc::model::Gemma2(sfc::model::load_gemma2(sfc::test::tiny_dir() / "model"));
    torch::manual_seed(7);
    tokens_ = torch::randint(3, kVocab, {kS, kT}, torch::kInt64);  // (S, T)
    tokens_.select(1, 0).fill_(kBos);
    valid_ = torch::ones({kS, kT}, torch::kBool);  // (S, T); the last rows are padded
    valid_.slice(0, kS - 3).slice(1, kT - 5).fill_(false);
    acts_ = new std::vector<torch::Tensor>(sfc::builtin::collect_activations(**model_, tokens_, valid_));
  }
  static void TearDownTestSuite() {
    delete acts_;
    delete model_;
  }

  static SaeTrainOptions options(int64_t steps) {
    SaeTrainOptions o;
    o.width = kWidth;
    o.steps = steps;
    o.batch_rows = 128;
    o.lr = 3e-3;
    o.seed = 5;
    o.release = "tiny-test";
    return o;
  }

  static inline sfc::model::Gemma2* model_ = nullptr;
  static inline torch::Tensor tokens_, valid_;
  static inline std::vector<torch::Tensor>* acts_ = nullptr;
};

TEST_F(SaeTrainerTest, CollectsValidNonBosPositionsOfEverySite) {
  const auto& config = (*model_)->config();
  ASSERT_EQ(static_cast<int64_t>(acts_->size()), config.n_layer * sfc::kNumSites);
  const int64_t rows = valid_.sum().item<int64_t>() - kS;  // minus the BOS of each row
  for (int64_t l = 0; l < config.n_layer; ++l)
    for (Site site : sfc::kAllSites) {
      const torch::Tensor& a = (*acts_)[static_cast<size_t>(l * sfc::kNumSites + static_cast<int>(site))];
      EXPECT_EQ(a.sizes(), (std::vector<int64_t>{rows, config.site_width(site)})) << sfc::site_name(site) << l;
      EXPECT_EQ(a.scalar_type(), torch::kFloat32);
    }
  // Row 0's first kept position is token 1 of sequence 0: the same as a plain forward records there.
  sfc::model::SiteCalls sites(config.n_layer);
  sites.record(Site::kMlp, 2);
  {
    torch::NoGradGuard no_grad;
    (*model_)->forward(tokens_.slice(0, 0, 1), &sites);
  }
  EXPECT_TRUE(torch::allclose((*acts_)[2 * sfc::kNumSites + static_cast<int>(Site::kMlp)][0],
                              sites.recorded(Site::kMlp, 2)[0][1], 1e-5, 1e-6));
}

TEST_F(SaeTrainerTest, TrainsWritesAndReadsBack) {
  const auto& config = (*model_)->config();
  TempDir untrained_dir, dir, again_dir;
  const auto untrained = sfc::builtin::train_saes(**model_, *acts_, untrained_dir.path(), options(0));
  const auto trained = sfc::builtin::train_saes(**model_, *acts_, dir.path(), options(150));
  ASSERT_EQ(static_cast<int64_t>(trained.size()), config.n_layer * sfc::kNumSites);

  // Site-major order; training lowers FVU; every SAE keeps some latents active.
  size_t i = 0;
  for (Site site : sfc::kAllSites)
    for (int64_t l = 0; l < config.n_layer; ++l, ++i) {
      const SaeQuality& q = trained[i];
      EXPECT_EQ(q.site, site);
      EXPECT_EQ(q.layer, l);
      EXPECT_EQ(q.width, kWidth);
      EXPECT_LT(q.fvu, untrained[i].fvu) << sfc::site_name(site) << l;
      EXPECT_LT(q.fvu, 0.5) << sfc::site_name(site) << l;
      EXPECT_GT(q.l0, 0.5) << sfc::site_name(site) << l;
      EXPECT_LT(q.l0, kWidth) << sfc::site_name(site) << l;
    }

  // What is on disk is what was measured, found through the Gemma Scope layout three ways.
  for (const std::string& l0 : {std::string(""), std::string("canonical")}) {
    const sfc::sae::SaeLocator locator(dir.path(), sfc::sae::SaeSelection{"tiny-test", std::to_string(kWidth), l0});
    i = 0;
    for (Site site : sfc::kAllSites)
      for (int64_t l = 0; l < config.n_layer; ++l, ++i) {
        const fs::path file = locator.locate(site, l);
        EXPECT_EQ(file.parent_path().filename().string(),
                  "average_l0_" + std::to_string(std::llround(trained[i].l0)));
        const sfc::sae::JumpReluSae sae = sfc::sae::load_sae(file, config.site_width(site));
        EXPECT_EQ(sae.d_sae(), kWidth);
        const torch::Tensor& x = (*acts_)[static_cast<size_t>(l * sfc::kNumSites + static_cast<int>(site))];
        const torch::Tensor f = sae.encode(x);
        const double fvu = (x - sae.decode(f)).to(torch::kFloat64).square().sum().item<double>() /
                           (x.to(torch::kFloat64) - x.to(torch::kFloat64).mean(0)).square().sum().item<double>();
        const double l0_direct = (f > 0).sum().item<double>() / static_cast<double>(x.size(0));
        EXPECT_NEAR(fvu, trained[i].fvu, 1e-5 * std::max(1.0, fvu)) << sfc::site_name(site) << l;
        EXPECT_NEAR(l0_direct, trained[i].l0, 1e-9) << sfc::site_name(site) << l;
        const auto q = sfc::builtin::measure_sae(sae, x, site, l);
        EXPECT_NEAR(q.fvu, trained[i].fvu, 1e-9);
        EXPECT_DOUBLE_EQ(q.l0, trained[i].l0);
        EXPECT_TRUE((sae.threshold >= 0).all().item<bool>());
      }
  }
  const sfc::sae::SaeLocator by_number(dir.path(), sfc::sae::SaeSelection{"tiny-test", "", std::to_string(std::llround(trained[0].l0))});
  EXPECT_EQ(by_number.locate(Site::kResid, 0).parent_path().filename().string(),
            "average_l0_" + std::to_string(std::llround(trained[0].l0)));

  // Same seed, same bytes.
  sfc::builtin::train_saes(**model_, *acts_, again_dir.path(), options(150));
  const auto a = tree(dir.path()), b = tree(again_dir.path());
  EXPECT_EQ(a.size(), static_cast<size_t>(config.n_layer * sfc::kNumSites + 1));  // + canonical.json
  EXPECT_TRUE(a == b);
}

}  // namespace
