// Step 3 of the reduction pass: Spearman r needs every value of a group at once, so each group's
// (AtP, IG, patch) triples are gathered on one rank, ranked there, and the r values sent to rank 0.
#include <algorithm>
#include <array>
#include <cmath>
#include <vector>

#include "reduce_pass.h"
#include "sfc/h5/h5_file.h"
#include "sfc/mpi/comm.h"
#include "sfc/reduce/reduce.h"
#include "sfc/schema/results_schema.h"

namespace sfc::reduce::detail {
namespace {

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

}  // namespace

// Step 3. The groups are dealt round-robin to the ranks (group g goes to rank g mod comm.size()), which
// gather its values, rank them and send the r values to rank 0 at the end. Memory: a group's
// owner holds it alone at a time, O(N·T) values for a (site, layer) group and O(N·L) for the others;
// every rank holds its own share of the group being gathered.
SpearmanResults gather_spearman(const h5::File& f, const FileLayout& layout, const Split& split,
                                const Comm& comm) {
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
  std::vector<int> by_layer_owner, by_position_owner, answer_owner;  // (sites, L), (sites, T), (sites)

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
  for (int s = 0; s < kNumSites; ++s) owner.insert(owner.end(), L, answer_owner[s]);  // answer_layer (sites, L)
  owner.insert(owner.end(), answer_owner.begin(), answer_owner.end());
  const auto slots = out.slots();
  std::vector<double> mine;
  mine.reserve(slots.size() * kNumPairs);
  for (const auto* c : slots) mine.insert(mine.end(), c->spearman, c->spearman + kNumPairs);
  const auto all = comm.gather_to_root(mine);
  if (comm.rank() == 0)
    for (size_t i = 0; i < slots.size(); ++i)
      std::copy_n(&all[(owner[i] * slots.size() + i) * kNumPairs], kNumPairs, slots[i]->spearman);
  return out;
}

}  // namespace sfc::reduce::detail
