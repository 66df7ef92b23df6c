// Exact activation patching of error nodes (docs/design.md §1): run clean with x ← x + (e(x') − e(x)) at
// one site, at one position or all positions, and read the change in LD. The fast path resumes
// from the cached residual stream at the site's layer, stacks many interventions into one
// forward, and skips nodes whose effect is exactly 0 (e(x') = e(x) there, or in the last layer a
// position other than the answer's). The slow path runs one full forward from the tokens per node,
// as the original notebooks did. Either way an effect is LD_run − LD_base with both sides from the
// same computation (the same forward, or a forward of the same shape): a baseline from another
// kind of forward puts a rounding offset on every effect (up to 2e-5 in fp32 and 0.25 in bf16 on
// the fixture, whose LD reaches 28).
#include <torch/torch.h>

#include <algorithm>
#include <numeric>

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

// LD of the batch rows `rows` (R) when `delta` (R, T − offset, W, compute dtype) is added to the
// site's activation at positions ≥ offset: (R) in the compute dtype. Resumes the clean run at the
// site's layer, and computes only positions ≥ offset: in a causal model nothing before the first
// changed position can change, so those keys and values come from the clean run. The sum x + Δ is
// formed in the compute dtype and cast to the model's once.
torch::Tensor ld_with_delta(const model::Gemma2Impl& model, const data::PairBatch& batch, Site site, int64_t layer,
                            const BatchCache& cache, const torch::Tensor& rows, const torch::Tensor& delta,
                            int64_t offset) {
  const int64_t L = model.config().n_layer;
  auto r = rows.to(cache.resid_in[0].device());
  const model::KvPrefix prefix{&cache.kv, r, offset};
  auto answers = detail::select_answers(batch.answers, rows);
  answers.pos = answers.pos - offset;  // answer positions within the computed positions
  const auto answers_at_0 = detail::answers_at_only_position(answers);  // of run_to_answer's output
  torch::Tensor ld;
  // The last layer runs only at the answer positions (run_to_answer) unless the site is in it.
  if (site == Site::kResid) {  // the output of `layer` is the input of the next one
    auto h = cache.resid_in[layer + 1].index_select(0, r).slice(1, offset);
    auto h_in = (h.to(delta.scalar_type()) + delta).to(h.scalar_type());
    ld = model::logit_diff(model, model.run_to_answer(h_in, layer + 1, answers.pos, nullptr, &prefix), answers_at_0);
  } else {
    model::SiteCalls sites(L);
    detail::add_in_compute_dtype(sites, site, layer, delta);
    auto h_in = cache.resid_in[layer].index_select(0, r).slice(1, offset);
    if (layer + 1 < L)
      ld = model::logit_diff(model, model.run_to_answer(h_in, layer, answers.pos, &sites, &prefix), answers_at_0);
    else
      ld = model::logit_diff(model, model.run_layers(h_in, layer, L, &sites, nullptr, &prefix), answers);
  }
  return ld.to(delta.scalar_type());
}

// What patching adds at one site and layer: the error-node difference e(x') − e(x), or for
// full-site patching x' − x.
struct SitePatch {
  Site site;
  int64_t layer;
  torch::Tensor delta;  // (B, T, W) compute dtype, 0 at padding
  torch::Tensor moved;  // (B, T) bool on the CPU: Δ ≠ 0 somewhere
};

SitePatch make_site_patch(Site site, int64_t layer, const torch::Tensor& delta, const data::PairBatch& batch) {
  auto d = delta.masked_fill(~batch.valid.to(delta.device()).unsqueeze(-1), 0);  // (B, T, W)
  return {site, layer, d, (d != 0).any(-1).to(torch::kCPU)};
}

// The error-node difference e(x') − e(x) of a site: all SAE arithmetic in the compute dtype.
SitePatch error_patch(const sae::JumpReluSae& sae, const BatchCache& cache, Site site, int64_t layer,
                      const data::PairBatch& batch) {
  const auto& x = cache.at(cache.clean, site, layer);        // (B, T, W) compute dtype
  const auto& x_patch = cache.at(cache.patch, site, layer);  // (B, T, W) compute dtype
  return make_site_patch(site, layer, sae.error(x_patch) - sae.error(x), batch);
}

// One intervention: pair `pair` run clean with the site's Δ added at one position, or at all of its
// positions (global mode).
struct Intervention {
  int64_t pair;
  int64_t position;  // the patched position, or kAllPositions
  int64_t first;     // the first position where the added Δ is non-zero
};
constexpr int64_t kAllPositions = -1;

