// Step 2 of the reduction pass: the partial moments of each rank's block of pairs, merged on rank 0
// along the fixed summation tree (so the numbers do not depend on the rank count).
#include <cmath>
#include <optional>
#include <vector>

#include "reduce_pass.h"
#include "sfc/h5/h5_file.h"
#include "sfc/mpi/comm.h"
#include "sfc/reduce/reduce.h"
#include "sfc/schema/results_schema.h"

namespace sfc::reduce::detail {
namespace {

constexpr int kTagPartial = 4101;

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

}  // namespace

// Step 2: the merged moments on rank 0 (on other ranks: zeros, after sending their nodes).
Partial reduce_moments(const h5::File& f, const FileLayout& layout, const Split& split, Comm& comm) {
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

}  // namespace sfc::reduce::detail
