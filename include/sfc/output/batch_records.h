// The bridge between a batch's file blocks (output::BatchRows) and a rank's shard records: what a
// rank keeps of a batch (the datasets of the nodes it owns, its latent sums stored sparse) and how
// the G records of a data group become one batch again. Sits in the app because it needs both the
// results layout and the work plan.
#pragma once

#include <vector>

#include "sfc/dist/shard.h"
#include "sfc/dist/work_plan.h"
#include "sfc/output/results_writer.h"

namespace sfc::app {

// Blocks of /pairs and /resid_post are kept by site group 0; those of /error/<site> and
// /latents/<site> by every site group owning a layer of that site (its other layers are NaN).
// Latent sums keep only their nonzero entries: JumpReLU latents are sparse, so this is what keeps
// shards small for wide SAEs.
dist::ShardRecord rows_to_record(int64_t batch, const output::BatchRows& rows, const dist::WorkPlan& plan,
                                 int site_group);

// records[g] = the record of site group g for one batch. Each layer of a site's datasets comes from
// the site group that owns it; latent sums are added (owners are disjoint, the rest is zero).
output::BatchRows merge_records(const std::vector<dist::ShardRecord>& records, const dist::WorkPlan& plan,
                                const output::ResultsLayout& layout);

}  // namespace sfc::app
