// The attribution engines against Hugging Face (fixture gemma2-tiny, whose metric has the opposite
// sign) and against their own slow or analytic counterparts.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "sfc/engines/engines.h"
#include "support/engine_fixture.h"
#include "support/random_model.h"
#include "support/tensor_compare.h"

namespace sfc::engines {
namespace {

constexpr double kTol = 1e-4;

std::string key(const char* prefix, Site site, int64_t layer) {
  return std::string(prefix) + "." + site_name(site) + ".L" + std::to_string(layer);
}

class EnginesFixture : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    model_ = new model::Gemma2(model::load_gemma2(test::tiny_dir() / "model"));
    saes_ = new SaeSet(test::fixture_saes((*model_)->config()));
  }
  static void TearDownTestSuite() {
    delete model_;
    delete saes_;
  }
  static const model::Gemma2Impl& model() { return **model_; }
  static model::Gemma2* model_;
  static SaeSet* saes_;
};
model::Gemma2* EnginesFixture::model_ = nullptr;
SaeSet* EnginesFixture::saes_ = nullptr;

TEST_F(EnginesFixture, AtpIgAndPatchingMatchHuggingFace) {
  const auto batch = test::fixture_batch();
  EngineOptions options;
  const int64_t L = model().config().n_layer;
  auto cache = run_clean_and_patch(model(), batch, *saes_, options);
  auto result = empty_result(batch.size(), L, batch.n_tokens(), *saes_, options);
  run_atp(model(), batch, *saes_, options, cache, result);
  run_ig(model(), batch, *saes_, options, cache, result);
  run_patch(model(), batch, *saes_, options, cache, result);

  EXPECT_TRUE(test::close_rel_max(result.ld_clean, -test::ref("ld_clean"), kTol, "ld_clean"));
  EXPECT_TRUE(test::close_rel_max(result.ld_patch, -test::ref("ld_patch"), kTol, "ld_patch"));
  auto per_position = test::ref("patch_error.per_position");  // (B, 3, L, T), sites resid, mlp, attn
  auto global = test::ref("patch_error.global");              // (B, 3, L)
  auto full_site = test::ref("patch_full_site.global");       // (B, 3, L)
  auto ld_span = (test::ref("ld_patch") - test::ref("ld_clean")).unsqueeze(1);  // (B, 1), fixture sign
  for (Site site : kAllSites) {
    const int s = static_cast<int>(site);
    const auto& e = result.error[s];
    for (int64_t l = 0; l < L; ++l) {
      EXPECT_TRUE(test::close_rel_max(e.atp.select(1, l), -test::ref(key("atp_st", site, l) + ".error"), kTol,
                                      key("atp_st", site, l) + ".error"));
      EXPECT_TRUE(test::close_rel_max(result.latents[s].atp.select(1, l), -test::ref(key("atp_st", site, l) + ".latent"),
                                      kTol, key("atp_st", site, l) + ".latent"));
      EXPECT_TRUE(test::close_rel_max(e.ig.select(1, l), -test::ref(key("ig_st", site, l) + ".error"), kTol,
                                      key("ig_st", site, l) + ".error"));
      EXPECT_TRUE(test::close_rel_max(result.latents[s].ig.select(1, l), -test::ref(key("ig_st", site, l) + ".latent"),
                                      kTol, key("ig_st", site, l) + ".latent"));
      auto ref_pos = per_position.select(1, s).select(1, l);  // (B, T)
      EXPECT_TRUE(test::close_rel_max(e.patch_effect.select(1, l), -ref_pos, kTol, key("patch_error.per_position", site, l)));
      EXPECT_TRUE(test::close_rel_max(e.patch_effect_norm.select(1, l), ref_pos / ld_span, kTol,
                                      key("patch_error.per_position (normalised)", site, l)));
      auto ref_global = global.select(1, s).select(1, l);  // (B)
      EXPECT_TRUE(test::close_rel_max(e.patch_effect_global.select(1, l), -ref_global, kTol,
                                      key("patch_error.global", site, l)));
      EXPECT_TRUE(test::close_rel_max(e.patch_effect_global_norm.select(1, l), ref_global / ld_span.squeeze(1), kTol,
                                      key("patch_error.global (normalised)", site, l)));
    }
    std::vector<int64_t> layers(L);
    std::iota(layers.begin(), layers.end(), 0);
    EXPECT_TRUE(test::close_rel_max(patch_full_site(model(), batch, site, cache, layers), -full_site.select(1, s), kTol,
                                    std::string("patch_full_site.") + site_name(site)));
  }
}

