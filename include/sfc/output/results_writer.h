// Writes the `sfc run` results file (names in results_schema.h): creates every dataset up front,
// NaN/-1-filled, then writes each batch's BatchResult as hyperslabs of rows [first, first + B) and
// positions [0, T_batch). Memory grows with the batch and with the latent sums (L, T, F) per site,
// never with the number of pairs. Knows nothing of the model or of MPI.
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
#include "sfc/output/results_schema.h"

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
  // Writes the latent sums and counts and closes every dataset (before H5Output::commit).
  void finish();

  const ResultsLayout& layout() const { return layout_; }

 private:
  struct LatentSums {
    torch::Tensor atp, ig;                    // (L, T, F) fp64, NaN ignored
    torch::Tensor atp_computed, ig_computed;  // (L, T) bool: some pair had a value there
  };

  h5::Dataset& dataset(const std::string& path);
  void create(const std::string& path, const schema::Entry& entry, std::vector<int64_t> shape);
  void write_scores(const std::string& path, const torch::Tensor& x, const torch::Tensor& valid, int64_t first,
                    const char* what);
  void write_latents(Site site, const data::PairBatch& batch, const engines::SiteLatentScores& scores,
                     const torch::Tensor& valid);

  h5::File& file_;
  ResultsLayout layout_;
  std::map<std::string, h5::Dataset> datasets_;
  std::array<LatentSums, kNumSites> sums_;
  torch::Tensor count_;  // (T) int64: pairs having position t
  bool finished_ = false;
};

}  // namespace sfc::output
