// What the results file holds for the reduction pass: the metrics' dataset paths, and the checks
// that a file is a complete `sfc run` results file this pass can read.
#include <array>
#include <string>
#include <vector>

#include "reduce_pass.h"
#include "sfc/core/error.h"
#include "sfc/core/shapes.h"
#include "sfc/core/site.h"
#include "sfc/h5/h5_file.h"
#include "sfc/schema/results_schema.h"

namespace sfc::reduce::detail {

// Metric m of 0..kNumMetrics-1: the 7 error metrics of resid, mlp, attn, then the 4 of /resid_post.
std::string metric_path(int m) {
  if (m < kNumSites * kNumErrorMetrics)
    return sc::path(sc::kError, kAllSites[m / kNumErrorMetrics], sc::kSummaryErrorMetrics[m % kNumErrorMetrics]);
  return sc::path(sc::kResidPost, sc::kResidPostDatasets[m - kNumSites * kNumErrorMetrics]);
}
int estimator_metric(int site, int estimator) { return site * kNumErrorMetrics + kEstimatorMetric[estimator]; }

namespace {

int64_t size_attribute(const h5::File& f, const std::string& name) {
  if (!f.has_attribute(name)) throw LoadError(f.file_path(), "no root attribute '" + name + "' (not a results file?)");
  const std::string text = f.attribute(name);
  size_t used = 0;
  int64_t value = -1;
  try {
    value = std::stoll(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used != text.size() || value < 0)
    throw LoadError(f.file_path(), "root attribute '" + name + "' = '" + text + "' is not a size");
  return value;
}

void expect_dataset(const h5::File& f, const std::string& path, const std::vector<int64_t>& shape) {
  if (!f.exists(path)) throw LoadError(f.file_path(), "dataset " + path + " is missing (not a complete results file?)");
  const auto actual = f.open_dataset(path).shape();
  if (actual != shape)
    throw LoadError(f.file_path(), "dataset " + path + " has shape " + shape_str(actual) + ", expected " +
                                       shape_str(shape) + " from the root attributes n_pairs, n_layer, n_tokens");
}

}  // namespace

// Checks the file is an `sfc run` results file this pass can read; every rank does it (same answer).
FileLayout check_results_file(const h5::File& f) {
  if (!f.has_attribute(sc::kAttrSchemaVersion))
    throw LoadError(f.file_path(),
                    "not an `sfc run` results file (no root attribute '" + std::string(sc::kAttrSchemaVersion) + "')");
  const std::string version = f.attribute(sc::kAttrSchemaVersion);
  if (version != sc::kSchemaVersion)
    throw LoadError(f.file_path(), "results schema version " + version + ", this sfc reads version " +
                                       sc::kSchemaVersion + " (use the sfc that wrote the file)");
  FileLayout layout;
  layout.n_pairs = size_attribute(f, sc::kAttrNPairs);
  layout.n_layer = size_attribute(f, sc::kAttrNLayer);
  layout.n_tokens = size_attribute(f, sc::kAttrNTokens);
  const int64_t N = layout.n_pairs, L = layout.n_layer, T = layout.n_tokens;
  if (L < 1 || T < 1)
    throw LoadError(f.file_path(),
                    "n_layer = " + std::to_string(L) + ", n_tokens = " + std::to_string(T) + ": nothing to summarise");
  for (int m = 0; m < kNumMetrics; ++m) expect_dataset(f, metric_path(m), {N, L, T});
  const std::string answer = sc::path(sc::kPairs, sc::kAnswerPos);
  expect_dataset(f, answer, {N});
  const auto answer_pos = f.open_dataset(answer).read_all<int32_t>();
  for (int64_t i = 0; i < N; ++i)
    if (answer_pos[i] < 0 || answer_pos[i] >= T)
      throw LoadError(f.file_path(), answer + "[" + std::to_string(i) + "] = " + std::to_string(answer_pos[i]) +
                                         " is outside 0.." + std::to_string(T - 1));
  for (Site site : kAllSites) {
    const int64_t F = size_attribute(f, sc::attr_n_latents(site));
    layout.n_latents[static_cast<int>(site)] = F;
    if (F == 0) continue;
    expect_dataset(f, sc::path(sc::kLatents, sc::kLatentCount), {T});
    expect_dataset(f, sc::path(sc::kLatents, site, sc::kAtpSum), {L, T, F});
    expect_dataset(f, sc::path(sc::kLatents, site, sc::kIgSum), {L, T, F});
  }
  return layout;
}

h5::File open_results_file(const fs::path& file) {
  if (!fs::exists(file)) throw LoadError(file, "no such file");
  if (fs::is_directory(file)) throw LoadError(file, "is a folder, not a results file");
  try {
    return h5::File::open_read_only(file);
  } catch (const Error& e) {
    throw LoadError(file, "not an HDF5 file, or unreadable (" + std::string(e.what()) + ")");
  }
}

}  // namespace sfc::reduce::detail
