// Integrated gradients, SFC style (docs/design.md §1): for one site at a time, the site's activation at
// all positions is set to x + α(x' − x) for α = 0, 1/N, …, (N−1)/N, everything else clean; the
// gradients there, averaged over α, times the SAE differences. Steps are stacked into the batch
// dimension and the forward resumes from the cached clean residual stream at the site's layer.
#include <torch/torch.h>

#include "engine_util.h"
#include "sfc/engines/engines.h"

namespace sfc::engines {
namespace {

// Sum over the given alphas of d(LD)/d(site activation) with the site set to x + α(x' − x): (B, T, W)
// in the compute dtype (fp32 for a bf16 model), summed in it too. Positions before the first one
// where x' ≠ x (in any pair) keep their clean activations, so only the later positions are
// recomputed (the earlier keys and values come from the clean run); the gradient there is left 0,
// which is harmless: every IG score multiplies it by a Δ that is exactly 0.
torch::Tensor sum_gradients(const model::Gemma2Impl& model, const data::PairBatch& batch, Site site, int64_t layer,
                            const BatchCache& cache, const torch::Tensor& alphas) {
  const int64_t B = batch.size(), S = alphas.size(0);
  const auto& x = cache.at(cache.clean, site, layer);        // (B, T, W) compute dtype
  const auto& x_patch = cache.at(cache.patch, site, layer);  // (B, T, W) compute dtype
  const int64_t T = x.size(1);
  auto moved = (x_patch != x).any(-1).any(0);  // (T)
  auto out = torch::zeros_like(x);
  if (!moved.any().item<bool>()) return out;
  const int64_t offset = moved.to(torch::kInt32).argmax().item<int64_t>();

  // (S, B, T', W) -> (S·B, T', W): row k·B + b is pair b at alpha k; T' = T − offset. α and the
  // interpolation stay in the compute dtype (α = 0.3 is 0.30078 in bf16); only the activation the
  // model reads is cast to its dtype, once.
  auto a = alphas.to(x.device(), x.scalar_type()).view({S, 1, 1, 1});
  auto x0 = x.slice(1, offset), dx = (x_patch - x).slice(1, offset);
  auto x_alpha = (x0.unsqueeze(0) + a * dx.unsqueeze(0)).flatten(0, 1).to(model.dtype());
  auto answers = detail::repeat_answers(batch.answers, S);
  answers.pos = answers.pos - offset;
  auto rows = torch::arange(B, torch::TensorOptions().dtype(torch::kInt64).device(x.device())).repeat({S});
  const model::KvPrefix prefix{&cache.kv, rows, offset};

  // Resume right after the site (skipping the part of its layer before it), the last layer only at
  // the answer positions.
  torch::Tensor base;  // what the rest of the site's layer adds x to or reads besides it
  if (site == Site::kAttn) base = cache.resid_in[layer].slice(1, offset).repeat({S, 1, 1});
  if (site == Site::kMlp) base = cache.kv.mid[layer].slice(1, offset).repeat({S, 1, 1});
  auto x_leaf = x_alpha.detach().requires_grad_(true);
  auto ld = model::logit_diff(model, model.run_from_site_to_answer(site, layer, x_leaf, base, answers.pos, &prefix),
                              detail::answers_at_only_position(answers));
  // (S·B, T', W), rows independent; upcast once, before the sum over α.
  auto grad = torch::autograd::grad({ld.sum()}, {x_leaf})[0].to(out.scalar_type());
  out.slice(1, offset).copy_(grad.view({S, B, T - offset, grad.size(2)}).sum(0));
  return out;
}

// Writes error and latent IG of (site, layer) from the gradient averaged over the alphas (B, T, W).
void put_ig(const data::PairBatch& batch, const SaeSet& saes, const EngineOptions& options, const BatchCache& cache,
            Site site, int64_t l, int64_t n_layer, const torch::Tensor& grad_mean, BatchResult& result) {
  torch::NoGradGuard no_grad;
  const auto& sae = saes.at(site, l);
  const auto& x = cache.at(cache.clean, site, l);        // (B, T, W) compute dtype
  const auto& x_patch = cache.at(cache.patch, site, l);  // (B, T, W) compute dtype
  auto ig_error = (grad_mean * (sae.error(x_patch) - sae.error(x))).sum(-1);  // (B, T)
  detail::put_scores(result.error[static_cast<int>(site)].ig, l, ig_error, batch.valid);
  if (options.latents) {
    auto ig_latent = sae.latent_grad(grad_mean) * (sae.encode(x_patch) - sae.encode(x));  // (B, T, F)
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
      // α = 0 is the clean run, whose gradient at the site the cache already holds. The sum over α
      // runs in the compute dtype.
      torch::Tensor grad_sum = cache.at(cache.grad, site, l);
      for (int64_t k = 1; k < N; k += steps_per_pass)
        grad_sum = grad_sum + sum_gradients(model, batch, site, l, cache, alphas.slice(0, k, std::min(N, k + steps_per_pass)));
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
      const auto& x = cache.at(cache.clean, site, l);        // (B, T, W) compute dtype
      const auto& x_patch = cache.at(cache.patch, site, l);  // (B, T, W) compute dtype
      auto all = torch::ones({x.size(0), x.size(1)}, torch::TensorOptions().dtype(torch::kBool).device(x.device()));
      torch::Tensor grad_sum = torch::zeros_like(x);
      for (int64_t k = 0; k < N; ++k) {
        model::SiteCalls sites(L);
        // Interpolated in the compute dtype; the site call casts it to the model's dtype once.
        sites.replace(site, l, x + (double(k) / double(N)) * (x_patch - x), all);
        sites.record(site, l, /*grad=*/true);
        auto h = model.forward(batch.clean_ids, &sites);
        sites.backward(model::logit_diff(model, h, batch.answers).sum());
        grad_sum = grad_sum + sites.gradient(site, l).to(grad_sum.scalar_type());
      }
      put_ig(batch, saes, options, cache, site, l, L, grad_sum / double(N), result);
    }
  }
}

}  // namespace sfc::engines
