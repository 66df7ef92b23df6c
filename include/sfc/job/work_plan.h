// Who computes what (docs/design.md §2 "Distribution"): the world of W ranks is D data groups × G site
// groups. Pair batches are dealt round-robin to the D data groups; the (site, layer) nodes are split
// over the G ranks of every data group by cost (a node at layer l costs n_layer − l: IG and patching
// resume there and run to the top). Rank r is data group r / G, site group r % G, so the G ranks that
// share batches sit next to each other (usually on one node). A pure, deterministic function: every
// rank computes the same plan from the same inputs, no communication.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "sfc/core/site.h"

namespace sfc::job {

// One error node family: a site at a layer (its SAE, its IG and patching work).
struct SiteLayer {
  Site site = Site::kResid;
  int64_t layer = 0;
  bool operator==(const SiteLayer& o) const { return site == o.site && layer == o.layer; }
};

struct WorkPlanInput {
  int64_t n_batches = 0;            // pair batches of the dataset
  std::vector<SiteLayer> nodes;     // every (site, layer) the run scores
  int64_t n_layer = 0;              // model depth, for the cost model
  int world_size = 1;               // W
  int site_groups = 1;              // G (dist.site_groups)
};

struct RankWork {
  int rank = 0;
  int data_group = 0;
  int site_group = 0;
  std::vector<int64_t> batches;     // ascending
  std::vector<SiteLayer> nodes;     // in the order of WorkPlanInput::nodes
  int64_t cost = 0;                 // sum of node costs
};

struct WorkPlan {
  int n_data_groups = 1;            // D
  int n_site_groups = 1;            // G
  int64_t n_batches = 0;
  int64_t n_layer = 0;
  std::vector<RankWork> ranks;      // indexed by rank
  // Site group that computes a node; -1 if the node is not in the plan.
  std::vector<int> owner;           // [site * n_layer + layer]

  int owner_of(Site site, int64_t layer) const;
  int rank_of(int data_group, int site_group) const { return data_group * n_site_groups + site_group; }
  int data_group_of_batch(int64_t batch) const { return static_cast<int>(batch % n_data_groups); }
  // Largest site-group cost over the mean (1 = perfect balance).
  double site_imbalance() const;
  // One line for the log: "W ranks = D data groups × G site groups; ...".
  std::string describe() const;
};

// A node at layer l costs n_layer − l.
int64_t node_cost(const SiteLayer& node, int64_t n_layer);

// Throws ConfigError when W is not a multiple of G, or G exceeds the number of nodes. D may exceed
// the number of batches (the extra data groups get none and only join the collective steps).
// Balance: site groups are filled largest cost first into the least-loaded group (ties: lowest
// group), so the most loaded group costs at most mean + the largest single node cost.
WorkPlan make_work_plan(const WorkPlanInput& input);

}  // namespace sfc::job
