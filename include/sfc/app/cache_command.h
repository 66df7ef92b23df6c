// `sfc cache`: runs the model on prompts and stores tokens, logits and every site's activation in
// one HDF5 file, batch by batch. For checking the model against other implementations and for
// offline analysis; not part of the attribution pipeline.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "sfc/app/command.h"
#include "sfc/app/device.h"

namespace sfc::app {

// Names in the cache file (mirrored by tests/cli/check_cache.py).
namespace cache_schema {
inline constexpr const char* kTokens = "/tokens";    // int32 (N, T), -1 after the prompt
inline constexpr const char* kLengths = "/lengths";  // int32 (N)
inline constexpr const char* kLogits = "/logits";    // float32 (N, T, V), NaN after the prompt
inline constexpr const char* kSites = "/sites";      // /sites/{resid,mlp,attn}: float32 (N, L, T, W)
}  // namespace cache_schema

struct CacheOptions {
  std::filesystem::path model_dir;
  std::filesystem::path tokenizer;  // empty = <model_dir>/tokenizer.model (only with prompts)
  std::filesystem::path out;
  std::string ids;                  // "2,17,5;2,9,4": prompts as token ids, ';'-separated
  std::vector<std::string> prompts;  // or texts to tokenize (BOS prepended)
  int64_t batch_size = 8;
  RuntimeOptions runtime;

  // Throws UsageError for a missing or conflicting flag.
  void validate() const;
};

// "2,17,5;2,9,4" -> {{2,17,5},{2,9,4}}. A malformed or empty prompt is a UsageError naming its index.
std::vector<std::vector<int64_t>> parse_id_lists(const std::string& text);

// Parses the command's flags and runs it; returns the exit status (0, or 0 after printing --help).
int cache_main(const CommandArgs& args);
void run_cache(const CacheOptions& options, const std::string& command_line);

}  // namespace sfc::app