// One forward of run_interventions: `members` (indices into the list) as rows 0..R−1, then one
// baseline row per pair they touch, rows R..R+U−1 (`pairs`, in order of first appearance).
struct Chunk {
  std::vector<int64_t> members, pairs;
  int64_t offset = 0;  // the first position any member changes
};

// Cuts the interventions into forwards of at most `cap` rows (baselines included). The order decides
// the cost: by first position, a forward starts late and recomputes few positions, but holds a
// baseline for every pair at those positions; pair by pair, it needs few baselines but starts
// early. So the pairs go in blocks of P, by first position within a block, and P (B, B/2, …, 1)
// is the one whose forwards compute the fewest (row, position) cells.
std::vector<Chunk> plan_chunks(const std::vector<Intervention>& list, int64_t n_pairs, int64_t n_tokens, int64_t cap) {
  const int64_t N = static_cast<int64_t>(list.size());
  std::vector<Chunk> best;
  int64_t best_cost = -1;
  for (int64_t P = std::max<int64_t>(1, n_pairs);; P = (P + 1) / 2) {
    std::vector<int64_t> order(N);
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) {
      return std::pair{list[a].pair / P, list[a].first} < std::pair{list[b].pair / P, list[b].first};
    });
    std::vector<Chunk> chunks;
    int64_t cost = 0;
    for (int64_t i = 0; i < N;) {
      Chunk c;
      c.offset = list[order[i]].first;
      std::vector<bool> has_base(n_pairs, false);
      for (; i < N; ++i) {
        const auto& v = list[order[i]];
        const int64_t rows = static_cast<int64_t>(c.members.size() + c.pairs.size()) + (has_base[v.pair] ? 1 : 2);
        if (rows > cap) break;
        if (!has_base[v.pair]) c.pairs.push_back(v.pair);
        has_base[v.pair] = true;
        c.members.push_back(order[i]);
        c.offset = std::min(c.offset, v.first);
      }
      cost += static_cast<int64_t>(c.members.size() + c.pairs.size()) * (n_tokens - c.offset);
      chunks.push_back(std::move(c));
    }
    if (best_cost < 0 || cost < best_cost) {
      best_cost = cost;
      best = std::move(chunks);
    }
    if (P == 1) break;
  }
  return best;
}

// Effects (N) float32 of the interventions: LD with the intervention − LD of the same pair with
// nothing added, both rows of the same resumed forward (same positions, same kernels), so a node
// that does not change the answer's logits gets 0 up to the rounding of one row against another
// (exactly 0 when nothing row-dependent follows it). Each forward holds at most max(max_rows, 2)
// rows, planned by plan_chunks.
torch::Tensor run_interventions(const model::Gemma2Impl& model, const data::PairBatch& batch, const BatchCache& cache,
                                const SitePatch& patch, const std::vector<Intervention>& list, int64_t max_rows) {
  const int64_t N = static_cast<int64_t>(list.size()), B = batch.size(), T = patch.delta.size(1);
  const auto& delta = patch.delta;
  auto effects = torch::zeros({N}, torch::kFloat32);
  const auto index = torch::TensorOptions().dtype(torch::kInt64);
  for (const auto& chunk : plan_chunks(list, B, T, std::max<int64_t>(2, max_rows))) {
    const auto& members = chunk.members;
    const auto& pairs = chunk.pairs;
    std::vector<int64_t> slot(B, -1);  // slot[b]: pair b's baseline row among the U
    for (size_t u = 0; u < pairs.size(); ++u) slot[pairs[u]] = static_cast<int64_t>(u);
    const int64_t R = static_cast<int64_t>(members.size()), U = static_cast<int64_t>(pairs.size());
    const int64_t offset = chunk.offset;
    std::vector<int64_t> row_pair(R + U), base_row(R), at_row, at_pair, at_pos, all_row, all_pair;
    for (int64_t r = 0; r < R; ++r) {
      const auto& v = list[members[r]];
      row_pair[r] = v.pair;
      base_row[r] = R + slot[v.pair];
      if (v.position == kAllPositions) {
        all_row.push_back(r);
        all_pair.push_back(v.pair);
      } else {
        at_row.push_back(r);
        at_pair.push_back(v.pair);
        at_pos.push_back(v.position);
      }
    }
    std::copy(pairs.begin(), pairs.end(), row_pair.begin() + R);
    auto on_device = [&](const std::vector<int64_t>& v) { return torch::tensor(v, index).to(delta.device()); };
    auto d = torch::zeros({R + U, T - offset, delta.size(2)}, delta.options());  // baselines stay 0
    if (!at_row.empty()) {
      auto pos = on_device(at_pos);
      d.index_put_({on_device(at_row), pos - offset}, delta.index({on_device(at_pair), pos}));
    }
    if (!all_row.empty())
      d.index_copy_(0, on_device(all_row), delta.index_select(0, on_device(all_pair)).slice(1, offset));
    auto ld = ld_with_delta(model, batch, patch.site, patch.layer, cache, torch::tensor(row_pair, index), d, offset)
                  .to(torch::kCPU);  // (R + U)
    auto effect = ld.slice(0, 0, R) - ld.index_select(0, torch::tensor(base_row, index));  // (R), compute dtype
    effects.index_put_({torch::tensor(members, index)}, effect.to(torch::kFloat32));
  }
  return effects;
}

