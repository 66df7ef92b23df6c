// What the files of the reduction pass share (private to src/reduce): the file's layout, the partial
// moments and the split of pairs over ranks, the Spearman results and the summary rank 0 writes.
// reduce.cpp runs the pass (summarize) and says how the steps below fit together.
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <filesystem>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "sfc/core/error.h"
#include "sfc/core/site.h"
#include "sfc/h5/h5_file.h"
#include "sfc/mpi/comm.h"
#include "sfc/reduce/reduce.h"
#include "sfc/schema/results_schema.h"

namespace sfc::reduce::detail {

namespace fs = std::filesystem;
namespace sc = schema;
using mpi::Comm;

inline constexpr double kNan = std::numeric_limits<double>::quiet_NaN();
inline constexpr int kNumErrorMetrics = static_cast<int>(sc::kSummaryErrorMetrics.size());  // 7
inline constexpr int kNumResidMetrics = static_cast<int>(sc::kResidPostDatasets.size());    // 4
inline constexpr int kNumMetrics = kNumSites * kNumErrorMetrics + kNumResidMetrics;         // 25 metrics
// Positions of the three estimators in kSummaryErrorMetrics.
inline constexpr int kEstimatorMetric[3] = {0, 1, 5};  // atp, ig, patch_effect
constexpr bool same_name(const char* a, const char* b) {
  while (*a != 0 && *a == *b) ++a, ++b;
  return *a == *b;
}
static_assert(same_name(sc::kSummaryErrorMetrics[kEstimatorMetric[0]].name, "atp") &&
                  same_name(sc::kSummaryErrorMetrics[kEstimatorMetric[1]].name, "ig") &&
                  same_name(sc::kSummaryErrorMetrics[kEstimatorMetric[2]].name, "patch_effect"),
              "kEstimatorMetric must point at atp, ig, patch_effect");

static_assert(sizeof(Moments) == 3 * sizeof(double), "Moments travels as 3 doubles");
static_assert(sizeof(CoMoments) == 10 * sizeof(double), "CoMoments travels as 10 doubles");

// ---- what the file holds (results_file.cpp) ----

// Metric m of 0..kNumMetrics-1: the 7 error metrics of resid, mlp, attn, then the 4 of /resid_post.
std::string metric_path(int m);
// The metric of estimator 0..2 (atp, ig, patch_effect) of site 0..2.
int estimator_metric(int site, int estimator);

struct FileLayout {
  int64_t n_pairs = 0, n_layer = 0, n_tokens = 0;  // N, L, T
  std::array<int64_t, kNumSites> n_latents{};      // F per site (0: no SAEs)
};

// Checks the file is an `sfc run` results file this pass can read; every rank does it (same answer).
FileLayout check_results_file(const h5::File& f);
// Opens it read-only; a LoadError when it is missing, a folder or not HDF5.
h5::File open_results_file(const fs::path& file);

// ---- partial moments (moments.cpp) ----

// Everything the moments pass accumulates over pairs (kNumSites = 3 sites, kNumMetrics = 25 metrics).
struct Partial {
  std::vector<Moments> node;            // (metrics, L, T): metric at (layer, position), finite values
  std::vector<Moments> answer;          // (metrics, L): metric at (layer, the pair's answer position)
  std::vector<CoMoments> by_layer;      // (sites, L): complete triples at (layer, any position)
  std::vector<CoMoments> by_position;   // (sites, T): complete triples at (any layer, position)
  std::vector<CoMoments> answer_layer;  // (sites, L): complete triples at (layer, answer position)

  static Partial zeros(int64_t L, int64_t T) {
    Partial p;
    p.node.resize(kNumMetrics * L * T);
    p.answer.resize(kNumMetrics * L);
    p.by_layer.resize(kNumSites * L);
    p.by_position.resize(kNumSites * T);
    p.answer_layer.resize(kNumSites * L);
    return p;
  }

  void merge(const Partial& o) {
    if (o.node.empty()) return;
    if (node.empty()) {
      *this = o;
      return;
    }
    merge_all(node, o.node);
    merge_all(answer, o.answer);
    merge_all(by_layer, o.by_layer);
    merge_all(by_position, o.by_position);
    merge_all(answer_layer, o.answer_layer);
  }

