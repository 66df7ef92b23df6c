// The reduction pass (`sfc reduce FILE`, also the end of `sfc run`): reads a results file, writes its
// `/summary` group (docs/results-schema.md "/summary") and `<stem>.summary.csv` next to it.
// Not the place for plots or for anything that needs the model: only the file's numbers.
//
// Two parts: the numerics (moments, ranks, correlations, the fixed summation tree), pure and serial,
// unit-tested against direct formulas; and summarize(), which spreads the pairs over the ranks of a
// communicator and has rank 0 write the results. Dimension letters as in results_schema.h: N pairs,
// L layers, T positions, F latents, k top latents.
#pragma once


#include <cstdint>
#include <filesystem>
#include <vector>

namespace sfc::mpi {
class Comm;
}

namespace sfc::reduce {

// ============================== numerics (no MPI, no files) ==============================

// Count, mean and sum of squared deviations of a stream of values (Welford; Chan et al. to merge).
// Centred moments rather than raw sums of squares: a metric whose spread is small against its mean
// (grad_norm) would lose most of its digits in sum(x²) − sum(x)²/n.
struct Moments {
  double n = 0, mean = 0, m2 = 0;

  void add(double x);  // callers skip NaN
  void merge(const Moments& other);
  double mean_or_nan() const;  // NaN when n = 0
  double std_or_nan() const;   // sample std (n − 1 in the denominator); NaN when n < 2
};

// The three estimators of an error node, in this order everywhere.
enum class Estimator { kAtp = 0, kIg = 1, kPatch = 2 };
// The three correlated pairs, in this order everywhere: AtP↔patch, IG↔patch, AtP↔IG.
inline constexpr int kNumPairs = 3;
inline constexpr int kPairFirst[kNumPairs] = {0, 1, 0};
inline constexpr int kPairSecond[kNumPairs] = {2, 2, 1};

// Joint moments of (AtP, IG, patch) triples: count, means, squared deviations and co-deviations.
struct CoMoments {
  double n = 0;
  double mean[3] = {0, 0, 0};
  double m2[3] = {0, 0, 0};
  double c[kNumPairs] = {0, 0, 0};  // sum of (x_first − mean)(x_second − mean) per pair

  void add(double atp, double ig, double patch);  // callers pass finite triples only
  void merge(const CoMoments& other);
  // Pearson r of pair p; NaN when n < 3 or either variance is 0. Clamped to [−1, 1].
  double pearson(int pair) const;
};

// Ranks 1..n of x, ties sharing their average rank (scipy.stats.rankdata's "average"). x finite.
std::vector<double> rank_average(const std::vector<double>& x);
// Pearson r of finite x, y of equal length, two-pass in fp64; NaN when n < 3 or a variance is 0.
double pearson(const std::vector<double>& x, const std::vector<double>& y);
// Pearson r of the average ranks.
double spearman(const std::vector<double>& x, const std::vector<double>& y);

// The fixed summation tree over leaves [0, n_leaves) (a leaf is ReduceOptions::leaf_rows pairs):
// node [lo, hi) has children [lo, mid) and [mid, hi), mid = lo + (hi − lo) / 2. Partial moments are
// merged along this tree whatever the number of ranks, so the result is bit-for-bit the same on 1
// or 100 ranks: a rank computes the largest nodes inside its leaves (owned_nodes) and rank 0 walks
// the tree, taking those nodes from their ranks where it meets them (tree_reduce).
struct LeafRange {
  int64_t begin = 0, end = 0;
  bool empty() const { return begin >= end; }
  bool operator==(const LeafRange& o) const { return begin == o.begin && end == o.end; }
};
inline int64_t tree_mid(int64_t lo, int64_t hi) { return lo + (hi - lo) / 2; }
// Contiguous, balanced leaf ranges, one per rank (empty ranges when there are more ranks than leaves).
std::vector<LeafRange> split_leaves(int64_t n_leaves, int n_ranks);
// The maximal tree nodes inside `mine`, left to right: what that rank sends to rank 0, in order.
std::vector<LeafRange> owned_nodes(int64_t n_leaves, const LeafRange& mine);

// Node [lo, hi) of the tree. `remote(lo, hi, out)` returns true after filling `out` when the node
// is computed elsewhere (rank 0: a maximal node of another rank); otherwise leaves are made by
// `leaf(i)` and children merged with Partial::merge, left into right.
template <typename Partial, typename LeafFn, typename RemoteFn>
Partial tree_reduce(int64_t lo, int64_t hi, LeafFn& leaf, RemoteFn& remote) {
  Partial out;
  if (remote(lo, hi, out)) return out;
  if (hi - lo == 1) return leaf(lo);
  const int64_t mid = tree_mid(lo, hi);
  out = tree_reduce<Partial>(lo, mid, leaf, remote);
  out.merge(tree_reduce<Partial>(mid, hi, leaf, remote));
  return out;
}

// ============================== the pass ==============================

struct ReduceOptions {
  int64_t topk = 32;  // latents kept per (site, layer) in /summary/latents/<site>/topk_*
  // Pairs per leaf of the summation tree. Results are identical for any number of ranks at a given
  // value; a different value changes them in the last bits only. Small values are for tests.
  int64_t leaf_rows = 64;
  bool write_csv = true;  // <stem>.summary.csv next to the file

  void validate() const;  // ConfigError naming the option
};

struct ReduceReport {
  int64_t n_pairs = 0, n_layer = 0, n_tokens = 0;
  int n_ranks = 1;
  std::filesystem::path csv;  // empty when not written
  // Seconds on this rank: moments (read + compute + send), rank gathers for Spearman, rank 0's
  // writing (latents included), all of it.
  double moments_s = 0, spearman_s = 0, write_s = 0, total_s = 0;
};

// Summarises `file` (an `sfc run` results file) over the ranks of `comm` (collective: every rank
// calls it with the same arguments). The file must be closed everywhere else. Every rank reads its
// contiguous block of pairs read-only; rank 0 then reopens the file read-write, writes /summary
// (overwriting an earlier pass's datasets, resizing the top-k ones to a new topk) and the CSV.
// Returns on every rank after the file is written. A bad file or a failed write throws on every
// rank (mpi::vote: rank 0 the error, the others ExitStatus, so it is reported once); a failure on
// one rank in between aborts the job.
ReduceReport summarize(const std::filesystem::path& file, const mpi::Comm& comm, const ReduceOptions& options = {});

// `<dir>/<stem>.summary.csv` for `<dir>/<stem>.h5`.
std::filesystem::path summary_csv_path(const std::filesystem::path& file);

}  // namespace sfc::reduce