// Per-position mode: each chosen (pair, position) node patched alone -> patch_effect and
// patch_effect_norm of the layer; NaN where not chosen. Nodes that cannot change LD have effect
// exactly 0 and need no forward: positions with Δ = 0, and in the last layer every position but the
// answer's (each site there feeds only its own position's output, and LD reads the answer's).
std::vector<Intervention> per_position_interventions(const SitePatch& patch, const torch::Tensor& chosen,
                                                     const data::PairBatch& batch, int64_t n_layer) {
  std::vector<Intervention> list;
  auto runs = chosen & patch.moved;  // (B, T)
  if (patch.layer == n_layer - 1)
    runs = runs & (torch::arange(runs.size(1)).unsqueeze(0) == batch.answers.pos.to(torch::kCPU).unsqueeze(1));
  auto nodes = runs.nonzero();  // (R, 2): pair, position
  auto acc = nodes.accessor<int64_t, 2>();
  for (int64_t i = 0; i < nodes.size(0); ++i) list.push_back({acc[i][0], acc[i][1], acc[i][1]});
  return list;
}

// Global mode: every position of each prompt patched at once. A pair whose error never moves has
// effect 0 with nothing to run.
std::vector<Intervention> global_interventions(const SitePatch& patch) {
  std::vector<Intervention> list;
  auto any = patch.moved.any(1);
  auto first = patch.moved.to(torch::kInt32).argmax(1);  // (B) first position with Δ ≠ 0
  auto any_b = any.accessor<bool, 1>();
  auto first_b = first.accessor<int64_t, 1>();
  for (int64_t b = 0; b < patch.moved.size(0); ++b)
    if (any_b[b]) list.push_back({b, kAllPositions, first_b[b]});
  return list;
}

void put_per_position(const data::PairBatch& batch, const BatchCache& cache, const SitePatch& patch,
                      const torch::Tensor& chosen, const std::vector<Intervention>& list, const torch::Tensor& effects,
                      SiteErrorScores& e) {
  const int64_t B = batch.size(), T = batch.n_tokens();
  auto effect = torch::full({B, T}, NAN, torch::kFloat32);
  effect.masked_fill_(chosen, 0.0f);  // the nodes that did not run have effect exactly 0
  auto out = effect.accessor<float, 2>();
  auto in = effects.accessor<float, 1>();
  for (size_t i = 0; i < list.size(); ++i)
    if (list[i].position != kAllPositions) out[list[i].pair][list[i].position] = in[i];
  detail::put_scores(e.patch_effect, patch.layer, effect, batch.valid);
  auto norm = detail::normalise_effect(effect, cache.ld_clean.to(torch::kCPU, torch::kFloat32).unsqueeze(1),
                                       cache.ld_patch.to(torch::kCPU, torch::kFloat32).unsqueeze(1));
  detail::put_scores(e.patch_effect_norm, patch.layer, norm, batch.valid);
}

