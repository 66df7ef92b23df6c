// The work plan is a pure function: every (batch, node) pair goes to exactly one rank, site groups
// are balanced within the stated bound, and impossible layouts are refused with the key's name.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <numeric>

#include "sfc/core/error.h"
#include "sfc/job/work_plan.h"

namespace sfc::job {
namespace {

WorkPlanInput input(int64_t n_batches, int64_t n_layer, std::vector<Site> sites, int world, int groups) {
  WorkPlanInput in;
  in.n_batches = n_batches;
  in.n_layer = n_layer;
  for (Site s : sites)
    for (int64_t l = 0; l < n_layer; ++l) in.nodes.push_back({s, l});
  in.world_size = world;
  in.site_groups = groups;
  return in;
}

// (batch, site, layer) -> how many ranks compute it.
std::map<std::tuple<int64_t, int, int64_t>, int> coverage(const WorkPlan& plan) {
  std::map<std::tuple<int64_t, int, int64_t>, int> seen;
  for (const auto& r : plan.ranks)
    for (int64_t b : r.batches)
      for (const auto& n : r.nodes) ++seen[{b, static_cast<int>(n.site), n.layer}];
  return seen;
}

TEST(WorkPlan, EveryBatchAndNodeExactlyOnceForManyLayouts) {
  const std::vector<Site> sites = {Site::kResid, Site::kMlp, Site::kAttn};
  for (int64_t n_batches : {1, 2, 5, 13})
    for (int world : {1, 2, 3, 4, 6, 12})
      for (int groups : {1, 2, 3, 4, 6}) {
        if (world % groups != 0) continue;
        const auto in = input(n_batches, 4, sites, world, groups);
        const auto plan = make_work_plan(in);
        SCOPED_TRACE("batches " + std::to_string(n_batches) + " world " + std::to_string(world) + " groups " +
                     std::to_string(groups));
        ASSERT_EQ(plan.ranks.size(), static_cast<size_t>(world));
        EXPECT_EQ(plan.n_data_groups * plan.n_site_groups, world);
        const auto seen = coverage(plan);
        EXPECT_EQ(seen.size(), static_cast<size_t>(n_batches) * in.nodes.size());
        for (const auto& [key, count] : seen) EXPECT_EQ(count, 1);
        // owner_of agrees with the ranks' node lists
        for (const auto& r : plan.ranks)
          for (const auto& n : r.nodes) EXPECT_EQ(plan.owner_of(n.site, n.layer), r.site_group);
        // data groups differ by at most one batch
        size_t lo = SIZE_MAX, hi = 0;
        for (const auto& r : plan.ranks) lo = std::min(lo, r.batches.size()), hi = std::max(hi, r.batches.size());
        EXPECT_LE(hi - lo, 1u);
      }
}

TEST(WorkPlan, SiteGroupsWithinMeanPlusLargestNode) {
  for (int64_t n_layer : {4, 7, 26, 42})
    for (int groups : {2, 3, 5, 8}) {
      const auto in = input(10, n_layer, {Site::kResid, Site::kMlp, Site::kAttn}, groups, groups);
      const auto plan = make_work_plan(in);
      int64_t total = 0, largest = 0;
      for (const auto& n : in.nodes) total += node_cost(n, n_layer), largest = std::max(largest, node_cost(n, n_layer));
      const double mean = static_cast<double>(total) / groups;
      for (const auto& r : plan.ranks) EXPECT_LE(r.cost, mean + largest) << "L=" << n_layer << " G=" << groups;
      int64_t sum = 0;
      for (int g = 0; g < groups; ++g) sum += plan.ranks[g].cost;
      EXPECT_EQ(sum, total);
    }
}

TEST(WorkPlan, CostFollowsDepthAndBalancesBetterThanContiguousSplit) {
  // 26 layers, 2 groups: a contiguous split (layers 0-12 | 13-25) would cost 3x more on one side.
  const auto plan = make_work_plan(input(4, 26, {Site::kResid}, 2, 2));
  EXPECT_EQ(node_cost({Site::kResid, 0}, 26), 26);
  EXPECT_EQ(node_cost({Site::kResid, 25}, 26), 1);
  EXPECT_LT(plan.site_imbalance(), 1.05);
}

TEST(WorkPlan, IsDeterministic) {
  const auto in = input(9, 6, {Site::kAttn, Site::kResid}, 6, 3);
  const auto a = make_work_plan(in), b = make_work_plan(in);
  ASSERT_EQ(a.ranks.size(), b.ranks.size());
  for (size_t r = 0; r < a.ranks.size(); ++r) {
    EXPECT_EQ(a.ranks[r].batches, b.ranks[r].batches);
    ASSERT_EQ(a.ranks[r].nodes.size(), b.ranks[r].nodes.size());
    for (size_t i = 0; i < a.ranks[r].nodes.size(); ++i) EXPECT_TRUE(a.ranks[r].nodes[i] == b.ranks[r].nodes[i]);
  }
}

TEST(WorkPlan, MoreDataGroupsThanBatchesLeavesSomeIdle) {
  const auto plan = make_work_plan(input(2, 3, {Site::kResid}, 4, 1));
  EXPECT_EQ(plan.ranks[0].batches, std::vector<int64_t>{0});
  EXPECT_EQ(plan.ranks[1].batches, std::vector<int64_t>{1});
  EXPECT_TRUE(plan.ranks[2].batches.empty());
  EXPECT_TRUE(plan.ranks[3].batches.empty());
}

void expect_config_error(const WorkPlanInput& in, const std::string& needle) {
  try {
    make_work_plan(in);
    ADD_FAILURE() << "expected a ConfigError containing '" << needle << "'";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

TEST(WorkPlan, RefusesImpossibleLayouts) {
  expect_config_error(input(4, 3, {Site::kResid}, 3, 2), "dist.site_groups = 2 does not divide the 3 MPI ranks");
  expect_config_error(input(4, 2, {Site::kResid}, 4, 4), "only 2 (site, layer) node(s)");
  expect_config_error(input(4, 2, {Site::kResid}, 1, 0), "dist.site_groups = 0");
  auto twice = input(4, 2, {Site::kResid}, 1, 1);
  twice.nodes.push_back({Site::kResid, 1});
  expect_config_error(twice, "listed twice");
}

}  // namespace
}  // namespace sfc::job
