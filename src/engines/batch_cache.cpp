// The passes every engine starts from: one clean forward+backward (activations and gradients at all
// owned sites in one autograd call) and one patch forward. Also the shared engine helpers.
#include <torch/torch.h>

#include "engine_util.h"
#include "sfc/core/error.h"
#include "sfc/engines/engines.h"

namespace sfc::engines {
namespace detail {

std::vector<int64_t> selected_layers(const EngineOptions& options, int64_t n_layer) {
  std::vector<int64_t> layers = options.layers;
  if (layers.empty())
    for (int64_t l = 0; l < n_layer; ++l) layers.push_back(l);
  for (int64_t l : layers)
    if (l < 0 || l >= n_layer)
      throw ConfigError("layer " + std::to_string(l) + " does not exist: the model has " + std::to_string(n_layer) +
                        " layers (0.." + std::to_string(n_layer - 1) + ")");
  return layers;
}

model::AnswerSpec select_answers(const model::AnswerSpec& answers, const torch::Tensor& rows) {
  auto r = rows.to(answers.pos.device());
  return {answers.pos.index_select(0, r), answers.ids.index_select(0, r)};
}

model::AnswerSpec repeat_answers(const model::AnswerSpec& answers, int64_t times) {
  return {answers.pos.repeat({times}), answers.ids.repeat({times, 1})};
}

model::AnswerSpec answers_at_only_position(const model::AnswerSpec& answers) {
  return {torch::zeros_like(answers.pos), answers.ids};
}

torch::Tensor normalise_effect(const torch::Tensor& effect, const torch::Tensor& ld_clean, const torch::Tensor& ld_patch) {
  auto denom = ld_patch - ld_clean;
  denom = torch::where(denom == 0, torch::ones_like(denom), denom);
  return effect / denom;
}

void put_scores(torch::Tensor& target, int64_t layer, const torch::Tensor& value, const torch::Tensor& valid) {
  auto v = value.detach().to(torch::kCPU, torch::kFloat32);
  auto ok = valid.to(torch::kCPU);
  const int64_t T = v.size(1);
  target.select(1, layer).slice(1, 0, T).copy_(torch::where(ok, v, torch::full_like(v, NAN)));
}

void put_latents(torch::Tensor& slot, int64_t n_layer, int64_t max_width, int64_t layer, const torch::Tensor& value,
                 const torch::Tensor& valid) {
  auto v = value.detach().to(torch::kCPU, torch::kFloat32);  // (B, T, F_l)
  const int64_t B = v.size(0), T = v.size(1), F = v.size(2);
  if (!slot.defined()) slot = torch::full({B, n_layer, T, max_width}, NAN, torch::kFloat32);
  auto ok = valid.to(torch::kCPU).unsqueeze(-1);
  slot.select(1, layer).slice(2, 0, F).copy_(torch::where(ok, v, torch::full_like(v, NAN)));
}

}  // namespace detail

BatchCache run_clean_and_patch(const model::Gemma2Impl& model, const data::PairBatch& batch,
                               const SaeSet& saes, const EngineOptions& options) {
  const int64_t L = model.config().n_layer;
  const auto layers = detail::selected_layers(options, L);
  BatchCache cache;
  cache.clean.resize(L * kNumSites);
  cache.patch.resize(L * kNumSites);
  cache.grad.resize(L * kNumSites);
  (void)saes;

  // Clean run: gradients of the summed per-prompt LD at every owned site. Prompts are independent
  // rows, so the gradient of the sum is each prompt's own gradient (no batch-size factor).
  model::SiteCalls clean(L);
  for (Site site : options.sites)
    for (int64_t l : layers) clean.record(site, l, /*grad=*/true);
  for (int64_t l = 0; l < L; ++l) clean.record(Site::kResid, l);  // the residual stream, to resume from
  detail::Stopwatch watch(batch.clean_ids.device());
  auto h = model.forward(batch.clean_ids, &clean, &cache.kv);
  auto ld_clean = model::logit_diff(model, h, batch.answers);
  cache.forward_s += watch.lap();
  clean.backward(ld_clean.sum());
  cache.backward_s += watch.lap();
  cache.ld_clean = ld_clean.detach();

  cache.resid_in.push_back(model.embed(batch.clean_ids));
  for (int64_t l = 0; l < L; ++l) cache.resid_in.push_back(clean.recorded(Site::kResid, l));

  model::SiteCalls patch(L);
  for (Site site : options.sites)
    for (int64_t l : layers) patch.record(site, l);
  torch::Tensor ld_patch;
  {
    torch::NoGradGuard no_grad;
    ld_patch = model::logit_diff(model, model.forward(batch.patch_ids, &patch), batch.answers);
  }
  cache.forward_s += watch.lap();

  // Upcast once here (not per use): every engine computes on these in fp32 whatever the model's
  // dtype, and writes into the model only the final activation, cast once.
  const auto dtype = detail::compute_dtype(model);
  cache.ld_clean = cache.ld_clean.to(dtype);
  cache.ld_patch = ld_patch.to(dtype);
  for (Site site : options.sites)
    for (int64_t l : layers) {
      const int64_t i = l * kNumSites + static_cast<int>(site);
      cache.clean[i] = clean.recorded(site, l).to(dtype);
      cache.grad[i] = clean.gradient(site, l).to(dtype);
      cache.patch[i] = patch.recorded(site, l).to(dtype);
    }
  return cache;
}

}  // namespace sfc::engines
