// Writes the `sfc run` results file (names in results_schema.h): creates every dataset up front,
// NaN/-1-filled, then writes each batch as hyperslabs of rows [first, first + B) and positions
// [0, Tb). Two steps, so a distributed run can keep the middle on disk: make_rows turns a
// BatchResult into exactly the blocks the file gets (masked, top-k taken by topk_by_abs, in file
// types) plus the batch's latent sums; write_rows puts them in the file. Memory grows with the
// batch and with the latent sums (L, T, F) per site, never with the number of pairs. Knows nothing
// of the model or of MPI; in a collective file every rank calls write_rows the same number of times.
#pragma once

#include <torch/types.h>

#include <array>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "sfc/core/site.h"
#include "sfc/data/pairs.h"
#include "sfc/engines/engine_types.h"
#include "sfc/h5/h5_file.h"
#include "sfc/schema/results_schema.h"

namespace sfc::output {

// What the file holds: sizes and which latent datasets exist.
struct ResultsLayout {
  int64_t n_pairs = 0;   // N
  int64_t n_layer = 0;   // L
  int64_t n_tokens = 0;  // T, the longest prompt of the dataset
  // F of the SAE at [site][layer], 0 where none is loaded. A site with no SAE at all gets no
  // /latents/<site> group; the others get F = the widest of the site.
  std::array<std::vector<int64_t>, kNumSites> latent_width;
  engines::LatentOutput latents = engines::LatentOutput::kSum;
  int64_t topk = 32;  // k

  int64_t max_width(Site site) const;  // F of a site (0 if no SAE)
  // Layout for a dataset, a model depth and the SAEs a run loaded.
  static ResultsLayout make(const data::PairDataset& dataset, int64_t n_layer, const engines::SaeSet& saes,
                            engines::LatentOutput latents, int64_t topk);
};

// One batch, ready for the file.
struct BatchRows {
  int64_t first = 0;   // first row
  int64_t n_rows = 0;  // B
  // Dataset path -> (B, ...) CPU contiguous block in the dataset's element type, covering the
  // batch's rows and positions [0, Tb). A dataset not listed keeps its fill value.
  std::map<std::string, torch::Tensor> blocks;
  // Latent sums over the batch's pairs, per site: (L, Tb, F) fp64 with NaN counted as 0, and
  // (L, Tb) bool "some pair had a value". Undefined when the site has none.
  struct LatentSum {
    torch::Tensor atp, ig, atp_seen, ig_seen;
  };
  std::array<LatentSum, kNumSites> latent_sums;
};

// The dataset-level latent sums of the file, per site ((L, T, F) fp64 and (L, T) bool), and the
// pairs per position (T) int64. A distributed run adds the ranks' totals before finish().
struct LatentTotals {
  std::array<BatchRows::LatentSum, kNumSites> sums;
  torch::Tensor count;
};

// Root attributes (provenance).
struct Provenance {
  std::string config;        // resolved INI text
  std::string model;         // model folder
  std::string sae;           // SAE folder
  std::string command_line;  // as typed
};

class ResultsWriter {
 public:
  // Creates every dataset of the schema in `file` (NaN / -1 filled) and the root attributes.
  ResultsWriter(h5::File& file, const ResultsLayout& layout, const Provenance& provenance);
  ~ResultsWriter();
  ResultsWriter(const ResultsWriter&) = delete;
  ResultsWriter& operator=(const ResultsWriter&) = delete;

  // Source file and skipped records of the dataset, as /pairs attributes.
  void write_dataset_info(const data::PairDataset& dataset);
  // One batch: its pairs, LDs and every defined score tensor of `result` (undefined ones stay NaN).
  // Positions at or after a prompt's length are written as NaN whatever the result holds. Latent
  // sums are accumulated in fp64 pair by pair, so they do not depend on the batching.
  void write(const data::PairBatch& batch, const engines::BatchResult& result);
  // The blocks write() would write, without writing them.
  static BatchRows make_rows(const ResultsLayout& layout, const data::PairBatch& batch,
                             const engines::BatchResult& result);
  // Writes every block of `rows` and adds its latent sums to the totals. Visits every dataset of the
  // file in one fixed order, writing nothing to those `rows` lacks (an empty BatchRows is how a
  // rank with no batch left takes part in a collective round).
  void write_rows(const BatchRows& rows);
  LatentTotals& totals() { return totals_; }
  // Writes the latent totals and counts (only when write_totals: one rank of a collective file
  // writes them, the others take part with nothing), closes every dataset (before
  // H5Output::commit).
  void finish(bool write_totals = true);

  const ResultsLayout& layout() const { return layout_; }

 private:
  h5::Dataset& dataset(const std::string& path);
  void create(const std::string& path, const schema::Entry& entry, std::vector<int64_t> shape);

  h5::File& file_;
  ResultsLayout layout_;
  std::map<std::string, h5::Dataset> datasets_;
  LatentTotals totals_;
  bool finished_ = false;
};

}  // namespace sfc::output
