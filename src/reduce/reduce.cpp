// The reduction pass over a results file (DESIGN.md §2 "Reduce", docs/results-schema.md "/summary").
//
//   1. every rank opens the file read-only (serial HDF5 driver) and checks it is a results file;
//   2. moments: the pairs are cut into leaves of leaf_rows pairs, the leaves into one contiguous block
//      per rank; each rank computes the partial moments of the largest summation-tree nodes inside
//      its block and sends them to rank 0, which merges the whole tree in its fixed order (so the
//      numbers do not depend on the rank count, nor on MPI's reduction algorithm);
//   3. Spearman needs every value of a group at once: one (site, layer), (site, position) or
//      (site, answer position) group at a time, the ranks send their complete (AtP, IG, patch)
//      triples in rank (= pair) order to the group's owner (groups dealt round-robin), which ranks
//      them; the r values go to rank 0 at the end;
//   4. every rank closes the file; rank 0 alone reopens it read-write and writes /summary, the
//      latent means and top latents (from /latents, which has no pair dimension), and the CSV.
#include "sfc/reduce/reduce.h"

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <limits>
#include <optional>
#include <string>
#include <utility>

#include "reduce_comm.h"
#include "sfc/core/error.h"
#include "sfc/core/shapes.h"
#include "sfc/core/site.h"
#include "sfc/h5/h5_file.h"
#include "sfc/output/results_schema.h"

