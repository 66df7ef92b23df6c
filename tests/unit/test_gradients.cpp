// Site gradients against central finite differences, on a tiny random Gemma-2 in float64.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "sfc/model/gemma2.h"
#include "sfc/model/metric.h"
#include "support/random_model.h"

namespace sfc::model {
namespace {

TEST(SiteGradients, MatchFiniteDifferences) {
  const auto config = test::tiny_random_config();
  auto model = test::random_gemma2(config, /*seed=*/7);
  const int64_t B = 2, T = 7;
  torch::manual_seed(11);
  auto tokens = torch::randint(config.vocab_size, {B, T}, torch::kInt64);
  AnswerSpec answers{torch::tensor({T - 1, T - 3}, torch::kInt64),  // second prompt: padded after pos 4
                     torch::tensor({{3, 5, 9}, {4, 8, 8}}, torch::kInt64)};

  SiteCalls sites(config.n_layer);
  sites.record_all(/*grad=*/true);
  auto h = model->forward(tokens, &sites);
  auto metric = logit_diff(*model, h, answers).sum();
  sites.backward(metric);

  auto metric_with = [&](Site site, int64_t layer, const torch::Tensor& delta) {
    SiteCalls nudged(config.n_layer);
    nudged.add(site, layer, delta);
    return logit_diff(*model, model->forward(tokens, &nudged), answers).sum().item<double>();
  };
  const double eps = 1e-5;
  for (Site site : kAllSites) {
    for (int64_t l = 0; l < config.n_layer; ++l) {
      auto u = torch::randn({B, T, config.site_width(site)}, torch::kFloat64);
      const double fd = (metric_with(site, l, eps * u) - metric_with(site, l, -eps * u)) / (2 * eps);
      const double analytic = (sites.gradient(site, l) * u).sum().item<double>();
      EXPECT_NEAR(analytic, fd, 1e-7 * std::max(1.0, std::abs(fd))) << site_name(site) << " layer " << l;
    }
  }
}

TEST(SiteGradients, PositionsAfterTheAnswerAndPaddingGetZeroGradient) {
  const auto config = test::tiny_random_config();
  auto model = test::random_gemma2(config, /*seed=*/3);
  auto tokens = torch::randint(config.vocab_size, {1, 6}, torch::kInt64);
  AnswerSpec answers{torch::tensor({3}, torch::kInt64), torch::tensor({{1, 2}}, torch::kInt64)};
  SiteCalls sites(config.n_layer);
  sites.record_all(true);
  sites.backward(logit_diff(*model, model->forward(tokens, &sites), answers).sum());
  for (Site site : kAllSites) {
    const auto& g = sites.gradient(site, 0);
    EXPECT_EQ(g.slice(1, 4).abs().max().item<double>(), 0.0) << site_name(site);  // causal: no effect
    EXPECT_GT(g.slice(1, 0, 4).abs().max().item<double>(), 0.0) << site_name(site);
  }
}

}  // namespace
}  // namespace sfc::model