// Positions before the first token where clean and patch differ have Δ = 0 exactly (causal model):
// every estimator must give exactly 0 there, and patching must not have run a forward for them.
TEST_F(EnginesFixture, PositionsWithoutDifferenceScoreExactlyZero) {
  const auto batch = test::fixture_batch();
  EngineOptions options;
  auto cache = run_clean_and_patch(model(), batch, *saes_, options);
  auto result = empty_result(batch.size(), model().config().n_layer, batch.n_tokens(), *saes_, options);
  run_atp(model(), batch, *saes_, options, cache, result);
  run_ig(model(), batch, *saes_, options, cache, result);
  run_patch(model(), batch, *saes_, options, cache, result);
  const int64_t first_diff[] = {3, 1, 5};  // fixture README
  for (int64_t b = 0; b < 3; ++b)
    for (Site site : kAllSites) {
      const auto& e = result.error[static_cast<int>(site)];
      for (auto* t : {&e.atp, &e.ig, &e.patch_effect, &e.delta_norm}) {
        auto before = (*t)[b].slice(1, 0, first_diff[b]);
        EXPECT_TRUE(torch::equal(before, torch::zeros_like(before))) << site_name(site) << " pair " << b;
      }
      auto at_diff = e.delta_norm[b].select(1, first_diff[b]);
      EXPECT_GT(at_diff.min().item<double>(), 0.0) << "the difference itself must be non-zero";
    }
}

// Fast patching (resume at the layer, many interventions per forward, Δ = 0 skipped) equals the
// slow path (one full forward per node), on padded pairs of different lengths and a position list.
TEST(PatchingPaths, FastEqualsSlow) {
  const auto config = test::tiny_random_config();
  auto model = test::random_gemma2(config, 5);
  auto saes = test::random_saes(config, 20, 6);
  auto batch = test::random_batch(config, {7, 5, 6}, /*diff_at=*/2, 8);
  for (bool all_positions : {true, false}) {
    EngineOptions options;
    options.max_rows = 4;  // force several chunks
    options.patch_positions = all_positions ? PatchPositions{} : PatchPositions{false, {1, 3, -1, -2}};
    auto cache = run_clean_and_patch(*model, batch, saes, options);
    auto fast = empty_result(batch.size(), config.n_layer, batch.n_tokens(), saes, options);
    auto slow = empty_result(batch.size(), config.n_layer, batch.n_tokens(), saes, options);
    run_patch(*model, batch, saes, options, cache, fast);
    run_patch_slow(*model, batch, saes, options, cache, slow);
    for (Site site : kAllSites) {
      const auto& f = fast.error[static_cast<int>(site)];
      const auto& s = slow.error[static_cast<int>(site)];
      for (auto [a, b, what] : {std::tuple{&f.patch_effect, &s.patch_effect, "per position"},
                                {&f.patch_effect_norm, &s.patch_effect_norm, "per position, normalised"},
                                {&f.patch_effect_global, &s.patch_effect_global, "global"},
                                {&f.patch_effect_global_norm, &s.patch_effect_global_norm, "global, normalised"}}) {
        EXPECT_TRUE(torch::equal(a->isnan(), b->isnan())) << site_name(site) << " " << what << ": NaN pattern";
        auto diff = (a->nan_to_num() - b->nan_to_num()).abs().max().item<double>();
        EXPECT_LE(diff, 1e-5) << site_name(site) << " " << what;
      }
      EXPECT_GT(f.patch_effect.nan_to_num().abs().max().item<double>(), 1e-3) << "non-trivial effects";
    }
  }
}

// Fast IG (steps stacked in the batch, resumed at the site's layer) equals one full forward+backward
// per step.
TEST(IgPaths, FastEqualsSlow) {
  const auto config = test::tiny_random_config();
  auto model = test::random_gemma2(config, 31);
  auto saes = test::random_saes(config, 20, 32);
  auto batch = test::random_batch(config, {7, 5, 6}, 2, 33);
  EngineOptions options;
  options.ig_steps = 5;
  options.max_rows = 7;  // 2 steps of 3 pairs per pass: uneven chunks
  auto cache = run_clean_and_patch(*model, batch, saes, options);
  auto fast = empty_result(batch.size(), config.n_layer, batch.n_tokens(), saes, options);
  auto slow = empty_result(batch.size(), config.n_layer, batch.n_tokens(), saes, options);
  run_ig(*model, batch, saes, options, cache, fast);
  run_ig_slow(*model, batch, saes, options, cache, slow);
  for (Site site : kAllSites) {
    const int s = static_cast<int>(site);
    EXPECT_TRUE(torch::equal(fast.error[s].ig.isnan(), slow.error[s].ig.isnan()));
    EXPECT_LE((fast.error[s].ig - slow.error[s].ig).nan_to_num().abs().max().item<double>(), 1e-5) << site_name(site);
    EXPECT_LE((fast.latents[s].ig - slow.latents[s].ig).nan_to_num().abs().max().item<double>(), 1e-5) << site_name(site);
    EXPECT_GT(fast.error[s].ig.nan_to_num().abs().max().item<double>(), 1e-3) << "non-trivial scores";
  }
}

