// The numerics of the reduction pass: streaming and mergeable moments, average ranks, Pearson and
// Spearman, and the fixed summation tree. Pure functions; tests/unit/test_reduce_stats.cpp checks them
// against direct formulas.
#include <algorithm>
#include <cmath>
#include <limits>
#include <utility>

#include "sfc/core/error.h"
#include "sfc/reduce/reduce.h"

namespace sfc::reduce {
namespace {

constexpr double kNan = std::numeric_limits<double>::quiet_NaN();

double clamp_r(double r) { return std::max(-1.0, std::min(1.0, r)); }

}  // namespace

// ---- Moments ----

void Moments::add(double x) {
  n += 1;
  const double d = x - mean;
  mean += d / n;
  m2 += d * (x - mean);
}

void Moments::merge(const Moments& o) {
  if (o.n == 0) return;
  if (n == 0) {
    *this = o;
    return;
  }
  const double total = n + o.n, d = o.mean - mean;
  mean += d * (o.n / total);
  m2 += o.m2 + d * d * (n * o.n / total);
  n = total;
}

double Moments::mean_or_nan() const { return n > 0 ? mean : kNan; }

double Moments::std_or_nan() const { return n > 1 ? std::sqrt(std::max(m2, 0.0) / (n - 1)) : kNan; }

// ---- CoMoments ----

void CoMoments::add(double atp, double ig, double patch) {
  const double x[3] = {atp, ig, patch};
  n += 1;
  double before[3], after[3];  // deviations from the old and the new mean
  for (int k = 0; k < 3; ++k) {
    before[k] = x[k] - mean[k];
    mean[k] += before[k] / n;
    after[k] = x[k] - mean[k];
    m2[k] += before[k] * after[k];
  }
  for (int p = 0; p < kNumPairs; ++p) c[p] += before[kPairFirst[p]] * after[kPairSecond[p]];
}

void CoMoments::merge(const CoMoments& o) {
  if (o.n == 0) return;
  if (n == 0) {
    *this = o;
    return;
  }
  const double total = n + o.n, w = n * o.n / total;
  double d[3];
  for (int k = 0; k < 3; ++k) {
    d[k] = o.mean[k] - mean[k];
    mean[k] += d[k] * (o.n / total);
    m2[k] += o.m2[k] + d[k] * d[k] * w;
  }
  for (int p = 0; p < kNumPairs; ++p) c[p] += o.c[p] + d[kPairFirst[p]] * d[kPairSecond[p]] * w;
  n = total;
}

double CoMoments::pearson(int pair) const {
  const double vx = m2[kPairFirst[pair]], vy = m2[kPairSecond[pair]];
  if (n < 3 || !(vx > 0) || !(vy > 0)) return kNan;
  return clamp_r(c[pair] / std::sqrt(vx * vy));
}

// ---- ranks and correlations of stored values ----

std::vector<double> rank_average(const std::vector<double>& x) {
  const size_t n = x.size();
  // (value, index) pairs sorted by value: the order among equal values does not matter, they share
  // one rank. Sorting the pairs themselves is several times faster than sorting indices into x.
  std::vector<std::pair<double, size_t>> sorted(n);
  for (size_t i = 0; i < n; ++i) sorted[i] = {x[i], i};
  std::sort(sorted.begin(), sorted.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  std::vector<double> rank(n);
  for (size_t i = 0; i < n;) {
    size_t j = i + 1;
    while (j < n && sorted[j].first == sorted[i].first) ++j;
    // sorted positions i..j-1 hold equal values: ranks i+1..j, average (i + 1 + j) / 2
    const double average = 0.5 * static_cast<double>(i + 1 + j);
    for (size_t k = i; k < j; ++k) rank[sorted[k].second] = average;
    i = j;
  }
  return rank;
}

double pearson(const std::vector<double>& x, const std::vector<double>& y) {
  if (x.size() != y.size())
    throw Error("pearson: x has " + std::to_string(x.size()) + " values, y " + std::to_string(y.size()));
  const size_t n = x.size();
  if (n < 3) return kNan;
  double sx = 0, sy = 0;
  for (size_t i = 0; i < n; ++i) {
    sx += x[i];
    sy += y[i];
  }
  const double mx = sx / static_cast<double>(n), my = sy / static_cast<double>(n);
  double vx = 0, vy = 0, cxy = 0;
  for (size_t i = 0; i < n; ++i) {
    const double dx = x[i] - mx, dy = y[i] - my;
    vx += dx * dx;
    vy += dy * dy;
    cxy += dx * dy;
  }
  if (!(vx > 0) || !(vy > 0)) return kNan;
  return clamp_r(cxy / std::sqrt(vx * vy));
}

double spearman(const std::vector<double>& x, const std::vector<double>& y) {
  if (x.size() < 3) return kNan;
  return pearson(rank_average(x), rank_average(y));
}

// ---- the summation tree ----

std::vector<LeafRange> split_leaves(int64_t n_leaves, int n_ranks) {
  if (n_ranks < 1) throw Error("split_leaves: " + std::to_string(n_ranks) + " ranks");
  std::vector<LeafRange> out(n_ranks);
  for (int r = 0; r < n_ranks; ++r) out[r] = {n_leaves * r / n_ranks, n_leaves * (r + 1) / n_ranks};
  return out;
}

namespace {

void collect_owned(int64_t lo, int64_t hi, const LeafRange& mine, std::vector<LeafRange>& out) {
  if (hi <= mine.begin || lo >= mine.end) return;  // disjoint
  if (lo >= mine.begin && hi <= mine.end) {
    out.push_back({lo, hi});
    return;
  }
  const int64_t mid = tree_mid(lo, hi);
  collect_owned(lo, mid, mine, out);
  collect_owned(mid, hi, mine, out);
}

}  // namespace

std::vector<LeafRange> owned_nodes(int64_t n_leaves, const LeafRange& mine) {
  std::vector<LeafRange> out;
  if (!mine.empty() && n_leaves > 0) collect_owned(0, n_leaves, mine, out);
  return out;
}

}  // namespace sfc::reduce
