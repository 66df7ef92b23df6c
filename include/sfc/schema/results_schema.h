// Every name of the `sfc run` results file: groups, datasets, their dimensions and element types,
// and attributes (docs/style.md §9). A contract with the plots and later passes: analysis/sfc_schema.py
// mirrors this header and docs/results-schema.md describes it; change all three together and bump
// kSchemaVersion.
//
// Dimensions: N pairs, L layers, T longest prompt of the dataset (tokens), F widest SAE of a site,
// k = output.topk. Floats are NaN where not computed; int ids are -1 where absent.
#pragma once

#include <array>
#include <string>

#include "sfc/core/site.h"

namespace sfc::schema {

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

// ---- /timing: where a run's time went, per MPI rank and phase (written by `sfc run`) ----
// W = ranks. Phases: load (model, data, SAEs), forward and backward (clean and patch passes), sae
// (AtP's SAE arithmetic), ig, patch, comm (MPI waits and reductions, load imbalance shows here), io
// (shards and the results file). Covers this invocation only: a resumed run times what it did.
inline constexpr const char* kTiming = "/timing";
inline constexpr std::array<const char*, 8> kTimingPhases = {"load", "forward", "backward", "sae",
                                                             "ig",   "patch",   "comm",     "io"};
inline constexpr Entry kTimingSeconds{"seconds", "W,P", Type::kFloat64};   // [rank, phase]
inline constexpr Entry kTimingBatches{"batches", "W", Type::kInt64};       // batches the rank computed
inline constexpr Entry kTimingPairs{"pairs", "W", Type::kInt64};           // pairs the rank computed
inline constexpr Entry kTimingPeakRss{"peak_rss_bytes", "W", Type::kInt64}; // the rank's peak resident memory
// Attributes of /timing (text): phases (comma list), world_size, data_groups, site_groups,
// wall_seconds (whole invocation up to the combine), device, threads (per rank), cpu_blas (rank 0's
// CPU BLAS and its kernels, e.g. "OpenBLAS 0.3.21, SkylakeX kernels": CPU timings depend on it).
inline constexpr const char* kAttrPhases = "phases";
inline constexpr const char* kAttrWorldSize = "world_size";
inline constexpr const char* kAttrDataGroups = "data_groups";
inline constexpr const char* kAttrSiteGroups = "site_groups";
inline constexpr const char* kAttrWallSeconds = "wall_seconds";
inline constexpr const char* kAttrDevice = "device";
inline constexpr const char* kAttrThreads = "threads";
inline constexpr const char* kAttrCpuBlas = "cpu_blas";

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

// ---- /summary: the reduction pass (`sfc reduce`; docs/results-schema.md "/summary") ----
// Statistics over pairs, agreement of AtP, IG and exact patching, latent means and top latents.
// Floats are fp64, NaN where undefined. K = the pass's topk (not output.topk), first so that a rerun
// with another topk can resize the datasets (only the first dimension can change).
inline constexpr const char* kSummary = "/summary";
// The per-node metrics summarised: these 7 of /error/<site>, and the 4 of /resid_post.
inline constexpr std::array<Entry, 7> kSummaryErrorMetrics = {kAtp,  kIg,          kDeltaNorm,      kGradNorm,
                                                              kCos,  kPatchEffect, kPatchEffectNorm};
// /summary/error/<site>/<metric>/<stat> and /summary/resid_post/<metric>/<stat>: over pairs, NaN ignored.
inline constexpr Entry kSummaryCount{"count", "L,T", Type::kInt64};              // finite values
inline constexpr Entry kSummaryMean{"mean", "L,T", Type::kFloat64};
inline constexpr Entry kSummaryStd{"std", "L,T", Type::kFloat64};                // sample std (n - 1)
inline constexpr Entry kSummaryAnswerCount{"answer_count", "L", Type::kInt64};   // at each pair's answer_pos
inline constexpr Entry kSummaryAnswerMean{"answer_mean", "L", Type::kFloat64};
inline constexpr Entry kSummaryAnswerStd{"answer_std", "L", Type::kFloat64};
inline constexpr std::array<Entry, 6> kSummaryMetricStats = {kSummaryCount,       kSummaryMean,       kSummaryStd,
                                                             kSummaryAnswerCount, kSummaryAnswerMean, kSummaryAnswerStd};
// /summary/corr/<site>/<grouping>/<name>: correlations of AtP, IG and patch_effect over the nodes
// where all three are finite, grouped by
struct SummaryGrouping {
  const char* name;
  const char* dims;  // of every dataset of the group
};
inline constexpr SummaryGrouping kCorrByLayer{"layer", "L"};            // (pair, position) nodes of a layer
inline constexpr SummaryGrouping kCorrByPosition{"position", "T"};      // (pair, layer) nodes at a position
inline constexpr SummaryGrouping kCorrAnswerByLayer{"answer_layer", "L"};  // pairs at (layer, answer_pos)
inline constexpr SummaryGrouping kCorrAnswer{"answer", "1"};            // (pair, layer) nodes at answer_pos
inline constexpr SummaryGrouping kCorrLayerMeans{"layer_means", "1"};   // layers: answer_layer's means
inline constexpr std::array<SummaryGrouping, 5> kCorrGroupings = {kCorrByLayer, kCorrByPosition, kCorrAnswerByLayer,
                                                                  kCorrAnswer, kCorrLayerMeans};
inline constexpr const char* kCorr = "corr";            // /summary/corr
inline constexpr const char* kCorrCount = "count";      // int64: nodes (layers, for layer_means)
// float64, pairs in the order AtP-patch, IG-patch, AtP-IG ("patch" = patch_effect)
inline constexpr std::array<const char*, 6> kCorrStats = {"pearson_atp_patch",  "pearson_ig_patch",  "pearson_atp_ig",
                                                          "spearman_atp_patch", "spearman_ig_patch", "spearman_atp_ig"};
// answer_layer only, float64 [L]: the means over its nodes, whose correlation is layer_means.
inline constexpr std::array<const char*, 3> kCorrMeans = {"mean_atp", "mean_ig", "mean_patch"};
// /summary/latents/<site>/...: sites with SAEs only.
inline constexpr Entry kSummaryLatentAtpMean{"atp_mean", "L,T,F", Type::kFloat64};  // atp_sum / count[t]
inline constexpr Entry kSummaryLatentIgMean{"ig_mean", "L,T,F", Type::kFloat64};
inline constexpr Entry kSummaryTopkIndex{"topk_index", "K,L", Type::kInt32};  // row i: i-th largest score; -1 pad
inline constexpr Entry kSummaryTopkAtp{"topk_atp", "K,L", Type::kFloat64};    // score: sum over t of |atp_mean|
inline constexpr Entry kSummaryTopkIg{"topk_ig", "K,L", Type::kFloat64};      // sum over t of |ig_mean|, same latents
// Attributes of /summary (text): n_pairs, n_layer, n_tokens (as the root's), and these.
inline constexpr const char* kAttrSummaryTopk = "topk";
inline constexpr const char* kAttrSummaryLeafRows = "leaf_rows";
// The CSV written next to the file: <stem> + suffix, long format with these columns.
inline constexpr const char* kSummaryCsvSuffix = ".summary.csv";
inline constexpr const char* kSummaryCsvColumns = "site,layer,position,quantity,statistic,value,n";

}  // namespace sfc::schema
