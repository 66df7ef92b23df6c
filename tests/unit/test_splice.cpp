// Splicing every SAE's reconstruction plus its error into the forward leaves the model unchanged
// (docs/design.md §1) — the reason all SAE arithmetic can run after a plain-model pass.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "sfc/model/gemma2.h"
#include "sfc/sae/sae.h"
#include "support/reference.h"
#include "support/tensor_compare.h"

namespace sfc::model {
namespace {

// Splices (site, layer)'s SAE into every site: x -> x̂(x) + e(x), or x̂ alone without the error.
void splice_all(SiteCalls& sites, const std::vector<std::vector<sae::JumpReluSae>>& saes, bool with_error) {
  for (Site site : kAllSites)
    for (int64_t l = 0; l < sites.n_layer(); ++l) {
      const auto& s = saes[static_cast<int>(site)][l];
      sites.transform(site, l, [&s, with_error](const torch::Tensor& x) {
        auto x_hat = s.decode(s.encode(x));
        return with_error ? x_hat + s.error(x) : x_hat;
      });
    }
}

TEST(Splice, ReconstructionPlusErrorLeavesLogitsAndGradientsUnchanged) {
  auto model = load_gemma2(test::tiny_dir() / "model");
  const auto& config = model->config();
  sae::SaeLocator locator(test::tiny_dir() / "saes");
  std::vector<std::vector<sae::JumpReluSae>> saes(kNumSites);
  for (Site site : kAllSites)
    for (int64_t l = 0; l < config.n_layer; ++l)
      saes[static_cast<int>(site)].push_back(sae::load_sae(locator.locate(site, l), config.site_width(site)));

  auto tokens = test::ref("tokens_clean");
  auto answers = test::fixture_answers();
  SiteCalls plain(config.n_layer);
  plain.record_all(true);
  auto h_plain = model->forward(tokens, &plain);
  auto logits_plain = model->logits(h_plain.detach());
  plain.backward(logit_diff(*model, h_plain, answers).sum());

  SiteCalls spliced(config.n_layer);
  splice_all(spliced, saes, /*with_error=*/true);
  spliced.record_all(true);
  auto h_spliced = model->forward(tokens, &spliced);
  auto logits_spliced = model->logits(h_spliced.detach());
  EXPECT_TRUE(test::close_rel_max(logits_spliced, logits_plain, 1e-5, "spliced vs plain logits"));
  EXPECT_TRUE(test::close_rel_max(logits_spliced, test::ref("spliced.logits_clean"), 1e-4, "spliced.logits_clean"));
  spliced.backward(logit_diff(*model, h_spliced, answers).sum());
  for (Site site : kAllSites)
    for (int64_t l = 0; l < config.n_layer; ++l)
      EXPECT_TRUE(test::close_rel_max(spliced.gradient(site, l), plain.gradient(site, l), 1e-4,
                                      std::string("grad ") + site_name(site) + " L" + std::to_string(l)));

  // Without the error term the SAEs do change the model (FVU ≈ 15–20% in the fixture): the
  // property above is not vacuous.
  SiteCalls lossy(config.n_layer);
  splice_all(lossy, saes, /*with_error=*/false);
  auto logits_lossy = model->logits(model->forward(tokens, &lossy));
  EXPECT_GT((logits_lossy - logits_plain).abs().max().item<double>(), 1e-2);
}

}  // namespace
}  // namespace sfc::model
