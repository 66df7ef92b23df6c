// The three SAE sites of a Gemma-2 layer (docs/design.md §1) and their names in configs, files and
// Gemma Scope release folders. Shared by the model (where sites sit in the forward) and the SAEs.
#pragma once

#include <array>
#include <string>

namespace sfc {

enum class Site { kResid = 0, kMlp = 1, kAttn = 2 };
inline constexpr int kNumSites = 3;
inline constexpr std::array<Site, kNumSites> kAllSites = {Site::kResid, Site::kMlp, Site::kAttn};

// "resid", "mlp", "attn": names in configs and in the results file.
const char* site_name(Site site);
// Suffix of the Gemma Scope release folder: "res", "mlp", "att".
const char* gemma_scope_suffix(Site site);
// Inverse of site_name; throws ConfigError naming the bad value.
Site parse_site(const std::string& name);

}  // namespace sfc