namespace sfc::reduce {
namespace {

namespace fs = std::filesystem;
namespace sc = output::schema;
using detail::ReduceComm;
using Clock = std::chrono::steady_clock;

constexpr double kNan = std::numeric_limits<double>::quiet_NaN();
constexpr int kTagPartial = 4101;
constexpr int kNumErrorMetrics = static_cast<int>(sc::kSummaryErrorMetrics.size());  // 7
constexpr int kNumResidMetrics = static_cast<int>(sc::kResidPostDatasets.size());    // 4
constexpr int kNumMetrics = kNumSites * kNumErrorMetrics + kNumResidMetrics;         // M = 25
// Positions of the three estimators in kSummaryErrorMetrics.
constexpr int kEstimatorMetric[3] = {0, 1, 5};  // atp, ig, patch_effect
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

double seconds_since(Clock::time_point start) { return std::chrono::duration<double>(Clock::now() - start).count(); }

// ---- what the file holds ----

// Metric m of 0..M-1: the 7 error metrics of resid, mlp, attn, then the 4 of /resid_post.
std::string metric_path(int m) {
  if (m < kNumSites * kNumErrorMetrics)
    return sc::path(sc::kError, kAllSites[m / kNumErrorMetrics], sc::kSummaryErrorMetrics[m % kNumErrorMetrics]);
  return sc::path(sc::kResidPost, sc::kResidPostDatasets[m - kNumSites * kNumErrorMetrics]);
}
int estimator_metric(int site, int estimator) { return site * kNumErrorMetrics + kEstimatorMetric[estimator]; }

struct FileLayout {
  int64_t n_pairs = 0, n_layer = 0, n_tokens = 0;  // N, L, T
  std::array<int64_t, kNumSites> n_latents{};      // F per site (0: no SAEs)
};

int64_t size_attribute(const h5::File& f, const std::string& name) {
  if (!f.has_attribute(name)) throw LoadError(f.file_path(), "no root attribute '" + name + "' (not a results file?)");
  const std::string text = f.attribute(name);
  size_t used = 0;
  int64_t value = -1;
  try {
    value = std::stoll(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used != text.size() || value < 0)
    throw LoadError(f.file_path(), "root attribute '" + name + "' = '" + text + "' is not a size");
  return value;
}

void expect_dataset(const h5::File& f, const std::string& path, const std::vector<int64_t>& shape) {
  if (!f.exists(path)) throw LoadError(f.file_path(), "dataset " + path + " is missing (not a complete results file?)");
  const auto actual = f.open_dataset(path).shape();
  if (actual != shape)
    throw LoadError(f.file_path(), "dataset " + path + " has shape " + shape_str(actual) + ", expected " +
                                       shape_str(shape) + " from the root attributes n_pairs, n_layer, n_tokens");
}

// Checks the file is an `sfc run` results file this pass can read; every rank does it (same answer).
FileLayout check_results_file(const h5::File& f) {
  if (!f.has_attribute(sc::kAttrSchemaVersion))
    throw LoadError(f.file_path(),
                    "not an `sfc run` results file (no root attribute '" + std::string(sc::kAttrSchemaVersion) + "')");
  const std::string version = f.attribute(sc::kAttrSchemaVersion);
  if (version != sc::kSchemaVersion)
    throw LoadError(f.file_path(), "results schema version " + version + ", this sfc reads version " +
                                       sc::kSchemaVersion + " (use the sfc that wrote the file)");
  FileLayout layout;
  layout.n_pairs = size_attribute(f, sc::kAttrNPairs);
  layout.n_layer = size_attribute(f, sc::kAttrNLayer);
  layout.n_tokens = size_attribute(f, sc::kAttrNTokens);
  const int64_t N = layout.n_pairs, L = layout.n_layer, T = layout.n_tokens;
  if (L < 1 || T < 1)
    throw LoadError(f.file_path(),
                    "n_layer = " + std::to_string(L) + ", n_tokens = " + std::to_string(T) + ": nothing to summarise");
  for (int m = 0; m < kNumMetrics; ++m) expect_dataset(f, metric_path(m), {N, L, T});
  const std::string answer = sc::path(sc::kPairs, sc::kAnswerPos);
  expect_dataset(f, answer, {N});
  const auto answer_pos = f.open_dataset(answer).read_all<int32_t>();
  for (int64_t i = 0; i < N; ++i)
    if (answer_pos[i] < 0 || answer_pos[i] >= T)
      throw LoadError(f.file_path(), answer + "[" + std::to_string(i) + "] = " + std::to_string(answer_pos[i]) +
                                         " is outside 0.." + std::to_string(T - 1));
  for (Site site : kAllSites) {
    const int64_t F = size_attribute(f, sc::attr_n_latents(site));
    layout.n_latents[static_cast<int>(site)] = F;
    if (F == 0) continue;
    expect_dataset(f, sc::path(sc::kLatents, sc::kLatentCount), {T});
    expect_dataset(f, sc::path(sc::kLatents, site, sc::kAtpSum), {L, T, F});
    expect_dataset(f, sc::path(sc::kLatents, site, sc::kIgSum), {L, T, F});
  }
  return layout;
}

h5::File open_results_file(const fs::path& file) {
  if (!fs::exists(file)) throw LoadError(file, "no such file");
  if (fs::is_directory(file)) throw LoadError(file, "is a folder, not a results file");
  try {
    return h5::File::open_read_only(file);
  } catch (const Error& e) {
    throw LoadError(file, "not an HDF5 file, or unreadable (" + std::string(e.what()) + ")");
  }
}

// ---- partial moments ----

// Everything the moments pass accumulates over pairs. S = 3 sites, M = 25 metrics.
struct Partial {
  std::vector<Moments> node;            // (M, L, T): metric at (layer, position), finite values
  std::vector<Moments> answer;          // (M, L): metric at (layer, the pair's answer position)
  std::vector<CoMoments> by_layer;      // (S, L): complete triples at (layer, any position)
  std::vector<CoMoments> by_position;   // (S, T): complete triples at (any layer, position)
  std::vector<CoMoments> answer_layer;  // (S, L): complete triples at (layer, answer position)

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

// Reads blocks of pairs: every metric (rows, L, T) and the answer positions (rows).
class RowReader {
 public:
  RowReader(const h5::File& f, const FileLayout& layout) : L_(layout.n_layer), T_(layout.n_tokens) {
    for (int m = 0; m < kNumMetrics; ++m) datasets_.push_back(f.open_dataset(metric_path(m)));
    answer_.emplace(f.open_dataset(sc::path(sc::kPairs, sc::kAnswerPos)));
    values_.resize(kNumMetrics);
  }

  void read(int64_t first, int64_t rows) {
    rows_ = rows;
    for (int m = 0; m < kNumMetrics; ++m) values_[m] = datasets_[m].read<float>({first, 0, 0}, {rows, L_, T_});
    answer_pos_ = answer_->read<int32_t>({first}, {rows});
  }
  int64_t rows() const { return rows_; }
  const float* values(int metric, int64_t row) const { return values_[metric].data() + row * L_ * T_; }  // (L, T)
  int32_t answer_pos(int64_t row) const { return answer_pos_[row]; }

 private:
  int64_t L_, T_, rows_ = 0;
  std::vector<h5::Dataset> datasets_;
  std::optional<h5::Dataset> answer_;
  std::vector<std::vector<float>> values_;  // [metric] (rows, L, T)
  std::vector<int32_t> answer_pos_;         // (rows)
};

// The moments of the pairs the reader holds, pair by pair in file order.
Partial block_partial(const RowReader& in, int64_t L, int64_t T) {
  Partial p = Partial::zeros(L, T);
  for (int64_t r = 0; r < in.rows(); ++r) {
    const int64_t answer = in.answer_pos(r);
    for (int m = 0; m < kNumMetrics; ++m) {
      const float* v = in.values(m, r);
      for (int64_t l = 0; l < L; ++l)
        for (int64_t t = 0; t < T; ++t) {
          const double x = v[l * T + t];
          if (!std::isfinite(x)) continue;
          p.node[(m * L + l) * T + t].add(x);
          if (t == answer) p.answer[m * L + l].add(x);
        }
    }
    for (int s = 0; s < kNumSites; ++s) {
      const float* a = in.values(estimator_metric(s, 0), r);
      const float* g = in.values(estimator_metric(s, 1), r);
      const float* e = in.values(estimator_metric(s, 2), r);
      for (int64_t l = 0; l < L; ++l)
        for (int64_t t = 0; t < T; ++t) {
          const int64_t i = l * T + t;
          if (!std::isfinite(a[i]) || !std::isfinite(g[i]) || !std::isfinite(e[i])) continue;
          p.by_layer[s * L + l].add(a[i], g[i], e[i]);
          p.by_position[s * T + t].add(a[i], g[i], e[i]);
          if (t == answer) p.answer_layer[s * L + l].add(a[i], g[i], e[i]);
        }
    }
  }
  return p;
}

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
Partial reduce_moments(const h5::File& f, const FileLayout& layout, const Split& split, ReduceComm& comm) {
  const int64_t L = layout.n_layer, T = layout.n_tokens;
  RowReader reader(f, layout);
  auto leaf = [&](int64_t i) {
    const int64_t first = split.first_row(i);
    reader.read(first, split.first_row(i + 1) - first);
    return block_partial(reader, L, T);
  };
  auto local = [](int64_t, int64_t, Partial&) { return false; };
  if (comm.rank() != 0) {
    for (const LeafRange& node : owned_nodes(split.n_leaves, split.leaves[comm.rank()]))
      comm.send_later(tree_reduce<Partial>(node.begin, node.end, leaf, local).pack(), 0, kTagPartial);
    comm.wait_all();
    return Partial::zeros(L, T);
  }
  if (split.n_leaves == 0) return Partial::zeros(L, T);
  auto remote = [&](int64_t lo, int64_t hi, Partial& out) {
    const int owner = split.owner(lo, hi);
    if (owner <= 0) return false;  // rank 0's own node, or one that spans ranks: recurse
    out = Partial::unpack(comm.receive(owner, kTagPartial), L, T);
    return true;
  };
  return tree_reduce<Partial>(0, split.n_leaves, leaf, remote);
}

// ---- Spearman: one group's triples at a time on rank 0 ----

struct Correlations {
  double pearson[kNumPairs] = {kNan, kNan, kNan};
  double spearman[kNumPairs] = {kNan, kNan, kNan};
};

// Spearman r of the three pairs of n triples (a0, g0, e0, a1, ...).
void spearman_of_triples(const std::vector<float>& triples, Correlations& out) {
  const size_t n = triples.size() / 3;
  if (n < 3) return;
  std::vector<double> ranks[3];
  for (int k = 0; k < 3; ++k) {
    std::vector<double> x(n);
    for (size_t i = 0; i < n; ++i) x[i] = triples[3 * i + k];
    ranks[k] = rank_average(x);
  }
  for (int p = 0; p < kNumPairs; ++p) out.spearman[p] = pearson(ranks[kPairFirst[p]], ranks[kPairSecond[p]]);
}

void append_if_complete(std::vector<float>& out, float a, float g, float e) {
  if (!std::isfinite(a) || !std::isfinite(g) || !std::isfinite(e)) return;
  out.push_back(a);
  out.push_back(g);
  out.push_back(e);
}

struct SpearmanResults {
  std::vector<Correlations> by_layer, by_position, answer_layer, answer;  // (S, L), (S, T), (S, L), (S)

  // Every group's Spearman r, in one fixed order: by_layer, by_position, answer_layer, answer.
  std::vector<Correlations*> slots() {
    std::vector<Correlations*> out;
    for (auto* v : {&by_layer, &by_position, &answer_layer, &answer})
      for (auto& c : *v) out.push_back(&c);
    return out;
  }
};

// Step 3. The groups are dealt round-robin to the ranks (group g goes to rank g mod W), which
// gather its values, rank them and send the r values to rank 0 at the end. Memory: a group's
// owner holds it alone at a time, O(N·T) values for a (site, layer) group and O(N·L) for the others;
// every rank holds its own share of the group being gathered.
SpearmanResults gather_spearman(const h5::File& f, const FileLayout& layout, const Split& split,
                                const ReduceComm& comm) {
  const int64_t L = layout.n_layer, T = layout.n_tokens;
  const auto range = split.rows(comm.rank());
  const int64_t first = range.first, rows = range.second - range.first;
  SpearmanResults out;
  out.by_layer.resize(kNumSites * L);
  out.by_position.resize(kNumSites * T);
  out.answer_layer.resize(kNumSites * L);
  out.answer.resize(kNumSites);
  std::vector<int> owner;  // per slot of SpearmanResults::slots()
  owner.reserve(out.slots().size());
  int next = 0;
  auto take_owner = [&] {
    const int r = next;
    next = (next + 1) % comm.size();
    return r;
  };
  std::vector<int> by_layer_owner, by_position_owner, answer_owner;  // (S, L), (S, T), (S)

  const auto answer_pos = f.open_dataset(sc::path(sc::kPairs, sc::kAnswerPos)).read<int32_t>({first}, {rows});
  for (int s = 0; s < kNumSites; ++s) {
    std::vector<h5::Dataset> est;
    for (int k = 0; k < 3; ++k) est.push_back(f.open_dataset(metric_path(estimator_metric(s, k))));
    // Reads (rows, nl, nt) of each estimator from (first, l0, t0).
    auto read3 = [&](int64_t l0, int64_t nl, int64_t t0, int64_t nt) {
      std::array<std::vector<float>, 3> v;
      for (int k = 0; k < 3; ++k) v[k] = est[k].read<float>({first, l0, t0}, {rows, nl, nt});
      return v;
    };
    for (int64_t l = 0; l < L; ++l) {
      const auto v = read3(l, 1, 0, T);
      std::vector<float> triples;
      for (int64_t i = 0; i < rows * T; ++i) append_if_complete(triples, v[0][i], v[1][i], v[2][i]);
      const int root = take_owner();
      by_layer_owner.push_back(root);
      const auto all = comm.gather(triples, root);
      if (comm.rank() == root) spearman_of_triples(all, out.by_layer[s * L + l]);
    }
    for (int64_t t = 0; t < T; ++t) {
      const auto v = read3(0, L, t, 1);
      std::vector<float> triples;
      for (int64_t i = 0; i < rows * L; ++i) append_if_complete(triples, v[0][i], v[1][i], v[2][i]);
      const int root = take_owner();
      by_position_owner.push_back(root);
      const auto all = comm.gather(triples, root);
      if (comm.rank() == root) spearman_of_triples(all, out.by_position[s * T + t]);
    }
    // At the answer position: every (pair, layer) triple, NaN included, so the owner knows each layer.
    std::vector<float> at_answer;  // (rows, L, 3)
    at_answer.reserve(rows * L * 3);
    for (int64_t r0 = 0; r0 < rows; r0 += split.leaf_rows) {
      const int64_t n = std::min(split.leaf_rows, rows - r0);
      std::array<std::vector<float>, 3> v;
      for (int k = 0; k < 3; ++k) v[k] = est[k].read<float>({first + r0, 0, 0}, {n, L, T});
      for (int64_t r = 0; r < n; ++r)
        for (int64_t l = 0; l < L; ++l)
          for (int k = 0; k < 3; ++k) at_answer.push_back(v[k][(r * L + l) * T + answer_pos[r0 + r]]);
    }
    const int root = take_owner();
    answer_owner.push_back(root);
    const auto all = comm.gather(at_answer, root);
    if (comm.rank() != root) continue;
    const int64_t n_pairs = static_cast<int64_t>(all.size()) / (3 * L);
    for (int64_t l = 0; l < L; ++l) {
      std::vector<float> triples;
      for (int64_t i = 0; i < n_pairs; ++i) {
        const float* x = &all[(i * L + l) * 3];
        append_if_complete(triples, x[0], x[1], x[2]);
      }
      spearman_of_triples(triples, out.answer_layer[s * L + l]);
    }
    std::vector<float> pooled;
    for (int64_t i = 0; i < n_pairs * L; ++i) append_if_complete(pooled, all[3 * i], all[3 * i + 1], all[3 * i + 2]);
    spearman_of_triples(pooled, out.answer[s]);
  }
  if (comm.size() == 1) return out;

  // Every slot's values from its owner onto rank 0.
  owner.insert(owner.end(), by_layer_owner.begin(), by_layer_owner.end());
  owner.insert(owner.end(), by_position_owner.begin(), by_position_owner.end());
  for (int s = 0; s < kNumSites; ++s) owner.insert(owner.end(), L, answer_owner[s]);  // answer_layer (S, L)
  owner.insert(owner.end(), answer_owner.begin(), answer_owner.end());
  const auto slots = out.slots();
  std::vector<double> mine;
  mine.reserve(slots.size() * kNumPairs);
  for (const auto* c : slots) mine.insert(mine.end(), c->spearman, c->spearman + kNumPairs);
  const auto all = comm.gather_same_length(mine);
  if (comm.rank() == 0)
    for (size_t i = 0; i < slots.size(); ++i)
      std::copy_n(&all[(owner[i] * slots.size() + i) * kNumPairs], kNumPairs, slots[i]->spearman);
  return out;
}

// ---- results on rank 0 ----

void set_pearson(const CoMoments& m, Correlations& out) {
  for (int p = 0; p < kNumPairs; ++p) out.pearson[p] = m.pearson(p);
}

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

Summary finish_summary(Partial moments, const SpearmanResults& spear, int64_t L, int64_t T) {
  Summary out;
  for (int s = 0; s < kNumSites; ++s) {
    auto fill = [](CorrTable& table, const CoMoments* m, const Correlations* sp, int64_t n) {
      table.count.resize(n);
      table.r.resize(n);
      for (int64_t i = 0; i < n; ++i) {
        table.count[i] = static_cast<int64_t>(m[i].n);
        table.r[i] = sp[i];
        set_pearson(m[i], table.r[i]);
      }
    };
    fill(out.by_layer[s], &moments.by_layer[s * L], &spear.by_layer[s * L], L);
    fill(out.by_position[s], &moments.by_position[s * T], &spear.by_position[s * T], T);
    fill(out.answer_layer[s], &moments.answer_layer[s * L], &spear.answer_layer[s * L], L);
    // All layers at the answer position: the per-layer moments merged in layer order.
    CoMoments pooled;
    for (int64_t l = 0; l < L; ++l) pooled.merge(moments.answer_layer[s * L + l]);
    fill(out.answer[s], &pooled, &spear.answer[s], 1);
    // Across layers, of the per-layer means over pairs at the answer position (the seed's Task B r).
    std::array<std::vector<double>, 3> means;  // over layers that have a complete node
    for (int k = 0; k < 3; ++k) out.layer_mean[s][k].assign(L, kNan);
    for (int64_t l = 0; l < L; ++l) {
      const CoMoments& m = moments.answer_layer[s * L + l];
      if (m.n == 0) continue;
      for (int k = 0; k < 3; ++k) {
        out.layer_mean[s][k][l] = m.mean[k];
        means[k].push_back(m.mean[k]);
      }
    }
    CorrTable& lm = out.layer_means[s];
    lm.count = {static_cast<int64_t>(means[0].size())};
    lm.r.resize(1);
    for (int p = 0; p < kNumPairs; ++p) {
      lm.r[0].pearson[p] = pearson(means[kPairFirst[p]], means[kPairSecond[p]]);
      lm.r[0].spearman[p] = spearman(means[kPairFirst[p]], means[kPairSecond[p]]);
    }
  }
  out.moments = std::move(moments);
  return out;
}

// Writes a whole dataset, creating it or overwriting the one an earlier pass wrote. sfc_h5 cannot
// delete, so a rerun reuses the datasets: only their first dimension can change (K of the top-k
// datasets, which is why K comes first there).
template <typename V>
h5::Dataset put(h5::File& f, const std::string& path, const char* dims, const std::vector<int64_t>& shape,
                const std::vector<V>* data) {
  const h5::Dtype dtype = h5::DtypeOf<V>::value;
  std::optional<h5::Dataset> ds;
  if (f.exists(path)) {
    ds.emplace(f.open_dataset(path));
    auto old = ds->shape();
    if (old.size() == shape.size() && !old.empty() && old[0] != shape[0]) {
      old[0] = shape[0];
      if (old == shape) ds->resize_rows(shape[0]);
    }
    if (ds->shape() != shape || ds->dtype() != dtype)
      throw LoadError(f.file_path(), "an earlier /summary has " + path + " of shape " + shape_str(ds->shape()) + " " +
                                         h5::dtype_name(ds->dtype()) + ", this pass writes " + shape_str(shape) + " " +
                                         h5::dtype_name(dtype) + "; delete it first (h5py: del f['summary'])");
  } else {
    const bool is_int = dtype == h5::Dtype::kInt32 || dtype == h5::Dtype::kInt64;
    ds.emplace(f.create_dataset(path, h5::DatasetSpec(dtype, shape, is_int ? -1.0 : kNan)));
    ds->set_attribute(sc::kAttrDims, dims);
  }
  if (data) ds->write_all(*data);
  return std::move(*ds);
}

std::string summary_metric_path(int m) { return std::string(sc::kSummary) + metric_path(m); }
std::string corr_path(int s, const sc::SummaryGrouping& g) {
  return std::string(sc::kSummary) + "/" + sc::kCorr + "/" + site_name(kAllSites[s]) + "/" + g.name;
}

void write_metric_stats(h5::File& f, const Partial& p, int64_t L, int64_t T) {
  for (int m = 0; m < kNumMetrics; ++m) {
    const std::string group = summary_metric_path(m) + "/";
    std::vector<int64_t> count(L * T), answer_count(L);
    std::vector<double> mean(L * T), spread(L * T), answer_mean(L), answer_std(L);
    for (int64_t i = 0; i < L * T; ++i) {
      const Moments& x = p.node[m * L * T + i];
      count[i] = static_cast<int64_t>(x.n);
      mean[i] = x.mean_or_nan();
      spread[i] = x.std_or_nan();
    }
    for (int64_t l = 0; l < L; ++l) {
      const Moments& x = p.answer[m * L + l];
      answer_count[l] = static_cast<int64_t>(x.n);
      answer_mean[l] = x.mean_or_nan();
      answer_std[l] = x.std_or_nan();
    }
    put(f, group + sc::kSummaryCount.name, sc::kSummaryCount.dims, {L, T}, &count);
    put(f, group + sc::kSummaryMean.name, sc::kSummaryMean.dims, {L, T}, &mean);
    put(f, group + sc::kSummaryStd.name, sc::kSummaryStd.dims, {L, T}, &spread);
    put(f, group + sc::kSummaryAnswerCount.name, sc::kSummaryAnswerCount.dims, {L}, &answer_count);
    put(f, group + sc::kSummaryAnswerMean.name, sc::kSummaryAnswerMean.dims, {L}, &answer_mean);
    put(f, group + sc::kSummaryAnswerStd.name, sc::kSummaryAnswerStd.dims, {L}, &answer_std);
  }
}

void write_correlations(h5::File& f, const Summary& summary) {
  for (int s = 0; s < kNumSites; ++s) {
    const std::array<const CorrTable*, 5> tables = {&summary.by_layer[s], &summary.by_position[s],
                                                    &summary.answer_layer[s], &summary.answer[s],
                                                    &summary.layer_means[s]};
    for (size_t g = 0; g < sc::kCorrGroupings.size(); ++g) {
      const auto& grouping = sc::kCorrGroupings[g];
      const CorrTable& table = *tables[g];
      const int64_t n = static_cast<int64_t>(table.count.size());
      const std::string group = corr_path(s, grouping) + "/";
      put(f, group + sc::kCorrCount, grouping.dims, {n}, &table.count);
      for (int p = 0; p < 2 * kNumPairs; ++p) {
        std::vector<double> r(n);
        for (int64_t i = 0; i < n; ++i)
          r[i] = p < kNumPairs ? table.r[i].pearson[p] : table.r[i].spearman[p - kNumPairs];
        put(f, group + sc::kCorrStats[p], grouping.dims, {n}, &r);
      }
      if (std::string(grouping.name) == sc::kCorrAnswerByLayer.name)  // the means behind layer_means
        for (int k = 0; k < 3; ++k) put(f, group + sc::kCorrMeans[k], grouping.dims, {n}, &summary.layer_mean[s][k]);
    }
  }
}

// Latent means and the top-k latents of one site, layer by layer (memory O(T·F)).
void write_latents(h5::File& f, Site site, const FileLayout& layout, int64_t topk) {
  const int64_t L = layout.n_layer, T = layout.n_tokens, F = layout.n_latents[static_cast<int>(site)];
  const auto count = f.open_dataset(sc::path(sc::kLatents, sc::kLatentCount)).read_all<int64_t>();  // (T)
  const h5::Dataset atp_sum = f.open_dataset(sc::path(sc::kLatents, site, sc::kAtpSum));
  const h5::Dataset ig_sum = f.open_dataset(sc::path(sc::kLatents, site, sc::kIgSum));
  const std::string group = std::string(sc::kSummary) + sc::kLatents + "/" + site_name(site) + "/";
  auto atp_mean =
      put<double>(f, group + sc::kSummaryLatentAtpMean.name, sc::kSummaryLatentAtpMean.dims, {L, T, F}, nullptr);
  auto ig_mean =
      put<double>(f, group + sc::kSummaryLatentIgMean.name, sc::kSummaryLatentIgMean.dims, {L, T, F}, nullptr);
  std::vector<int32_t> top_index(topk * L, -1);  // (K, L)
  std::vector<double> top_atp(topk * L, kNan), top_ig(topk * L, kNan);
  for (int64_t l = 0; l < L; ++l) {
    auto a = atp_sum.read<double>({l, 0, 0}, {1, T, F});  // (T, F) -> means in place
    auto g = ig_sum.read<double>({l, 0, 0}, {1, T, F});
    for (int64_t t = 0; t < T; ++t)
      for (int64_t j = 0; j < F; ++j) {
        a[t * F + j] = count[t] > 0 ? a[t * F + j] / static_cast<double>(count[t]) : kNan;
        g[t * F + j] = count[t] > 0 ? g[t * F + j] / static_cast<double>(count[t]) : kNan;
      }
    atp_mean.write<double>({l, 0, 0}, {1, T, F}, a.data());
    ig_mean.write<double>({l, 0, 0}, {1, T, F}, g.data());
    // Score of latent j: sum over positions (in order, NaN skipped) of |mean AtP|; NaN if none finite.
    auto score = [&](const std::vector<double>& x, int64_t j) {
      double sum = 0;
      bool any = false;
      for (int64_t t = 0; t < T; ++t)
        if (std::isfinite(x[t * F + j])) {
          sum += std::fabs(x[t * F + j]);
          any = true;
        }
      return any ? sum : kNan;
    };
    std::vector<std::pair<double, int64_t>> ranked;  // (score, latent), finite scores only
    for (int64_t j = 0; j < F; ++j)
      if (const double sc_j = score(a, j); std::isfinite(sc_j)) ranked.emplace_back(sc_j, j);
    const int64_t k = std::min<int64_t>(topk, static_cast<int64_t>(ranked.size()));
    // Largest score first; equal scores by latent index (deterministic).
    std::partial_sort(ranked.begin(), ranked.begin() + k, ranked.end(), [](const auto& x, const auto& y) {
      return x.first != y.first ? x.first > y.first : x.second < y.second;
    });
    for (int64_t i = 0; i < k; ++i) {
      top_index[i * L + l] = static_cast<int32_t>(ranked[i].second);
      top_atp[i * L + l] = ranked[i].first;
      top_ig[i * L + l] = score(g, ranked[i].second);
    }
  }
  put(f, group + sc::kSummaryTopkIndex.name, sc::kSummaryTopkIndex.dims, {topk, L}, &top_index);
  put(f, group + sc::kSummaryTopkAtp.name, sc::kSummaryTopkAtp.dims, {topk, L}, &top_atp);
  put(f, group + sc::kSummaryTopkIg.name, sc::kSummaryTopkIg.dims, {topk, L}, &top_ig);
}

// ---- the CSV ----

std::string number(double x) {
  if (std::isnan(x)) return "nan";
  char text[40];
  std::snprintf(text, sizeof text, "%.17g", x);
  return text;
}

const char* kPairName[kNumPairs] = {"atp_vs_patch", "ig_vs_patch", "atp_vs_ig"};

// Long format, one value per line (docs/results-schema.md "The CSV"). Written to <csv>.partial,
// then renamed: a CSV under its final name is complete.
void write_csv(const fs::path& csv, const Summary& summary, int64_t L) {
  const fs::path partial = csv.string() + ".partial";
  {
    std::ofstream out(partial);
    if (!out) throw LoadError(partial, "cannot be written");
    out << sc::kSummaryCsvColumns << "\n";
    auto row = [&](const std::string& site, const std::string& layer, const char* position, const std::string& quantity,
                   const std::string& statistic, double value, int64_t n) {
      out << site << "," << layer << "," << position << "," << quantity << "," << statistic << "," << number(value)
          << "," << n << "\n";
    };
    // Every metric at the answer position, per (site, layer).
    for (int m = 0; m < kNumMetrics; ++m) {
      const bool resid_post = m >= kNumSites * kNumErrorMetrics;
      const std::string site = resid_post ? "resid_post" : site_name(kAllSites[m / kNumErrorMetrics]);
      const std::string name = resid_post ? sc::kResidPostDatasets[m - kNumSites * kNumErrorMetrics].name
                                          : sc::kSummaryErrorMetrics[m % kNumErrorMetrics].name;
      for (int64_t l = 0; l < L; ++l) {
        const Moments& x = summary.moments.answer[m * L + l];
        row(site, std::to_string(l), "answer", name, "mean", x.mean_or_nan(), static_cast<int64_t>(x.n));
        row(site, std::to_string(l), "answer", name, "std", x.std_or_nan(), static_cast<int64_t>(x.n));
      }
    }
    // Correlations: per layer over all positions, per layer at the answer position, all layers at
    // the answer position, and across layers of the per-layer means.
    for (int s = 0; s < kNumSites; ++s) {
      const std::string site = site_name(kAllSites[s]);
      auto corr = [&](const CorrTable& t, int64_t i, const std::string& layer, const char* position,
                      const std::string& suffix) {
        for (int p = 0; p < kNumPairs; ++p)
          row(site, layer, position, kPairName[p], "pearson" + suffix, t.r[i].pearson[p], t.count[i]);
        for (int p = 0; p < kNumPairs; ++p)
          row(site, layer, position, kPairName[p], "spearman" + suffix, t.r[i].spearman[p], t.count[i]);
      };
      for (int64_t l = 0; l < L; ++l) corr(summary.by_layer[s], l, std::to_string(l), "all", "");
      for (int64_t l = 0; l < L; ++l) corr(summary.answer_layer[s], l, std::to_string(l), "answer", "");
      corr(summary.answer[s], 0, "all", "answer", "");
      corr(summary.layer_means[s], 0, "all", "answer", "_of_layer_means");
    }
    out.flush();
    if (!out) throw LoadError(partial, "write failed");
  }
  std::error_code ec;
  fs::rename(partial, csv, ec);
  if (ec) throw LoadError(csv, "cannot rename " + partial.string() + " to it: " + ec.message());
}

// Step 4, rank 0 only.
void write_summary(const fs::path& file, const FileLayout& layout, const Summary& summary,
                   const ReduceOptions& options) {
  const int64_t L = layout.n_layer, T = layout.n_tokens;
  h5::File f = h5::File::open_read_write(file);
  {
    h5::Group group = f.create_group(sc::kSummary);
    group.set_attribute(sc::kAttrNPairs, std::to_string(layout.n_pairs));
    group.set_attribute(sc::kAttrNLayer, std::to_string(L));
    group.set_attribute(sc::kAttrNTokens, std::to_string(T));
    group.set_attribute(sc::kAttrSummaryTopk, std::to_string(options.topk));
    group.set_attribute(sc::kAttrSummaryLeafRows, std::to_string(options.leaf_rows));
  }
  write_metric_stats(f, summary.moments, L, T);
  write_correlations(f, summary);
  for (Site site : kAllSites)
    if (layout.n_latents[static_cast<int>(site)] > 0) write_latents(f, site, layout, options.topk);
  f.close();
}

// Every rank throws the lowest failing rank's message if any rank failed.
void agree(const ReduceComm& comm, const std::string& error) {
  const int failed = comm.first_rank_with(!error.empty());
  if (failed < 0) return;
  throw Error(comm.broadcast(error, failed));
}

}  // namespace

void ReduceOptions::validate() const {
  if (topk < 1) throw ConfigError("--topk = " + std::to_string(topk) + ": must be at least 1");
  if (leaf_rows < 1) throw ConfigError("--leaf-rows = " + std::to_string(leaf_rows) + ": must be at least 1");
}

fs::path summary_csv_path(const fs::path& file) {
  return file.parent_path() / (file.stem().string() + sc::kSummaryCsvSuffix);
}

ReduceReport summarize(const fs::path& file, MPI_Comm mpi_comm, const ReduceOptions& options) {
  const auto t_start = Clock::now();
  options.validate();
  ReduceComm comm(mpi_comm);
  ReduceReport report;
  report.n_ranks = comm.size();

  // 1. open and check, on every rank; a bad file fails every rank with the same message.
  std::optional<h5::File> f;
  FileLayout layout;
  std::string error;
  try {
    f.emplace(open_results_file(file));
    layout = check_results_file(*f);
  } catch (const std::exception& e) {
    error = e.what();
  }
  agree(comm, error);
  report.n_pairs = layout.n_pairs;
  report.n_layer = layout.n_layer;
  report.n_tokens = layout.n_tokens;
  const Split split(layout.n_pairs, options.leaf_rows, comm.size());

  // 2-3. moments and Spearman groups.
  std::optional<Summary> summary;
  dist::or_abort(comm.collectives(), [&] {
    auto t = Clock::now();
    Partial moments = reduce_moments(*f, layout, split, comm);
    report.moments_s = seconds_since(t);
    t = Clock::now();
    const SpearmanResults spear = gather_spearman(*f, layout, split, comm);
    report.spearman_s = seconds_since(t);
    if (comm.rank() == 0) summary.emplace(finish_summary(std::move(moments), spear, layout.n_layer, layout.n_tokens));
    f->close();
    return 0;
  });
  f.reset();
  comm.barrier();  // every rank has closed the file before rank 0 opens it for writing

  // 4. rank 0 writes; every rank learns whether it worked.
  const auto t_write = Clock::now();
  if (comm.rank() == 0) {
    try {
      write_summary(file, layout, *summary, options);
      if (options.write_csv) {
        report.csv = summary_csv_path(file);
        write_csv(report.csv, *summary, layout.n_layer);
      }
    } catch (const std::exception& e) {
      error = e.what();
    }
  }
  report.write_s = seconds_since(t_write);
  error = comm.broadcast(error, 0);
  if (!error.empty()) throw Error(error);
  if (options.write_csv) report.csv = summary_csv_path(file);
  report.total_s = seconds_since(t_start);
  return report;
}

}  // namespace sfc::reduce
