// What the attribution engines take and give (docs/design.md §1 table, §2 "Engines"): one batch of
// pairs in, one BatchResult out. No MPI, no files. All scores are per prompt (gradient of that
// prompt's own LD, no batch-size factor), float32, NaN where not computed.
#pragma once

#include <torch/types.h>

#include <array>
#include <cstdint>
#include <vector>

#include "sfc/core/site.h"
#include "sfc/sae/sae.h"

namespace sfc::engines {

// Which positions exact patching visits: every position, or a list (negative = from the end of
// each prompt, −1 = the answer position).
struct PatchPositions {
  bool all = true;
  std::vector<int64_t> list;
};

enum class LatentOutput { kNone, kSum, kFull };

struct EngineOptions {
  std::vector<Site> sites = {Site::kResid, Site::kMlp, Site::kAttn};
  std::vector<int64_t> layers;   // empty = all layers
  int64_t ig_steps = 10;         // α = 0, 1/N, …, (N−1)/N
  PatchPositions patch_positions;
  bool patch_per_position = true;
  bool patch_global = true;
  bool latents = true;           // compute latent AtP/IG (B, L, T, F) as well
  // Rows stacked into one forward, at most: IG steps × pairs, or patch interventions plus one
  // baseline row (nothing added) per pair they touch (patching: at least 2).
  int64_t max_rows = 64;
};

// The SAEs a rank owns: sae[site][layer], undefined (d_in 0) where not loaded.
struct SaeSet {
  std::array<std::vector<sae::JumpReluSae>, kNumSites> sae;
  bool has(Site site, int64_t layer) const;
  const sae::JumpReluSae& at(Site site, int64_t layer) const;
  int64_t max_width(Site site) const;  // widest F of a site's loaded SAEs (0 if none)
};

// Scores of one site's error nodes, all layers. (B, L, T) or (B, L); NaN where not computed.
struct SiteErrorScores {
  torch::Tensor atp, ig, delta_norm, grad_norm, cos;           // (B, L, T)
  torch::Tensor patch_effect, patch_effect_norm;               // (B, L, T)
  torch::Tensor patch_effect_global, patch_effect_global_norm; // (B, L)
};

// Task A metrics of the raw residual stream (x' − x at resid, no SAE). (B, L, T).
struct RawResidScores {
  torch::Tensor atp, delta_norm, grad_norm, cos;
};

// Latent scores of one site: (B, L, T, F) with F the site's widest SAE, NaN-padded; undefined when
// not computed.
struct SiteLatentScores {
  torch::Tensor atp, ig;
};

struct BatchResult {
  torch::Tensor ld_clean, ld_patch;  // (B) LD = logit(patch answer) − logit(clean answer)
  std::array<SiteErrorScores, kNumSites> error;
  RawResidScores resid_post;
  std::array<SiteLatentScores, kNumSites> latents;
};

// A BatchResult of the right shapes, every score NaN, for B pairs, T tokens, L layers.
BatchResult empty_result(int64_t n_pairs, int64_t n_layer, int64_t n_tokens, const SaeSet& saes,
                         const EngineOptions& options);

}  // namespace sfc::engines
