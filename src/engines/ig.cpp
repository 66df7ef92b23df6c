// Integrated gradients, SFC style (DESIGN.md §1): for one site at a time, the site's activation at
// all positions is set to x + α(x' − x) for α = 0, 1/N, …, (N−1)/N, everything else clean; the
// gradients there, averaged over α, times the SAE differences. Steps are stacked into the batch
// dimension and the forward resumes from the cached clean residual stream at the site's layer.
#include <torch/torch.h>

#include "engine_util.h"
#include "sfc/engines/engines.h"

namespace sfc::engines {
namespace {

// Mean over the given alphas of d(LD)/d(site activation) with the site set to x + α(x' − x):
// (B, T, W), summed over the alphas (the caller divides by N).
torch::Tensor sum_gradients(const model::Gemma2Impl& model, const data::PairBatch& batch, Site site, int64_t layer,
                            const BatchCache& cache, const torch::Tensor& alphas) {
  const int64_t L = model.config().n_layer, B = batch.size(), S = alphas.size(0);
  const auto& x = cache.at(cache.clean, site, layer);
  const auto& x_patch = cache.at(cache.patch, site, layer);
  // (S, B, T, W) -> (S·B, T, W): row k·B + b is pair b at alpha k.
  auto a = alphas.to(x.device(), x.scalar_type()).view({S, 1, 1, 1});
  auto x_alpha = (x.unsqueeze(0) + a * (x_patch - x).unsqueeze(0)).flatten(0, 1);
  auto answers = detail::repeat_answers(batch.answers, S);

  torch::Tensor x_leaf, h;
  if (site == Site::kResid) {
    // The resid site is the output of the layer: resume right after it.
    x_leaf = x_alpha.detach().requires_grad_(true);
    h = model.run_layers(x_leaf, layer + 1, L, nullptr);
  } else {
    model::SiteCalls sites(L);
    auto all = torch::ones({S * B, x.size(1)}, torch::TensorOptions().dtype(torch::kBool).device(x.device()));
    sites.replace(site, layer, x_alpha, all);
    sites.record(site, layer, /*grad=*/true);
    h = model.run_layers(cache.resid_in[layer].repeat({S, 1, 1}), layer, L, &sites);
    x_leaf = sites.recorded(site, layer);
  }
  auto ld = model::logit_diff(model, h, answers);
  auto grad = torch::autograd::grad({ld.sum()}, {x_leaf})[0];  // (S·B, T, W), rows independent
  return grad.view({S, B, grad.size(1), grad.size(2)}).sum(0);
}

// Writes error and latent IG of (site, layer) from the gradient averaged over the alphas (B, T, W).
void put_ig(const data::PairBatch& batch, const SaeSet& saes, const EngineOptions& options, const BatchCache& cache,
            Site site, int64_t l, int64_t n_layer, const torch::Tensor& grad_mean, BatchResult& result) {
  torch::NoGradGuard no_grad;
  const auto& sae = saes.at(site, l);
  const auto dtype = sae.W_enc.scalar_type();
  auto g_mean = grad_mean.to(dtype);  // (B, T, W)
  auto x = cache.at(cache.clean, site, l).to(dtype), x_patch = cache.at(cache.patch, site, l).to(dtype);
  auto ig_error = (g_mean * (sae.error(x_patch) - sae.error(x))).sum(-1);  // (B, T)
  detail::put_scores(result.error[static_cast<int>(site)].ig, l, ig_error, batch.valid);
  if (options.latents) {
    auto ig_latent = torch::matmul(g_mean, sae.W_dec.t()) * (sae.encode(x_patch) - sae.encode(x));  // (B, T, F)
    detail::put_latents(result.latents[static_cast<int>(site)].ig, n_layer, saes.max_width(site), l, ig_latent,
                        batch.valid);
  }
}

}  // namespace

void run_ig(const model::Gemma2Impl& model, const data::PairBatch& batch, const SaeSet& saes,
            const EngineOptions& options, const BatchCache& cache, BatchResult& result) {
  const int64_t L = model.config().n_layer, B = batch.size(), N = options.ig_steps;
  auto alphas = torch::arange(N, torch::kFloat64) / double(N);
  // Steps per forward so that at most max_rows rows run at once.
  const int64_t steps_per_pass = std::max<int64_t>(1, options.max_rows / std::max<int64_t>(1, B));
  for (Site site : options.sites) {
    for (int64_t l : detail::selected_layers(options, L)) {
      if (!saes.has(site, l)) continue;
      torch::Tensor grad_sum;
      for (int64_t k = 0; k < N; k += steps_per_pass) {
        auto g = sum_gradients(model, batch, site, l, cache, alphas.slice(0, k, std::min(N, k + steps_per_pass)));
        grad_sum = grad_sum.defined() ? grad_sum + g : g;
      }
      put_ig(batch, saes, options, cache, site, l, L, grad_sum / double(N), result);
    }
  }
}

void run_ig_slow(const model::Gemma2Impl& model, const data::PairBatch& batch, const SaeSet& saes,
                 const EngineOptions& options, const BatchCache& cache, BatchResult& result) {
  const int64_t L = model.config().n_layer, N = options.ig_steps;
  for (Site site : options.sites) {
    for (int64_t l : detail::selected_layers(options, L)) {
      if (!saes.has(site, l)) continue;
      const auto& x = cache.at(cache.clean, site, l);
      const auto& x_patch = cache.at(cache.patch, site, l);
      auto all = torch::ones({x.size(0), x.size(1)}, torch::TensorOptions().dtype(torch::kBool).device(x.device()));
      torch::Tensor grad_sum = torch::zeros_like(x);
      for (int64_t k = 0; k < N; ++k) {
        model::SiteCalls sites(L);
        sites.replace(site, l, x + (double(k) / double(N)) * (x_patch - x), all);
        sites.record(site, l, /*grad=*/true);
        auto h = model.forward(batch.clean_ids, &sites);
        sites.backward(model::logit_diff(model, h, batch.answers).sum());
        grad_sum = grad_sum + sites.gradient(site, l);
      }
      put_ig(batch, saes, options, cache, site, l, L, grad_sum / double(N), result);
    }
  }
}

}  // namespace sfc::engines