void put_global(const data::PairBatch& batch, const BatchCache& cache, const SitePatch& patch,
                const std::vector<Intervention>& list, const torch::Tensor& effects, SiteErrorScores& e) {
  auto global = torch::zeros({batch.size()}, torch::kFloat32);  // 0 where the error never moves
  auto out = global.accessor<float, 1>();
  auto in = effects.accessor<float, 1>();
  for (size_t i = 0; i < list.size(); ++i)
    if (list[i].position == kAllPositions) out[list[i].pair] = in[i];
  e.patch_effect_global.select(1, patch.layer).copy_(global);
  e.patch_effect_global_norm.select(1, patch.layer).copy_(detail::normalise_effect(
      global, cache.ld_clean.to(torch::kCPU, torch::kFloat32), cache.ld_patch.to(torch::kCPU, torch::kFloat32)));
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
      const auto patch = error_patch(saes.at(site, l), cache, site, l, batch);
      // Both modes in one list: a pair's global row shares the baseline row of its per-position nodes.
      std::vector<Intervention> list;
      if (options.patch_per_position) list = per_position_interventions(patch, chosen, batch, L);
      if (options.patch_global) {
        auto global = global_interventions(patch);
        list.insert(list.end(), global.begin(), global.end());
      }
      const auto effects = run_interventions(model, batch, cache, patch, list, options.max_rows);
      auto& e = result.error[static_cast<int>(site)];
      if (options.patch_per_position) put_per_position(batch, cache, patch, chosen, list, effects, e);
      if (options.patch_global) put_global(batch, cache, patch, list, effects, e);
    }
  }
}

void run_patch_slow(const model::Gemma2Impl& model, const data::PairBatch& batch, const SaeSet& saes,
                    const EngineOptions& options, const BatchCache& cache, BatchResult& result) {
  torch::NoGradGuard no_grad;
  const int64_t L = model.config().n_layer, B = batch.size(), T = batch.n_tokens();
  const auto chosen = chosen_positions(batch, options.patch_positions);
  auto ld_clean = cache.ld_clean.to(torch::kCPU, torch::kFloat64);
  auto ld_patch = cache.ld_patch.to(torch::kCPU, torch::kFloat64);
  // LD of pair b alone from one full forward from its tokens, with `delta` (1, T, W) added at the site.
  auto ld_of = [&](int64_t b, Site site, int64_t l, const torch::Tensor& delta) {
    model::SiteCalls sites(L);
    detail::add_in_compute_dtype(sites, site, l, delta);
    auto h = model.forward(batch.clean_ids.slice(0, b, b + 1), &sites);
    auto answers = detail::select_answers(batch.answers, torch::tensor({b}, torch::kInt64));
    return model::logit_diff(model, h, answers).to(torch::kFloat64).item<double>();
  };
  auto normalised = [&](int64_t b, double effect) {
    const double denom = ld_patch[b].item<double>() - ld_clean[b].item<double>();
    return effect / (denom == 0 ? 1.0 : denom);
  };
  for (Site site : options.sites) {
    for (int64_t l : detail::selected_layers(options, L)) {
      if (!saes.has(site, l)) continue;
      const auto delta = error_patch(saes.at(site, l), cache, site, l, batch).delta;  // (B, T, W)
      auto& e = result.error[static_cast<int>(site)];
      for (int64_t b = 0; b < B; ++b) {
        // The baseline: the same full forward with zero added.
        const double base = ld_of(b, site, l, torch::zeros({1, T, delta.size(2)}, delta.options()));
        if (options.patch_per_position) {
          for (int64_t p = 0; p < T; ++p) {
            if (!chosen[b][p].item<bool>()) continue;
            auto d = torch::zeros({1, T, delta.size(2)}, delta.options());
            d[0][p] = delta[b][p];
            const double effect = ld_of(b, site, l, d) - base;
            e.patch_effect[b][l][p] = effect;
            e.patch_effect_norm[b][l][p] = normalised(b, effect);
          }
        }
        if (options.patch_global) {
          const double effect = ld_of(b, site, l, delta.slice(0, b, b + 1)) - base;
          e.patch_effect_global[b][l] = effect;
          e.patch_effect_global_norm[b][l] = normalised(b, effect);
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
  for (int64_t l : layers) {
    // x ← x' at every position: one global intervention per pair, all in one forward with their
    // baseline rows.
    const auto patch = make_site_patch(site, l, cache.at(cache.patch, site, l) - cache.at(cache.clean, site, l), batch);
    const auto list = global_interventions(patch);
    const auto effects = run_interventions(model, batch, cache, patch, list, 2 * B);
    auto effect = torch::zeros({B}, torch::kFloat32);  // 0 where x' = x
    auto at = effect.accessor<float, 1>();
    auto in = effects.accessor<float, 1>();
    for (size_t i = 0; i < list.size(); ++i) at[list[i].pair] = in[i];
    out.select(1, l).copy_(effect);
  }
  return out;
}

}  // namespace sfc::engines