  // As doubles, in field order (both structs are plain doubles).
  std::vector<double> pack() const {
    std::vector<double> out;
    append(out, node);
    append(out, answer);
    append(out, by_layer);
    append(out, by_position);
    append(out, answer_layer);
    return out;
  }
  static Partial unpack(const std::vector<double>& in, int64_t L, int64_t T) {
    Partial p = zeros(L, T);
    size_t at = 0;
    take(in, at, p.node);
    take(in, at, p.answer);
    take(in, at, p.by_layer);
    take(in, at, p.by_position);
    take(in, at, p.answer_layer);
    if (at != in.size())
      throw Error("reduce: a partial of " + std::to_string(in.size()) + " values, expected " + std::to_string(at));
    return p;
  }

 private:
  template <typename M>
  static void merge_all(std::vector<M>& into, const std::vector<M>& from) {
    for (size_t i = 0; i < into.size(); ++i) into[i].merge(from[i]);
  }
  template <typename M>
  static void append(std::vector<double>& out, const std::vector<M>& v) {
    const auto* d = reinterpret_cast<const double*>(v.data());
    out.insert(out.end(), d, d + v.size() * sizeof(M) / sizeof(double));
  }
  template <typename M>
  static void take(const std::vector<double>& in, size_t& at, std::vector<M>& v) {
    const size_t n = v.size() * sizeof(M) / sizeof(double);
    if (at + n > in.size()) throw Error("reduce: a partial shorter than expected");
    std::copy(in.begin() + at, in.begin() + at + n, reinterpret_cast<double*>(v.data()));
    at += n;
  }
};

// Who holds which pairs: leaves of leaf_rows pairs, one contiguous block of leaves per rank.
struct Split {
  int64_t n_pairs = 0, leaf_rows = 1, n_leaves = 0;
  std::vector<LeafRange> leaves;  // per rank

  Split(int64_t n, int64_t leaf, int n_ranks)
      : n_pairs(n), leaf_rows(leaf), n_leaves((n + leaf - 1) / leaf), leaves(split_leaves(n_leaves, n_ranks)) {}
  int64_t first_row(int64_t leaf) const { return std::min(n_pairs, leaf * leaf_rows); }
  // Pairs [first, end) of a rank.
  std::pair<int64_t, int64_t> rows(int rank) const {
    return {first_row(leaves[rank].begin), first_row(leaves[rank].end)};
  }
  // The rank whose block holds node [lo, hi) entirely, or -1.
  int owner(int64_t lo, int64_t hi) const {
    for (size_t r = 0; r < leaves.size(); ++r)
      if (!leaves[r].empty() && leaves[r].begin <= lo && hi <= leaves[r].end) return static_cast<int>(r);
    return -1;
  }
};

// Step 2: the merged moments on rank 0 (on other ranks: zeros, after sending their nodes).
Partial reduce_moments(const h5::File& f, const FileLayout& layout, const Split& split, Comm& comm);

// ---- Spearman (spearman.cpp) ----

struct Correlations {
  double pearson[kNumPairs] = {kNan, kNan, kNan};
  double spearman[kNumPairs] = {kNan, kNan, kNan};
};

struct SpearmanResults {
  // (sites, L), (sites, T), (sites, L), (sites)
  std::vector<Correlations> by_layer, by_position, answer_layer, answer;

  // Every group's Spearman r, in one fixed order: by_layer, by_position, answer_layer, answer.
  std::vector<Correlations*> slots() {
    std::vector<Correlations*> out;
    for (auto* v : {&by_layer, &by_position, &answer_layer, &answer})
      for (auto& c : *v) out.push_back(&c);
    return out;
  }
};

// Step 3: every group's Spearman r, complete on rank 0 (see spearman.cpp for how groups are dealt).
SpearmanResults gather_spearman(const h5::File& f, const FileLayout& layout, const Split& split,
                                const Comm& comm);

// ---- results on rank 0 (summary_writer.cpp) ----

// One correlation grouping of a site: counts and r per entry.
struct CorrTable {
  std::vector<int64_t> count;
  std::vector<Correlations> r;
};

struct Summary {
  Partial moments;
  std::array<CorrTable, kNumSites> by_layer, by_position, answer_layer, answer, layer_means;
  std::array<std::array<std::vector<double>, 3>, kNumSites> layer_mean;  // [site][estimator] (L)
};

// The summary from the merged moments and the Spearman r (rank 0).
Summary finish_summary(Partial moments, const SpearmanResults& spear, int64_t L, int64_t T);
// Step 4, rank 0 only: /summary in the results file, latents included.
void write_summary(const fs::path& file, const FileLayout& layout, const Summary& summary,
                   const ReduceOptions& options);
// The CSV next to the file (docs/results-schema.md "The CSV").
void write_csv(const fs::path& csv, const Summary& summary, int64_t L);

}  // namespace sfc::reduce::detail
