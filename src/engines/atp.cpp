// Attribution patching (AtP) and the Task A metrics (docs/design.md §1): gradient from the clean run,
// differences from the patch run, all SAE arithmetic after the plain-model passes.
#include <torch/torch.h>

#include "engine_util.h"
#include "sfc/engines/engines.h"

namespace sfc::engines {
namespace {

// ‖g‖, ‖Δ‖, g·Δ and cos(g, Δ) over the width; cos is NaN where either vector is zero (undefined).
struct PairMetrics {
  torch::Tensor atp, delta_norm, grad_norm, cos;  // (B, T)
};

PairMetrics pair_metrics(const torch::Tensor& g, const torch::Tensor& delta) {
  PairMetrics m;
  m.atp = (g * delta).sum(-1);
  m.delta_norm = delta.norm(2, -1);
  m.grad_norm = g.norm(2, -1);
  auto denom = m.delta_norm * m.grad_norm;
  m.cos = torch::where(denom > 0, m.atp / denom, torch::full_like(denom, NAN));
  return m;
}

}  // namespace

void run_atp(const model::Gemma2Impl& model, const data::PairBatch& batch, const SaeSet& saes,
             const EngineOptions& options, const BatchCache& cache, BatchResult& result) {
  torch::NoGradGuard no_grad;
  const int64_t L = model.config().n_layer;
  result.ld_clean = cache.ld_clean.to(torch::kCPU, torch::kFloat32);
  result.ld_patch = cache.ld_patch.to(torch::kCPU, torch::kFloat32);
  for (Site site : options.sites) {
    for (int64_t l : detail::selected_layers(options, L)) {
      // All three in the compute dtype (fp32 for a bf16 model): see BatchCache.
      const auto& x = cache.at(cache.clean, site, l);        // (B, T, W)
      const auto& x_patch = cache.at(cache.patch, site, l);  // (B, T, W)
      const auto& g = cache.at(cache.grad, site, l);         // (B, T, W)
      if (site == Site::kResid) {  // raw residual stream, no SAE
        auto m = pair_metrics(g, x_patch - x);
        detail::put_scores(result.resid_post.atp, l, m.atp, batch.valid);
        detail::put_scores(result.resid_post.delta_norm, l, m.delta_norm, batch.valid);
        detail::put_scores(result.resid_post.grad_norm, l, m.grad_norm, batch.valid);
        detail::put_scores(result.resid_post.cos, l, m.cos, batch.valid);
      }
      if (!saes.has(site, l)) continue;
      const auto& sae = saes.at(site, l);
      auto delta_error = sae.error(x_patch) - sae.error(x);  // (B, T, W)
      auto m = pair_metrics(g, delta_error);
      auto& e = result.error[static_cast<int>(site)];
      detail::put_scores(e.atp, l, m.atp, batch.valid);
      detail::put_scores(e.delta_norm, l, m.delta_norm, batch.valid);
      detail::put_scores(e.grad_norm, l, m.grad_norm, batch.valid);
      detail::put_scores(e.cos, l, m.cos, batch.valid);
      if (options.latents) {
        // ∂m/∂f_j = W_dec[j]·g (the SAE spliced with its error term changes no gradient).
        auto latent_atp = sae.latent_grad(g) * (sae.encode(x_patch) - sae.encode(x));  // (B, T, F)
        detail::put_latents(result.latents[static_cast<int>(site)].atp, L, saes.max_width(site), l, latent_atp,
                            batch.valid);
      }
    }
  }
}

}  // namespace sfc::engines
