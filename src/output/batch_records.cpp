#include "sfc/output/batch_records.h"

#include <torch/torch.h>

#include "sfc/core/error.h"
#include "sfc/schema/results_schema.h"

namespace sfc::output {
namespace {

namespace sc = schema;

constexpr const char* kBlockPrefix = "block:";
constexpr const char* kRowsName = "rows";  // (2) int64: first row, B

// The site a dataset belongs to, or -1 for the shared ones (/pairs, /resid_post).
int site_of_path(const std::string& path) {
  for (const char* group : {sc::kError, sc::kLatents}) {
    const std::string prefix = std::string(group) + "/";
    if (path.rfind(prefix, 0) != 0) continue;
    const auto name = path.substr(prefix.size(), path.find('/', prefix.size()) - prefix.size());
    for (Site site : kAllSites)
      if (name == site_name(site)) return static_cast<int>(site);
  }
  return -1;
}

bool owns_any_layer(const job::WorkPlan& plan, int site, int site_group) {
  for (int64_t l = 0; l < plan.n_layer; ++l)
    if (plan.owner_of(static_cast<Site>(site), l) == site_group) return true;
  return false;
}

std::string sum_name(Site site, const char* which, const char* part) {
  return std::string("sum:") + site_name(site) + ":" + which + ":" + part;
}

const torch::Tensor& need(const job::ShardRecord& record, const std::string& name) {
  const auto* t = record.find(name);
  if (!t) throw Error("shard record of batch " + std::to_string(record.batch) + " lacks " + name);
  return *t;
}

}  // namespace

job::ShardRecord rows_to_record(int64_t batch, const BatchRows& rows, const job::WorkPlan& plan,
                                 int site_group) {
  job::ShardRecord record;
  record.batch = batch;
  record.tensors.emplace_back(kRowsName, torch::tensor({rows.first, rows.n_rows}, torch::kLong));
  for (const auto& [path, block] : rows.blocks) {
    const int site = site_of_path(path);
    const bool keep = site < 0 ? site_group == 0 : owns_any_layer(plan, site, site_group);
    if (keep) record.tensors.emplace_back(kBlockPrefix + path, block);
  }
  for (Site site : kAllSites) {
    if (!owns_any_layer(plan, static_cast<int>(site), site_group)) continue;
    const auto& sums = rows.latent_sums[static_cast<int>(site)];
    for (const auto& [which, sum, seen] : {std::tuple{"atp", sums.atp, sums.atp_seen}, std::tuple{"ig", sums.ig, sums.ig_seen}}) {
      if (!sum.defined()) continue;
      const auto flat = sum.reshape({-1});
      const auto index = flat.nonzero().reshape({-1});  // (nnz) int64 into (L, Tb, F)
      record.tensors.emplace_back(sum_name(site, which, "index"), index);
      record.tensors.emplace_back(sum_name(site, which, "value"), flat.index_select(0, index));
      record.tensors.emplace_back(sum_name(site, which, "seen"), seen);  // (L, Tb)
    }
  }
  return record;
}

BatchRows merge_records(const std::vector<job::ShardRecord>& records, const job::WorkPlan& plan,
                                const ResultsLayout& layout) {
  if (records.size() != static_cast<size_t>(plan.n_site_groups))
    throw Error("merge_records: " + std::to_string(records.size()) + " records for " +
                std::to_string(plan.n_site_groups) + " site groups");
  BatchRows rows;
  const auto first_and_count = need(records[0], kRowsName);
  rows.first = first_and_count[0].item<int64_t>();
  rows.n_rows = first_and_count[1].item<int64_t>();

  for (size_t g = 0; g < records.size(); ++g) {
    const auto& record = records[g];
    if (!need(record, kRowsName).equal(first_and_count))
      throw Error("shard records of batch " + std::to_string(record.batch) + " disagree on its rows");
    for (const auto& [name, tensor] : record.tensors) {
      if (name.rfind(kBlockPrefix, 0) != 0) continue;
      const std::string path = name.substr(std::string(kBlockPrefix).size());
      const int site = site_of_path(path);
      auto it = rows.blocks.find(path);
      if (it == rows.blocks.end()) {
        rows.blocks.emplace(path, tensor.clone());
        continue;
      }
      if (site < 0) continue;  // shared datasets come from site group 0, which is first
      // Layer dimension is 1 in every per-site dataset: take the layers this group owns.
      for (int64_t l = 0; l < plan.n_layer; ++l)
        if (plan.owner_of(static_cast<Site>(site), l) == static_cast<int>(g)) it->second.select(1, l).copy_(tensor.select(1, l));
    }
  }

  for (Site site : kAllSites) {
    const int64_t F = layout.max_width(site);
    auto& sums = rows.latent_sums[static_cast<int>(site)];
    for (const char* which : {"atp", "ig"}) {
      torch::Tensor sum, seen;
      for (const auto& record : records) {
        const auto* index = record.find(sum_name(site, which, "index"));
        if (!index) continue;
        const auto& s = need(record, sum_name(site, which, "seen"));
        if (!sum.defined()) {
          sum = torch::zeros({s.size(0), s.size(1), F}, torch::kDouble);
          seen = torch::zeros_like(s);
        }
        sum.view({-1}).index_add_(0, *index, need(record, sum_name(site, which, "value")));
        seen.logical_or_(s);
      }
      if (!sum.defined()) continue;
      (std::string(which) == "atp" ? sums.atp : sums.ig) = sum;
      (std::string(which) == "atp" ? sums.atp_seen : sums.ig_seen) = seen;
    }
  }
  return rows;
}

}  // namespace sfc::output
