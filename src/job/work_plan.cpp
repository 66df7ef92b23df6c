#include "sfc/job/work_plan.h"

#include <algorithm>
#include <numeric>
#include <sstream>

#include "sfc/core/error.h"

namespace sfc::job {

int64_t node_cost(const SiteLayer& node, int64_t n_layer) { return n_layer - node.layer; }

int WorkPlan::owner_of(Site site, int64_t layer) const {
  const auto i = static_cast<size_t>(static_cast<int>(site) * n_layer + layer);
  return layer >= 0 && layer < n_layer && i < owner.size() ? owner[i] : -1;
}

double WorkPlan::site_imbalance() const {
  std::vector<int64_t> group_cost(n_site_groups, 0);
  for (int g = 0; g < n_site_groups; ++g) group_cost[g] = ranks[g].cost;
  const double total = std::accumulate(group_cost.begin(), group_cost.end(), 0.0);
  if (total == 0) return 1.0;
  return *std::max_element(group_cost.begin(), group_cost.end()) / (total / n_site_groups);
}

std::string WorkPlan::describe() const {
  std::ostringstream s;
  s << ranks.size() << " rank(s) = " << n_data_groups << " data group(s) x " << n_site_groups
    << " site group(s); " << n_batches << " batch(es); site-group cost max/mean " << site_imbalance();
  return s.str();
}

WorkPlan make_work_plan(const WorkPlanInput& in) {
  const int W = in.world_size, G = in.site_groups;
  if (W < 1) throw ConfigError("work plan: world size " + std::to_string(W) + " < 1");
  if (G < 1) throw ConfigError("dist.site_groups = " + std::to_string(G) + ": must be >= 1");
  if (W % G != 0)
    throw ConfigError("dist.site_groups = " + std::to_string(G) + " does not divide the " + std::to_string(W) +
                      " MPI ranks (ranks = data groups x site groups)");
  if (static_cast<size_t>(G) > in.nodes.size())
    throw ConfigError("dist.site_groups = " + std::to_string(G) + " but the run has only " +
                      std::to_string(in.nodes.size()) + " (site, layer) node(s) to split");
  for (const auto& n : in.nodes)
    if (n.layer < 0 || n.layer >= in.n_layer)
      throw ConfigError("work plan: layer " + std::to_string(n.layer) + " outside 0.." + std::to_string(in.n_layer - 1));

  WorkPlan plan;
  plan.n_data_groups = W / G;
  plan.n_site_groups = G;
  plan.n_batches = in.n_batches;
  plan.n_layer = in.n_layer;
  plan.owner.assign(static_cast<size_t>(kNumSites * in.n_layer), -1);

  // Sites: longest-processing-time first. Stable sort keeps the input order among equal costs, so
  // the plan depends only on the inputs.
  std::vector<size_t> order(in.nodes.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    return node_cost(in.nodes[a], in.n_layer) > node_cost(in.nodes[b], in.n_layer);
  });
  std::vector<int64_t> load(G, 0);
  std::vector<int> group_of(in.nodes.size(), 0);
  for (size_t i : order) {
    const int g = static_cast<int>(std::min_element(load.begin(), load.end()) - load.begin());
    group_of[i] = g;
    load[g] += node_cost(in.nodes[i], in.n_layer);
    auto& owner = plan.owner[static_cast<size_t>(static_cast<int>(in.nodes[i].site) * in.n_layer + in.nodes[i].layer)];
    if (owner != -1) throw ConfigError("work plan: node " + std::string(site_name(in.nodes[i].site)) + " layer " +
                                       std::to_string(in.nodes[i].layer) + " listed twice");
    owner = g;
  }

  plan.ranks.resize(W);
  for (int r = 0; r < W; ++r) {
    auto& rank = plan.ranks[r];
    rank.rank = r;
    rank.data_group = r / G;
    rank.site_group = r % G;
    for (int64_t b = rank.data_group; b < in.n_batches; b += plan.n_data_groups) rank.batches.push_back(b);
    for (size_t i = 0; i < in.nodes.size(); ++i)
      if (group_of[i] == rank.site_group) rank.nodes.push_back(in.nodes[i]);
    rank.cost = load[rank.site_group];
  }
  return plan;
}

}  // namespace sfc::job
