// Prompt-pair datasets (docs/design.md §1 "Data"): JSON-lines in the SFC format or pre-tokenised, checked
// record by record, and cut into right-padded batches. Knows the tokenizer, not the model.
#pragma once

#include <torch/types.h>

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "sfc/model/metric.h"

namespace sfc::text {
class Tokenizer;
}

namespace sfc::data {

// One clean/patch pair after tokenisation.
struct PromptPair {
  std::vector<int64_t> clean_ids;       // (T_i) BOS first
  std::vector<int64_t> patch_ids;       // (T_i) same length as clean_ids
  int64_t clean_answer = -1;            // one token
  std::vector<int64_t> patch_answers;   // ≥ 1 tokens; the metric uses the max of their logits
  std::string case_name;                // optional "case" field of the record
  long line = 0;                        // 1-based line in the file, for messages
};

enum class OnBadRecord { kError, kSkip };

struct PairDataset {
  std::filesystem::path file;
  std::vector<PromptPair> pairs;
  int64_t n_skipped = 0;                 // bad records skipped with OnBadRecord::kSkip
  std::vector<std::string> skip_reasons; // "<file>:<line>: <problem>", one per skipped record
  int64_t max_length() const;            // T of the dataset: longest prompt in tokens
};

struct LoadPairsOptions {
  OnBadRecord on_bad_record = OnBadRecord::kError;
  int64_t vocab_size = 0;  // model V: every id must be < V (0 = unchecked)
  int64_t bos_id = 2;      // pre-tokenised prompts must start with it
};

// Reads a JSON-lines file. Each line is either the SFC text format
//   {"clean_prefix", "patch_prefix", "clean_answer", "patch_answer" (or a list of them), "case"?}
// (needs `tokenizer`; answers must be one token) or pre-tokenised
//   {"clean_ids": [..], "patch_ids": [..], "clean_answer_id": n, "patch_answer_id": n or [n, ..],
//    "case"?}.
// Unknown fields are bad records. Blank lines are ignored. A bad record throws
// RecordError("<file>:<line>: <problem>"), or with kSkip is counted and skipped. An empty result
// (no records, or all skipped) is a LoadError naming the file.
PairDataset load_pairs(const std::filesystem::path& file, const text::Tokenizer* tokenizer,
                       const LoadPairsOptions& options);

// A batch of pairs, right-padded to its longest prompt T. Padding never changes real positions in
// a causal model, so pairs of different lengths share a batch (the original code dropped them).
struct PairBatch {
  int64_t first = 0;          // index of the first pair in the dataset
  torch::Tensor clean_ids;    // (B, T) int64, pad_id after the prompt
  torch::Tensor patch_ids;    // (B, T) int64
  torch::Tensor length;       // (B) int64
  torch::Tensor valid;        // (B, T) bool: position < length
  model::AnswerSpec answers;  // pos = length − 1; ids (B, A): clean answer, then patch answers

  int64_t size() const { return clean_ids.size(0); }
  int64_t n_tokens() const { return clean_ids.size(1); }
};

// Pairs [first, first + count) of `dataset` as a batch on `device`.
PairBatch make_batch(const PairDataset& dataset, int64_t first, int64_t count, int64_t pad_id,
                     torch::Device device = torch::kCPU);

}  // namespace sfc::data
