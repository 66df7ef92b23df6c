// The numerics of the reduction pass (sfc/reduce/reduce.h) against direct formulas on small random
// data: moments and their merging, average ranks with ties, Pearson and Spearman (NaN cases included),
// and the fixed summation tree that makes the result independent of the rank count.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <map>
#include <random>
#include <vector>

#include "sfc/reduce/reduce.h"

namespace {

using namespace sfc::reduce;
constexpr double kNan = std::numeric_limits<double>::quiet_NaN();

// Values with NaN sprinkled in and ties (rounded to a coarse grid) when asked.
std::vector<double> random_values(std::mt19937& rng, size_t n, bool ties, double nan_fraction = 0) {
  std::normal_distribution<double> normal(3.0, 2.0);
  std::uniform_real_distribution<double> unit(0, 1);
  std::vector<double> x(n);
  for (auto& v : x) {
    v = normal(rng);
    if (ties) v = std::round(v);
    if (unit(rng) < nan_fraction) v = kNan;
  }
  return x;
}

// Direct formulas, in long double.
struct Direct {
  static double mean(const std::vector<double>& x) {
    long double s = 0;
    for (double v : x) s += v;
    return x.empty() ? kNan : static_cast<double>(s / x.size());
  }
  static double std1(const std::vector<double>& x) {
    if (x.size() < 2) return kNan;
    long double m = 0, s = 0;
    for (double v : x) m += v;
    m /= x.size();
    for (double v : x) s += (v - m) * (v - m);
    return static_cast<double>(std::sqrt(s / (x.size() - 1)));
  }
  static double pearson(const std::vector<double>& x, const std::vector<double>& y) {
    const size_t n = x.size();
    if (n < 3) return kNan;
    long double mx = 0, my = 0;
    for (size_t i = 0; i < n; ++i) {
      mx += x[i];
      my += y[i];
    }
    mx /= n;
    my /= n;
    long double sxx = 0, syy = 0, sxy = 0;
    for (size_t i = 0; i < n; ++i) {
      sxx += (x[i] - mx) * (x[i] - mx);
      syy += (y[i] - my) * (y[i] - my);
      sxy += (x[i] - mx) * (y[i] - my);
    }
    if (sxx == 0 || syy == 0) return kNan;
    return static_cast<double>(sxy / std::sqrt(sxx * syy));
  }
  // Rank of x_i = (number of smaller values) + (number of equal values + 1) / 2.
  static std::vector<double> ranks(const std::vector<double>& x) {
    std::vector<double> r(x.size());
    for (size_t i = 0; i < x.size(); ++i) {
      double less = 0, equal = 0;
      for (double v : x) {
        less += v < x[i];
        equal += v == x[i];
      }
      r[i] = less + (equal + 1) / 2;
    }
    return r;
  }
};

std::vector<double> finite(const std::vector<double>& x) {
  std::vector<double> out;
  for (double v : x)
    if (std::isfinite(v)) out.push_back(v);
  return out;
}

void expect_close(double actual, double expected, double rel = 1e-12) {
  if (std::isnan(expected)) {
    EXPECT_TRUE(std::isnan(actual)) << actual;
    return;
  }
  EXPECT_NEAR(actual, expected, rel * std::max(1.0, std::fabs(expected)));
}

TEST(ReduceStats, MomentsMatchDirectFormulasAndMergeInAnyOrder) {
  std::mt19937 rng(1);
  for (size_t n : {0, 1, 2, 3, 17, 200}) {
    const auto x = random_values(rng, n, /*ties=*/n % 2 == 1, /*nan_fraction=*/0.2);
    Moments all;
    for (double v : x)
      if (std::isfinite(v)) all.add(v);
    const auto kept = finite(x);
    EXPECT_EQ(all.n, static_cast<double>(kept.size()));
    expect_close(all.mean_or_nan(), Direct::mean(kept));
    expect_close(all.std_or_nan(), Direct::std1(kept));
    // Any split, merged: same moments up to rounding.
    for (size_t cut = 0; cut <= x.size(); cut += 5) {
      Moments a, b;
      for (size_t i = 0; i < x.size(); ++i)
        if (std::isfinite(x[i])) (i < cut ? a : b).add(x[i]);
      a.merge(b);
      EXPECT_EQ(a.n, all.n);
      expect_close(a.mean_or_nan(), all.mean_or_nan());
      expect_close(a.std_or_nan(), all.std_or_nan());
    }
  }
}

TEST(ReduceStats, MomentsKeepDigitsWhenTheSpreadIsSmall) {
  // mean 1e4, std 1e-3: raw sums of squares would keep about 2 digits of the variance.
  std::mt19937 rng(2);
  std::normal_distribution<double> normal(1e4, 1e-3);
  std::vector<double> x(1000);
  Moments m;
  for (auto& v : x) m.add(v = normal(rng));
  expect_close(m.std_or_nan(), Direct::std1(x), 1e-9);
}

TEST(ReduceStats, CoMomentsPearsonMatchesDirectFormula) {
  std::mt19937 rng(3);
  for (size_t n : {0, 2, 3, 4, 50, 300}) {
    const auto a = random_values(rng, n, false), g = random_values(rng, n, true), noise = random_values(rng, n, false);
    std::vector<double> e(n);
    for (size_t i = 0; i < n; ++i) e[i] = 0.7 * a[i] + 0.3 * noise[i];  // correlated with a
    CoMoments all, left, right;
    for (size_t i = 0; i < n; ++i) {
      all.add(a[i], g[i], e[i]);
      (i < n / 3 ? left : right).add(a[i], g[i], e[i]);
    }
    left.merge(right);
    const std::vector<double>* v[3] = {&a, &g, &e};
    for (int p = 0; p < kNumPairs; ++p) {
      const double expected = Direct::pearson(*v[kPairFirst[p]], *v[kPairSecond[p]]);
      expect_close(all.pearson(p), expected);
      expect_close(left.pearson(p), expected);
      expect_close(pearson(*v[kPairFirst[p]], *v[kPairSecond[p]]), expected);
    }
    if (n > 0)
      for (int k = 0; k < 3; ++k) expect_close(left.mean[k], Direct::mean(*v[k]));
  }
}

TEST(ReduceStats, CorrelationIsNanForFewerThanThreePointsOrZeroVariance) {
  CoMoments m;
  m.add(1, 2, 3);
  m.add(2, 3, 5);
  for (int p = 0; p < kNumPairs; ++p) EXPECT_TRUE(std::isnan(m.pearson(p)));
  m.add(3, 5, 4);
  for (int p = 0; p < kNumPairs; ++p) EXPECT_FALSE(std::isnan(m.pearson(p)));
  CoMoments flat;  // patch constant: r with patch undefined, AtP-IG defined
  for (double x : {1.0, 2.0, 4.0, 8.0}) flat.add(x, x * x, 0.5);
  EXPECT_TRUE(std::isnan(flat.pearson(0)));
  EXPECT_TRUE(std::isnan(flat.pearson(1)));
  EXPECT_FALSE(std::isnan(flat.pearson(2)));
  EXPECT_TRUE(std::isnan(pearson({1, 2}, {3, 4})));
  EXPECT_TRUE(std::isnan(pearson({1, 1, 1}, {3, 4, 5})));
  EXPECT_TRUE(std::isnan(spearman({1, 2}, {3, 4})));
  EXPECT_TRUE(std::isnan(spearman({7, 7, 7, 7}, {1, 2, 3, 4})));  // all tied: rank variance 0
  EXPECT_DOUBLE_EQ(pearson({1, 2, 3}, {2, 4, 6}), 1.0);
  EXPECT_DOUBLE_EQ(pearson({1, 2, 3}, {-2, -4, -6}), -1.0);
}

TEST(ReduceStats, AverageRanksWithTies) {
  EXPECT_EQ(rank_average({3, 1, 4, 1, 5}), (std::vector<double>{3, 1.5, 4, 1.5, 5}));
  EXPECT_EQ(rank_average({2, 2, 2}), (std::vector<double>{2, 2, 2}));
  EXPECT_EQ(rank_average({}), std::vector<double>{});
  EXPECT_EQ(rank_average({0.0, -0.0, 1}), (std::vector<double>{1.5, 1.5, 3}));  // -0 == 0
  std::mt19937 rng(4);
  for (size_t n : {1, 5, 40, 333}) {
    const auto x = random_values(rng, n, /*ties=*/true);
    EXPECT_EQ(rank_average(x), Direct::ranks(x));
  }
}

TEST(ReduceStats, SpearmanIsPearsonOfAverageRanks) {
  std::mt19937 rng(5);
  for (size_t n : {3, 4, 10, 100}) {
    const auto x = random_values(rng, n, true), y = random_values(rng, n, true);
    expect_close(spearman(x, y), Direct::pearson(Direct::ranks(x), Direct::ranks(y)));
  }
  // Monotone but not linear: Spearman 1, Pearson below 1.
  const std::vector<double> x = {1, 2, 3, 4, 5}, y = {1, 8, 27, 64, 125};
  EXPECT_DOUBLE_EQ(spearman(x, y), 1.0);
  EXPECT_LT(pearson(x, y), 1.0);
}

TEST(ReduceStats, LeafSplitIsContiguousAndBalanced) {
  for (int64_t n : {0, 1, 5, 64, 1001})
    for (int ranks : {1, 2, 3, 8}) {
      const auto split = split_leaves(n, ranks);
      ASSERT_EQ(split.size(), static_cast<size_t>(ranks));
      EXPECT_EQ(split.front().begin, 0);
      EXPECT_EQ(split.back().end, n);
      for (int r = 1; r < ranks; ++r) EXPECT_EQ(split[r].begin, split[r - 1].end);
      for (const auto& s : split) EXPECT_LE(s.end - s.begin, n / ranks + 1);
    }
}

// The protocol of reduce_moments: rank 0 walks the tree and, where it meets a node inside another
// rank's block, takes the next node that rank sends; each rank sends owned_nodes in order.
TEST(ReduceStats, RankZeroRequestsExactlyTheNodesEachRankOwnsInOrder) {
  for (int64_t n : {1, 2, 7, 16, 100})
    for (int ranks : {1, 2, 3, 5, 16}) {
      const auto split = split_leaves(n, ranks);
      std::map<int, std::vector<LeafRange>> requested;
      struct Count {
        void merge(const Count&) {}
      };
      auto leaf = [&](int64_t i) {
        EXPECT_TRUE(split[0].begin <= i && i < split[0].end) << "rank 0 computed leaf " << i;
        return Count{};
      };
      auto remote = [&](int64_t lo, int64_t hi, Count&) {
        for (int r = 1; r < ranks; ++r)
          if (!split[r].empty() && split[r].begin <= lo && hi <= split[r].end) {
            requested[r].push_back({lo, hi});
            return true;
          }
        return false;
      };
      tree_reduce<Count>(0, n, leaf, remote);
      for (int r = 1; r < ranks; ++r) EXPECT_EQ(requested[r], owned_nodes(n, split[r])) << n << " leaves, rank " << r;
      // The owned nodes tile each block.
      for (int r = 0; r < ranks; ++r) {
        int64_t at = split[r].begin;
        for (const auto& node : owned_nodes(n, split[r])) {
          EXPECT_EQ(node.begin, at);
          at = node.end;
        }
        EXPECT_EQ(at, split[r].end);
      }
    }
}

// What reduce_moments does, with the ranks simulated: bit-for-bit the same moments for any rank count.
TEST(ReduceStats, TreeReductionIsBitIdenticalForAnyRankCount) {
  std::mt19937 rng(6);
  const auto x = random_values(rng, 1000, false, 0.1);
  const int64_t leaf_rows = 7, n_leaves = (static_cast<int64_t>(x.size()) + leaf_rows - 1) / leaf_rows;
  struct Part {
    Moments m;
    void merge(const Part& o) { m.merge(o.m); }
  };
  auto leaf = [&](int64_t i) {
    Part p;
    for (int64_t r = i * leaf_rows; r < std::min<int64_t>((i + 1) * leaf_rows, x.size()); ++r)
      if (std::isfinite(x[r])) p.m.add(x[r]);
    return p;
  };
  auto none = [](int64_t, int64_t, Part&) { return false; };
  const Part serial = tree_reduce<Part>(0, n_leaves, leaf, none);
  expect_close(serial.m.mean_or_nan(), Direct::mean(finite(x)));
  for (int ranks : {2, 3, 4, 7, 13, 200}) {
    const auto split = split_leaves(n_leaves, ranks);
    // Every rank's nodes, computed "on that rank" and queued in send order.
    std::map<int, std::vector<Part>> sent;
    for (int r = 1; r < ranks; ++r)
      for (const auto& node : owned_nodes(n_leaves, split[r]))
        sent[r].push_back(tree_reduce<Part>(node.begin, node.end, leaf, none));
    std::map<int, size_t> next;
    auto remote = [&](int64_t lo, int64_t hi, Part& out) {
      for (int r = 1; r < ranks; ++r)
        if (!split[r].empty() && split[r].begin <= lo && hi <= split[r].end) {
          out = sent[r].at(next[r]++);
          return true;
        }
      return false;
    };
    const Part parallel = tree_reduce<Part>(0, n_leaves, leaf, remote);
    EXPECT_EQ(parallel.m.n, serial.m.n) << ranks;
    EXPECT_EQ(parallel.m.mean, serial.m.mean) << ranks;  // bitwise
    EXPECT_EQ(parallel.m.m2, serial.m.m2) << ranks;
  }
}

TEST(ReduceStats, OptionsAndCsvName) {
  ReduceOptions options;
  EXPECT_NO_THROW(options.validate());
  options.topk = 0;
  EXPECT_THROW(options.validate(), std::exception);
  options = {};
  options.leaf_rows = 0;
  EXPECT_THROW(options.validate(), std::exception);
  EXPECT_EQ(summary_csv_path("/a/b/run.h5"), std::filesystem::path("/a/b/run.summary.csv"));
  EXPECT_EQ(summary_csv_path("run.h5"), std::filesystem::path("run.summary.csv"));
}

}  // namespace
