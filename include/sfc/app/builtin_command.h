// `sfc builtin`: regenerates the built-in small Gemma-2 that does subject–verb agreement (issue 5):
// data, tokenizer, trained model, SAEs and a README with the numbers, deterministically from a
// seed. Not for real Gemma-2 checkpoints: those are downloaded.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>

#include "sfc/app/command.h"

namespace sfc::app {

struct BuiltinOptions {
  std::filesystem::path out;   // writes data/, model/, saes/, README.md under it
  uint64_t seed = 0;
  int threads = 1;             // torch intra-op threads; 1 makes the run bit-for-bit repeatable
  int64_t steps = 3000;        // most model-training steps (stops earlier at the target accuracy)
  int64_t corpus = 20000;      // training sentences
  int64_t sae_steps = 400;     // optimiser steps per SAE (as builtin::SaeTrainOptions; the committed SAEs)
  int64_t sae_width = 256;     // latents per SAE (as builtin::SaeTrainOptions; the committed SAEs)
  int64_t sae_sentences = 4096;  // corpus sentences whose activations the SAEs are trained on
  bool skip_saes = false;

  void validate() const;  // throws UsageError
  std::string to_string() const;
};

int builtin_main(const CommandArgs& args);
void run_builtin(const BuiltinOptions& options);

}  // namespace sfc::app
