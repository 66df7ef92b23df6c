// Every name of the `sfc run` results file: groups, datasets, their dimensions and element types,
// and attributes (STYLE.md §9). A contract with the plots and later passes: analysis/sfc_schema.py
// mirrors this header and docs/results-schema.md describes it; change all three together and bump
// kSchemaVersion.
//
// Dimensions: N pairs, L layers, T longest prompt of the dataset (tokens), F widest SAE of a site,
// k = output.topk. Floats are NaN where not computed; int ids are -1 where absent.
#pragma once

#include <array>
#include <string>

#include "sfc/core/site.h"

namespace sfc::output::schema {

inline constexpr const char* kSchemaVersion = "1";

enum class Type { kFloat32, kFloat64, kInt32, kInt64 };

// One dataset: its name inside its group, its dimension letters ("N,L,T") and element type.
struct Entry {
  const char* name;
  const char* dims;
  Type type;
};

// ---- /pairs: one row per prompt pair ----
inline constexpr const char* kPairs = "/pairs";
inline constexpr Entry kCleanIds{"clean_ids", "N,T", Type::kInt32};      // pad -1 after the prompt
inline constexpr Entry kPatchIds{"patch_ids", "N,T", Type::kInt32};
inline constexpr Entry kLength{"length", "N", Type::kInt32};
inline constexpr Entry kAnswerPos{"answer_pos", "N", Type::kInt32};     // length - 1
inline constexpr Entry kCleanAnswer{"clean_answer", "N", Type::kInt32};
inline constexpr Entry kPatchAnswer{"patch_answer", "N", Type::kInt32}; // the first patch answer
inline constexpr Entry kLdClean{"ld_clean", "N", Type::kFloat32};       // LD = logit(patch) - logit(clean)
inline constexpr Entry kLdPatch{"ld_patch", "N", Type::kFloat32};
inline constexpr std::array<Entry, 8> kPairsDatasets = {kCleanIds, kPatchIds, kLength,  kAnswerPos,
                                                        kCleanAnswer, kPatchAnswer, kLdClean, kLdPatch};
// Attributes of /pairs: bad records skipped with data.on_bad_record = skip, and why (one per line).
inline constexpr const char* kAttrNSkipped = "n_skipped";
inline constexpr const char* kAttrSkipReasons = "skip_reasons";
inline constexpr const char* kAttrSource = "source";  // the pairs file

// ---- /error/{resid,mlp,attn}: error-node scores per pair, layer, position ----
inline constexpr const char* kError = "/error";
inline constexpr Entry kAtp{"atp", "N,L,T", Type::kFloat32};
inline constexpr Entry kIg{"ig", "N,L,T", Type::kFloat32};
inline constexpr Entry kDeltaNorm{"delta_norm", "N,L,T", Type::kFloat32};
inline constexpr Entry kGradNorm{"grad_norm", "N,L,T", Type::kFloat32};
inline constexpr Entry kCos{"cos", "N,L,T", Type::kFloat32};
inline constexpr Entry kPatchEffect{"patch_effect", "N,L,T", Type::kFloat32};
inline constexpr Entry kPatchEffectNorm{"patch_effect_norm", "N,L,T", Type::kFloat32};
inline constexpr Entry kPatchEffectGlobal{"patch_effect_global", "N,L", Type::kFloat32};
inline constexpr Entry kPatchEffectGlobalNorm{"patch_effect_global_norm", "N,L", Type::kFloat32};
inline constexpr std::array<Entry, 9> kErrorDatasets = {kAtp, kIg, kDeltaNorm, kGradNorm, kCos, kPatchEffect,
                                                        kPatchEffectNorm, kPatchEffectGlobal,
                                                        kPatchEffectGlobalNorm};

// ---- /resid_post: Task A metrics of the raw residual stream (x' - x, no SAE) ----
inline constexpr const char* kResidPost = "/resid_post";
inline constexpr std::array<Entry, 4> kResidPostDatasets = {kAtp, kDeltaNorm, kGradNorm, kCos};

// ---- /latents: latent scores, only for sites with SAEs ----
inline constexpr const char* kLatents = "/latents";
inline constexpr Entry kLatentCount{"count", "T", Type::kInt64};  // /latents/count: pairs having position t
// /latents/{site}/...: sums over pairs (NaN ignored; NaN where no pair computed it), always
inline constexpr Entry kAtpSum{"atp_sum", "L,T,F", Type::kFloat64};
inline constexpr Entry kIgSum{"ig_sum", "L,T,F", Type::kFloat64};
// output.latents = sum: per-pair top-k latents by |AtP| (index -1, value NaN where fewer)
inline constexpr Entry kAtpTopkIndex{"atp_topk_index", "N,L,T,k", Type::kInt32};
inline constexpr Entry kAtpTopkValue{"atp_topk_value", "N,L,T,k", Type::kFloat32};
// output.latents = full: every latent score (narrower SAEs NaN-padded to F)
inline constexpr Entry kLatentAtp{"atp", "N,L,T,F", Type::kFloat32};
inline constexpr Entry kLatentIg{"ig", "N,L,T,F", Type::kFloat32};

// ---- attributes ----
inline constexpr const char* kAttrDims = "dims";  // on every dataset: its Entry::dims
// Root attributes.
inline constexpr const char* kAttrSchemaVersion = "schema_version";
inline constexpr const char* kAttrConfig = "config";            // resolved INI text
inline constexpr const char* kAttrModel = "model";              // model folder (absolute)
inline constexpr const char* kAttrSae = "sae";                  // SAE folder (absolute)
inline constexpr const char* kAttrVersion = "sfc_version";
inline constexpr const char* kAttrCommandLine = "command_line";
// Root attributes with the sizes (decimal text): n_pairs, n_layer, n_tokens, and per site
// "n_latents_<site>" (F; 0 when the site has no SAEs).
inline constexpr const char* kAttrNPairs = "n_pairs";
inline constexpr const char* kAttrNLayer = "n_layer";
inline constexpr const char* kAttrNTokens = "n_tokens";
inline std::string attr_n_latents(Site site) { return std::string("n_latents_") + site_name(site); }

// "/error/resid/atp" and the like.
inline std::string path(const char* group, const Entry& entry) { return std::string(group) + "/" + entry.name; }
inline std::string path(const char* group, Site site, const Entry& entry) {
  return std::string(group) + "/" + site_name(site) + "/" + entry.name;
}

}  // namespace sfc::output::schema