// Completeness: Σ_positions (error IG + Σ_latents IG) = ∫ g·Δx dα, which tends to the effect of
// patching the whole site (x ← x') as the number of steps grows (left Riemann sum: error O(1/N)).
TEST(IntegratedGradients, SumConvergesToFullSitePatching) {
  const auto config = test::tiny_random_config();
  auto model = test::random_gemma2(config, 12);
  auto saes = test::random_saes(config, 20, 13);
  auto batch = test::random_batch(config, {6, 6}, 1, 14);
  EngineOptions options;
  options.max_rows = 16;
  auto cache = run_clean_and_patch(*model, batch, saes, options);
  for (Site site : kAllSites) {
    std::vector<int64_t> layers = {0, 1, 2};
    auto full = patch_full_site(*model, batch, site, cache, layers).to(torch::kFloat64);  // (B, L)
    std::vector<double> errors;
    for (int64_t steps : {8, 32, 128}) {
      options.ig_steps = steps;
      auto result = empty_result(batch.size(), config.n_layer, batch.n_tokens(), saes, options);
      run_ig(*model, batch, saes, options, cache, result);
      const int s = static_cast<int>(site);
      auto total = result.error[s].ig.to(torch::kFloat64).nansum(2) +
                   result.latents[s].ig.to(torch::kFloat64).nansum({2, 3});  // (B, L)
      errors.push_back((total - full).abs().max().item<double>());
    }
    // 4× the steps: about 4× smaller error for a left Riemann sum; ask for at least 2.5×.
    EXPECT_LT(errors[1], errors[0] / 2.5) << site_name(site);
    EXPECT_LT(errors[2], errors[1] / 2.5) << site_name(site);
    EXPECT_LT(errors[2], 0.02 * full.abs().max().item<double>()) << site_name(site);
    std::cout << site_name(site) << ": |Σ IG − full patching| at 8/32/128 steps: " << errors[0] << " " << errors[1]
              << " " << errors[2] << " (full effect up to " << full.abs().max().item<double>() << ")\n";
  }
}

// AtP is the first-order term of patching: with the patch activation moved only ε of the way
// (x' = x + ε(x'_true − x)), |patching − AtP| = O(ε²) ≪ |AtP| = O(ε).
TEST(Atp, EqualsPatchingToFirstOrderForASmallDelta) {
  const auto config = test::tiny_random_config();
  auto model = test::random_gemma2(config, 21);
  auto saes = test::random_saes(config, 20, 22);
  auto batch = test::random_batch(config, {6, 5}, 1, 23);
  EngineOptions options;
  auto cache = run_clean_and_patch(*model, batch, saes, options);
  const double eps = 1e-4;
  for (size_t i = 0; i < cache.patch.size(); ++i)
    if (cache.patch[i].defined()) cache.patch[i] = cache.clean[i] + eps * (cache.patch[i] - cache.clean[i]);
  auto result = empty_result(batch.size(), config.n_layer, batch.n_tokens(), saes, options);
  run_atp(*model, batch, saes, options, cache, result);
  run_patch(*model, batch, saes, options, cache, result);
  for (Site site : kAllSites) {
    const auto& e = result.error[static_cast<int>(site)];
    auto atp = e.atp.nan_to_num(), patched = e.patch_effect.nan_to_num();
    const double scale = atp.abs().max().item<double>();
    ASSERT_GT(scale, 0.0);
    EXPECT_LT((atp - patched).abs().max().item<double>(), 1e-3 * scale) << site_name(site);
    auto global_atp = e.atp.nansum(2);
    EXPECT_LT((global_atp - e.patch_effect_global).abs().max().item<double>(),
              1e-3 * global_atp.abs().max().item<double>()) << site_name(site) << " global";
  }
}

}  // namespace
}  // namespace sfc::engines
