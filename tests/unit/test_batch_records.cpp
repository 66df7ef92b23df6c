// A batch split over site groups and merged back is the batch: each layer of a site's datasets
// comes from its owner, shared datasets from site group 0, latent sums survive the sparse round trip.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "sfc/output/batch_records.h"
#include "sfc/schema/results_schema.h"

namespace sfc::output {
namespace {

namespace sc = schema;

TEST(ShardRows, SplitOverSiteGroupsAndMergedIsTheWholeBatch) {
  const int64_t B = 3, L = 5, T = 4, F = 6, k = 2;
  job::WorkPlanInput in;
  in.n_batches = 2;
  in.n_layer = L;
  for (Site s : {Site::kResid, Site::kAttn})
    for (int64_t l = 0; l < L; ++l) in.nodes.push_back({s, l});
  in.world_size = 3;
  in.site_groups = 3;
  const auto plan = job::make_work_plan(in);
  output::ResultsLayout layout;
  layout.n_pairs = 6;
  layout.n_layer = L;
  layout.n_tokens = T;
  layout.latent_width[0].assign(L, F);
  layout.latent_width[2].assign(L, F);

  torch::manual_seed(0);
  output::BatchRows whole;
  whole.first = 3;
  whole.n_rows = B;
  whole.blocks[sc::path(sc::kPairs, sc::kLength)] = torch::tensor({4, 3, 2}, torch::kInt);
  whole.blocks[sc::path(sc::kResidPost, sc::kAtp)] = torch::randn({B, L, T});
  whole.blocks[sc::path(sc::kError, Site::kResid, sc::kAtp)] = torch::randn({B, L, T});
  whole.blocks[sc::path(sc::kError, Site::kAttn, sc::kPatchEffectGlobal)] = torch::randn({B, L});
  whole.blocks[sc::path(sc::kLatents, Site::kResid, sc::kAtpTopkIndex)] = torch::randint(0, F, {B, L, T, k}, torch::kInt);
  // Latent sums: sparse, with a computed-but-zero entry and unseen positions.
  auto sum = torch::randn({L, T, F}, torch::kDouble) * (torch::rand({L, T, F}) > 0.7).to(torch::kDouble);
  whole.latent_sums[0].atp = sum;
  whole.latent_sums[0].atp_seen = torch::rand({L, T}) > 0.2;

  // What each site group's rank would have: its own layers, NaN (or 0 in sums) elsewhere.
  std::vector<job::ShardRecord> records;
  for (int g = 0; g < 3; ++g) {
    output::BatchRows mine = whole;
    for (auto& [path, block] : mine.blocks) {
      block = block.clone();
      if (path.rfind("/error/", 0) != 0 && path.rfind("/latents/", 0) != 0) continue;
      const Site site = path.find("resid") != std::string::npos ? Site::kResid : Site::kAttn;
      for (int64_t l = 0; l < L; ++l)
        if (plan.owner_of(site, l) != g) {
          if (block.is_floating_point()) block.select(1, l).fill_(NAN);
          else block.select(1, l).fill_(-1);
        }
    }
    auto& s = mine.latent_sums[0];
    s.atp = s.atp.clone();
    s.atp_seen = s.atp_seen.clone();
    for (int64_t l = 0; l < L; ++l)
      if (plan.owner_of(Site::kResid, l) != g) s.atp[l].zero_(), s.atp_seen[l].fill_(false);
    records.push_back(rows_to_record(1, mine, plan, g));
  }
  // Shared datasets are stored once.
  EXPECT_NE(records[0].find("block:/pairs/length"), nullptr);
  EXPECT_EQ(records[1].find("block:/pairs/length"), nullptr);

  const auto merged = merge_records(records, plan, layout);
  EXPECT_EQ(merged.first, 3);
  EXPECT_EQ(merged.n_rows, B);
  ASSERT_EQ(merged.blocks.size(), whole.blocks.size());
  for (const auto& [path, block] : whole.blocks) {
    ASSERT_TRUE(merged.blocks.count(path)) << path;
    EXPECT_TRUE(merged.blocks.at(path).equal(block)) << path;
  }
  EXPECT_TRUE(merged.latent_sums[0].atp.equal(sum));
  EXPECT_TRUE(merged.latent_sums[0].atp_seen.equal(whole.latent_sums[0].atp_seen));
  EXPECT_FALSE(merged.latent_sums[2].atp.defined());
}

}  // namespace
}  // namespace sfc::output
