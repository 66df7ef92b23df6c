// SaeSet look-ups and NaN-filled results: "not computed" is NaN everywhere in the results file.
#include "sfc/engines/engine_types.h"

#include <torch/torch.h>

#include "sfc/core/error.h"

namespace sfc::engines {

bool SaeSet::has(Site site, int64_t layer) const {
  const auto& v = sae[static_cast<int>(site)];
  return layer >= 0 && layer < static_cast<int64_t>(v.size()) && v[layer].W_enc.defined();
}

const sae::JumpReluSae& SaeSet::at(Site site, int64_t layer) const {
  if (!has(site, layer))
    throw Error(std::string("no SAE loaded for site ") + site_name(site) + " layer " + std::to_string(layer));
  return sae[static_cast<int>(site)][layer];
}

int64_t SaeSet::max_width(Site site) const {
  int64_t width = 0;
  for (const auto& s : sae[static_cast<int>(site)])
    if (s.W_enc.defined()) width = std::max(width, s.d_sae());
  return width;
}

BatchResult empty_result(int64_t n_pairs, int64_t n_layer, int64_t n_tokens, const SaeSet& saes,
                         const EngineOptions& options) {
  auto nan = [](std::vector<int64_t> shape) { return torch::full(shape, NAN, torch::kFloat32); };
  const int64_t B = n_pairs, L = n_layer, T = n_tokens;
  BatchResult r;
  r.ld_clean = nan({B});
  r.ld_patch = nan({B});
  for (Site site : kAllSites) {
    auto& e = r.error[static_cast<int>(site)];
    e.atp = nan({B, L, T});
    e.ig = nan({B, L, T});
    e.delta_norm = nan({B, L, T});
    e.grad_norm = nan({B, L, T});
    e.cos = nan({B, L, T});
    e.patch_effect = nan({B, L, T});
    e.patch_effect_norm = nan({B, L, T});
    e.patch_effect_global = nan({B, L});
    e.patch_effect_global_norm = nan({B, L});
  }
  r.resid_post = {nan({B, L, T}), nan({B, L, T}), nan({B, L, T}), nan({B, L, T})};
  // Latent tensors are made by the engines that fill them, only when options.latents is set.
  (void)saes;
  (void)options;
  return r;
}

}  // namespace sfc::engines
