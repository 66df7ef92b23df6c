// Exact activation patching of error nodes (docs/design.md §1): run clean with x ← x + (e(x') − e(x)) at
// one site, at one position or all positions, and read the change in LD. The fast path resumes
// from the cached residual stream at the site's layer, stacks many interventions into one
// forward, and skips positions where e(x') = e(x) exactly (their effect is exactly 0). The slow
// path runs one full forward from the tokens per node, as the original notebooks did.
#include <torch/torch.h>

#include "engine_util.h"
#include "sfc/engines/engines.h"

namespace sfc::engines {
namespace {

// (B, T) bool: positions patching visits — the chosen ones that exist in each prompt.
torch::Tensor chosen_positions(const data::PairBatch& batch, const PatchPositions& positions) {
  auto valid = batch.valid.to(torch::kCPU);
  if (positions.all) return valid;
  auto chosen = torch::zeros_like(valid);
  auto length = batch.length.to(torch::kCPU);
  for (int64_t b = 0; b < batch.size(); ++b) {
    const int64_t n = length[b].item<int64_t>();
    for (int64_t p : positions.list) {
      const int64_t q = p < 0 ? n + p : p;
      if (q >= 0 && q < n) chosen[b][q] = true;
    }
  }
  return chosen;
}

// LD of the batch rows `rows` (R) when `delta` (R, T − offset, W) is added to the site's activation
// at positions ≥ offset. Resumes the clean run at the site's layer, and computes only positions
// ≥ offset: in a causal model nothing before the first changed position can change, so those keys
// and values come from the clean run.
torch::Tensor ld_with_delta(const model::Gemma2Impl& model, const data::PairBatch& batch, Site site, int64_t layer,
                            const BatchCache& cache, const torch::Tensor& rows, const torch::Tensor& delta,
                            int64_t offset) {
  const int64_t L = model.config().n_layer;
  auto r = rows.to(cache.resid_in[0].device());
  const model::KvPrefix prefix{&cache.kv, r, offset};
  auto answers = detail::select_answers(batch.answers, rows);
  answers.pos = answers.pos - offset;  // answer positions within the computed positions
  const auto answers_at_0 = detail::answers_at_only_position(answers);  // of run_to_answer's output
  // The last layer runs only at the answer positions (run_to_answer) unless the site is in it.
  if (site == Site::kResid) {  // the output of `layer` is the input of the next one
    auto h_in = cache.resid_in[layer + 1].index_select(0, r).slice(1, offset) + delta;
    return model::logit_diff(model, model.run_to_answer(h_in, layer + 1, answers.pos, nullptr, &prefix), answers_at_0);
  }
  model::SiteCalls sites(L);
  sites.add(site, layer, delta);
  auto h_in = cache.resid_in[layer].index_select(0, r).slice(1, offset);
  if (layer + 1 < L)
    return model::logit_diff(model, model.run_to_answer(h_in, layer, answers.pos, &sites, &prefix), answers_at_0);
  return model::logit_diff(model, model.run_layers(h_in, layer, L, &sites, nullptr, &prefix), answers);
}

// The error-node difference e(x') − e(x) of a site (B, T, W), in the model's dtype.
torch::Tensor error_delta(const sae::JumpReluSae& sae, const BatchCache& cache, Site site, int64_t layer) {
  const auto& x = cache.at(cache.clean, site, layer);
  const auto& x_patch = cache.at(cache.patch, site, layer);
  const auto dtype = sae.W_enc.scalar_type();
  return (sae.error(x_patch.to(dtype)) - sae.error(x.to(dtype))).to(x.scalar_type());
}

// Stores effects (R) of nodes (rows b_r, positions p_r) into a (B, T) table.
void scatter_effects(torch::Tensor& table, const torch::Tensor& b, const torch::Tensor& p, const torch::Tensor& effect) {
  table.index_put_({b, p}, effect.to(torch::kCPU, torch::kFloat32));
}

// The error node of one site and layer, as both patching modes need it.
struct ErrorPatch {
  Site site;
  int64_t layer;
  torch::Tensor delta;  // (B, T, W) e(x') − e(x), the model's dtype
  torch::Tensor moved;  // (B, T) bool on the CPU: Δ ≠ 0 somewhere
};

// Per-position mode: each chosen (pair, position) node patched alone, up to max_rows nodes per
// forward -> patch_effect and patch_effect_norm of the layer; NaN where not chosen.
void patch_per_position(const model::Gemma2Impl& model, const data::PairBatch& batch, const BatchCache& cache,
                        const ErrorPatch& node, const torch::Tensor& chosen, int64_t max_rows, SiteErrorScores& e) {
  const int64_t B = batch.size(), T = batch.n_tokens();
  const auto& delta = node.delta;
  const auto ld_clean = cache.ld_clean, ld_patch = cache.ld_patch;
  // Positions with Δ = 0 change nothing: effect exactly 0, no forward needed.
  auto effect = torch::full({B, T}, NAN, torch::kFloat32);
  effect.masked_fill_(chosen, 0.0f);
  // Nodes sorted by position, so each chunk starts late and recomputes few positions.
  auto nodes = (chosen & node.moved).nonzero();  // (R, 2): pair, position
  nodes = nodes.index_select(0, std::get<1>(nodes.select(1, 1).sort(/*stable=*/true, 0, false)));
  for (int64_t start = 0; start < nodes.size(0); start += max_rows) {
    auto chunk = nodes.slice(0, start, std::min(nodes.size(0), start + max_rows));
    auto b = chunk.select(1, 0), p = chunk.select(1, 1);
    const int64_t R = chunk.size(0), offset = p.min().item<int64_t>();
    auto dev_b = b.to(delta.device()), dev_p = p.to(delta.device());
    auto rows = torch::arange(R, dev_b.options());
    auto d = torch::zeros({R, T - offset, delta.size(2)}, delta.options());
    d.index_put_({rows, dev_p - offset}, delta.index({dev_b, dev_p}));  // one node per row
    auto ld = ld_with_delta(model, batch, node.site, node.layer, cache, b, d, offset);
    scatter_effects(effect, b, p, ld - ld_clean.index_select(0, dev_b));
  }
  detail::put_scores(e.patch_effect, node.layer, effect, batch.valid);
  auto norm = detail::normalise_effect(effect, ld_clean.to(torch::kCPU, torch::kFloat32).unsqueeze(1),
                                       ld_patch.to(torch::kCPU, torch::kFloat32).unsqueeze(1));
  detail::put_scores(e.patch_effect_norm, node.layer, norm, batch.valid);
}

// Global mode: every position of each prompt patched at once, up to max_rows pairs per forward ->
// patch_effect_global and patch_effect_global_norm of the layer. A pair whose error never moves has
// effect 0.
void patch_global(const model::Gemma2Impl& model, const data::PairBatch& batch, const BatchCache& cache,
                  const ErrorPatch& node, int64_t max_rows, SiteErrorScores& e) {
  const int64_t B = batch.size();
  const auto& delta = node.delta;
  const auto ld_clean = cache.ld_clean, ld_patch = cache.ld_patch;
  auto global = torch::zeros({B}, torch::kFloat32);
  auto rows = node.moved.any(1).nonzero().squeeze(1);               // (R)
  auto first_moved = node.moved.to(torch::kInt32).argmax(1);        // (B) first position with Δ ≠ 0
  for (int64_t start = 0; start < rows.size(0); start += max_rows) {
    auto b = rows.slice(0, start, std::min(rows.size(0), start + max_rows));
    const int64_t offset = first_moved.index_select(0, b).min().item<int64_t>();
    auto dev_b = b.to(delta.device());
    auto d = (delta.index_select(0, dev_b) * batch.valid.index_select(0, dev_b).unsqueeze(-1)).slice(1, offset);
    auto ld = ld_with_delta(model, batch, node.site, node.layer, cache, b, d, offset);
    global.index_put_({b}, (ld - ld_clean.index_select(0, dev_b)).to(torch::kCPU, torch::kFloat32));
  }
  e.patch_effect_global.select(1, node.layer).copy_(global);
  e.patch_effect_global_norm.select(1, node.layer).copy_(detail::normalise_effect(
      global, ld_clean.to(torch::kCPU, torch::kFloat32), ld_patch.to(torch::kCPU, torch::kFloat32)));
}

}  // namespace

void run_patch(const model::Gemma2Impl& model, const data::PairBatch& batch, const SaeSet& saes,
               const EngineOptions& options, const BatchCache& cache, BatchResult& result) {
  torch::NoGradGuard no_grad;
  const int64_t L = model.config().n_layer;
  const auto chosen = chosen_positions(batch, options.patch_positions);  // (B, T)
  for (Site site : options.sites) {
    for (int64_t l : detail::selected_layers(options, L)) {
      if (!saes.has(site, l)) continue;
      auto delta = error_delta(saes.at(site, l), cache, site, l);  // (B, T, W)
      auto moved = (delta != 0).any(-1).to(torch::kCPU);            // (B, T): Δ ≠ 0 somewhere
      const ErrorPatch node{site, l, delta, moved};
      auto& e = result.error[static_cast<int>(site)];
      if (options.patch_per_position) patch_per_position(model, batch, cache, node, chosen, options.max_rows, e);
      if (options.patch_global) patch_global(model, batch, cache, node, options.max_rows, e);
    }
  }
}

void run_patch_slow(const model::Gemma2Impl& model, const data::PairBatch& batch, const SaeSet& saes,
                    const EngineOptions& options, const BatchCache& cache, BatchResult& result) {
  torch::NoGradGuard no_grad;
  const int64_t L = model.config().n_layer, B = batch.size(), T = batch.n_tokens();
  const auto chosen = chosen_positions(batch, options.patch_positions);
  auto ld_clean = cache.ld_clean.to(torch::kCPU, torch::kFloat32);
  auto ld_patch = cache.ld_patch.to(torch::kCPU, torch::kFloat32);
  // One full forward from the tokens of pair b with `delta` (1, T, W) added at the site.
  auto effect_of = [&](int64_t b, Site site, int64_t l, const torch::Tensor& delta) {
    model::SiteCalls sites(L);
    sites.add(site, l, delta);
    auto h = model.forward(batch.clean_ids.slice(0, b, b + 1), &sites);
    auto answers = detail::select_answers(batch.answers, torch::tensor({b}, torch::kInt64));
    return model::logit_diff(model, h, answers).item<float>() - ld_clean[b].item<float>();
  };
  for (Site site : options.sites) {
    for (int64_t l : detail::selected_layers(options, L)) {
      if (!saes.has(site, l)) continue;
      auto delta = error_delta(saes.at(site, l), cache, site, l);  // (B, T, W)
      auto& e = result.error[static_cast<int>(site)];
      for (int64_t b = 0; b < B; ++b) {
        if (options.patch_per_position) {
          for (int64_t p = 0; p < T; ++p) {
            if (!chosen[b][p].item<bool>()) continue;
            auto d = torch::zeros({1, T, delta.size(2)}, delta.options());
            d[0][p] = delta[b][p];
            const float effect = effect_of(b, site, l, d);
            e.patch_effect[b][l][p] = effect;
            const float denom = ld_patch[b].item<float>() - ld_clean[b].item<float>();
            e.patch_effect_norm[b][l][p] = effect / (denom == 0 ? 1.0f : denom);
          }
        }
        if (options.patch_global) {
          auto d = (delta.slice(0, b, b + 1) * batch.valid.slice(0, b, b + 1).unsqueeze(-1));
          const float effect = effect_of(b, site, l, d);
          e.patch_effect_global[b][l] = effect;
          const float denom = ld_patch[b].item<float>() - ld_clean[b].item<float>();
          e.patch_effect_global_norm[b][l] = effect / (denom == 0 ? 1.0f : denom);
        }
      }
    }
  }
}

torch::Tensor patch_full_site(const model::Gemma2Impl& model, const data::PairBatch& batch, Site site,
                              const BatchCache& cache, const std::vector<int64_t>& layers) {
  torch::NoGradGuard no_grad;
  const int64_t L = model.config().n_layer, B = batch.size();
  auto out = torch::full({B, L}, NAN, torch::kFloat32);
  auto rows = torch::arange(B, torch::kInt64);
  for (int64_t l : layers) {
    auto delta = cache.at(cache.patch, site, l) - cache.at(cache.clean, site, l);  // x ← x' everywhere
    auto ld = ld_with_delta(model, batch, site, l, cache, rows, delta, /*offset=*/0);
    out.select(1, l).copy_((ld - cache.ld_clean).to(torch::kCPU, torch::kFloat32));
  }
  return out;
}

}  // namespace sfc::engines
