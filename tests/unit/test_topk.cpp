// topk_by_abs against an obviously correct slow version: per row, sort (|x|, index) by |x| descending
// with NaN below every number, keep the first k, mark NaN and missing slots absent (−1 / NaN).
// Without ties the two must agree exactly. With ties torch::topk picks among equal |x| by no simple
// rule (not lowest index first), and the writer keeps that choice so files do not change; there the
// test checks what is specified: the same |x| in every slot, distinct indices whose x is the value,
// and the same answer every time.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <set>
#include <utility>
#include <vector>

#include "sfc/output/topk.h"

namespace sfc::output {
namespace {

// One row x (F) float32 -> (index, value) of k slots: stable sort by |x| descending (ties: lower
// index first), NaN last; NaN and slots past F absent.
std::pair<std::vector<int32_t>, std::vector<float>> slow_topk_row(const std::vector<float>& x, int64_t k) {
  std::vector<int32_t> order(x.size());
  for (size_t i = 0; i < x.size(); ++i) order[i] = static_cast<int32_t>(i);
  auto key = [&](int32_t i) { return std::isnan(x[i]) ? -1.0f : std::abs(x[i]); };
  std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return key(a) > key(b); });
  std::vector<int32_t> index(k, -1);
  std::vector<float> value(k, std::numeric_limits<float>::quiet_NaN());
  for (int64_t s = 0; s < k && s < static_cast<int64_t>(x.size()); ++s) {
    if (std::isnan(x[order[s]])) break;  // NaN sorts last: every later slot is NaN too
    index[s] = order[s];
    value[s] = x[order[s]];
  }
  return {index, value};
}

std::vector<float> row_of(const torch::Tensor& x2, int64_t r) {
  auto row = x2[r].contiguous();
  return std::vector<float>(row.data_ptr<float>(), row.data_ptr<float>() + row.numel());
}

float abs_key(float v) { return std::isnan(v) ? -1.0f : std::abs(v); }

// x (R, F) with a sprinkling of NaN, a whole NaN row, +inf and −inf (in different rows).
torch::Tensor random_input(int64_t R, int64_t F, uint64_t seed, bool few_values) {
  torch::manual_seed(seed);
  auto x = few_values ? (torch::randint(-3, 4, {R, F}, torch::kFloat) * 0.5)  // many equal |x|, ±0 too
                      : torch::randn({R, F}, torch::kFloat);
  x.masked_fill_(torch::rand({R, F}) < 0.15, NAN);
  if (R > 2) x[1].fill_(NAN);
  if (R > 3 && F > 2) {
    x[2][0] = INFINITY;
    x[3][F - 1] = -INFINITY;
  }
  return x;
}

TEST(TopkByAbs, MatchesTheSlowVersionWithoutTies) {
  const std::vector<std::pair<int64_t, int64_t>> shapes = {{1, 1}, {5, 1}, {7, 3}, {9, 16}, {4, 100}, {3, 700}};
  for (const auto& [R, F] : shapes)
    for (int64_t k : {int64_t{1}, int64_t{2}, F / 2 + 1, F, F + 1, 2 * F + 3}) {
      const auto x = random_input(R, F, static_cast<uint64_t>(R * 1000 + F * 10 + k), /*few_values=*/false);
      const auto got = topk_by_abs(x, k);
      ASSERT_EQ(got.index.sizes().vec(), (std::vector<int64_t>{R, k}));
      ASSERT_EQ(got.value.sizes().vec(), (std::vector<int64_t>{R, k}));
      ASSERT_EQ(got.index.scalar_type(), torch::kInt);
      ASSERT_EQ(got.value.scalar_type(), torch::kFloat);
      for (int64_t r = 0; r < R; ++r) {
        const auto [index, value] = slow_topk_row(row_of(x, r), k);
        for (int64_t s = 0; s < k; ++s) {
          EXPECT_EQ(got.index[r][s].item<int32_t>(), index[s]) << "R=" << R << " F=" << F << " k=" << k << " row " << r
                                                              << " slot " << s;
          const float v = got.value[r][s].item<float>();
          if (std::isnan(value[s])) {
            EXPECT_TRUE(std::isnan(v)) << "slot " << s;
          } else {
            EXPECT_EQ(v, value[s]) << "slot " << s;
          }
        }
      }
    }
}

TEST(TopkByAbs, KLargerThanFLeavesTheExtraSlotsAbsent) {
  const auto x = torch::tensor({{0.5f, -2.0f, 1.0f}, {NAN, 3.0f, NAN}}, torch::kFloat);
  const auto got = topk_by_abs(x, 5);
  EXPECT_TRUE(torch::equal(got.index, torch::tensor({{1, 2, 0, -1, -1}, {1, -1, -1, -1, -1}}, torch::kInt)));
  const auto expected = torch::tensor({{-2.0f, 1.0f, 0.5f, NAN, NAN}, {3.0f, NAN, NAN, NAN, NAN}}, torch::kFloat);
  EXPECT_TRUE(torch::equal(got.value.isnan(), expected.isnan()));
  EXPECT_TRUE(torch::equal(got.value.nan_to_num(), expected.nan_to_num()));
}

TEST(TopkByAbs, KeepsLeadingDimensions) {
  const auto x = torch::randn({2, 3, 4, 6}, torch::kFloat);  // (B, L, Tb, F), as the writer calls it
  const auto got = topk_by_abs(x, 4);
  ASSERT_EQ(got.index.sizes().vec(), (std::vector<int64_t>{2, 3, 4, 4}));
  const auto flat = topk_by_abs(x.reshape({-1, 6}), 4);
  EXPECT_TRUE(torch::equal(got.index.reshape({-1, 4}), flat.index));
  EXPECT_TRUE(torch::equal(got.value.reshape({-1, 4}), flat.value));
}

TEST(TopkByAbs, TiesGiveTheSameMagnitudesAsTheSlowVersionAndTheSameAnswerEveryTime) {
  for (int64_t F : {3, 8, 40, 300}) {
    for (int64_t k : {int64_t{1}, int64_t{3}, int64_t{7}, F, F + 2}) {
      const int64_t R = 6;
      const auto x = random_input(R, F, static_cast<uint64_t>(F * 100 + k), /*few_values=*/true);
      const auto got = topk_by_abs(x, k);
      const auto again = topk_by_abs(x.clone(), k);
      EXPECT_TRUE(torch::equal(got.index, again.index)) << "deterministic";
      for (int64_t r = 0; r < R; ++r) {
        const auto row = row_of(x, r);
        const auto [index, value] = slow_topk_row(row, k);
        std::set<int32_t> seen;
        for (int64_t s = 0; s < k; ++s) {
          const int32_t i = got.index[r][s].item<int32_t>();
          const float v = got.value[r][s].item<float>();
          EXPECT_EQ(i < 0, index[s] < 0) << "F=" << F << " k=" << k << " row " << r << " slot " << s;
          if (i < 0) {
            EXPECT_EQ(i, -1);
            EXPECT_TRUE(std::isnan(v));
            continue;
          }
          ASSERT_LT(i, F);
          EXPECT_TRUE(seen.insert(i).second) << "index " << i << " twice";
          EXPECT_EQ(abs_key(v), abs_key(value[s])) << "F=" << F << " k=" << k << " row " << r << " slot " << s;
          EXPECT_TRUE(v == row[i] || (std::isnan(v) && std::isnan(row[i])));
          EXPECT_FALSE(std::isnan(v));
        }
      }
    }
  }
}

}  // namespace
}  // namespace sfc::output
