// The bridge between a batch's file blocks (BatchRows) and a rank's shard records: what a
// rank keeps of a batch (the datasets of the nodes it owns, its latent sums stored sparse) and how
// the G records of a data group become one batch again: the one place where rows and shard records
// meet (the job driver stores and fetches records without knowing what they hold).
#pragma once

#include <vector>

#include "sfc/job/shard.h"
#include "sfc/job/work_plan.h"
#include "sfc/output/results_writer.h"

namespace sfc::output {

// Blocks of /pairs and /resid_post are kept by site group 0; those of /error/<site> and
// /latents/<site> by every site group owning a layer of that site (its other layers are NaN).
// Latent sums keep only their nonzero entries: JumpReLU latents are sparse, so this is what keeps
// shards small for wide SAEs.
job::ShardRecord rows_to_record(int64_t batch, const BatchRows& rows, const job::WorkPlan& plan,
                                 int site_group);

// records[g] = the record of site group g for one batch. Each layer of a site's datasets comes from
// the site group that owns it; latent sums are added (owners are disjoint, the rest is zero).
BatchRows merge_records(const std::vector<job::ShardRecord>& records, const job::WorkPlan& plan,
                                const ResultsLayout& layout);

}  // namespace sfc::output
