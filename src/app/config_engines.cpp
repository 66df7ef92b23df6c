// The parts of RunConfig that speak the engines' types (sfc/engines/engine_types.h, which needs
// LibTorch), apart from config.cpp so that `sfc` can parse and print a config without LibTorch.
#include "sfc/app/config.h"
#include "sfc/engines/engine_types.h"

namespace sfc::app {

engines::PatchPositions PatchSection::position_list() const {
  engines::PatchPositions out;
  out.list = position_numbers();
  out.all = out.list.empty();
  return out;
}

engines::LatentOutput OutputSection::latent_output() const {
  if (latents == "full") return engines::LatentOutput::kFull;
  if (latents == "none") return engines::LatentOutput::kNone;
  return engines::LatentOutput::kSum;
}

engines::EngineOptions RunConfig::engine_options() const {
  engines::EngineOptions options;
  options.sites = sae.site_list();
  options.layers = sae.layer_list();
  options.ig_steps = ig.steps;
  options.patch_positions = patch.position_list();
  options.patch_per_position = patch.mode != "global";
  options.patch_global = patch.mode != "per_position";
  options.latents = output.latent_output() != engines::LatentOutput::kNone;
  options.max_rows = patch.max_rows;
  return options;
}

}  // namespace sfc::app
