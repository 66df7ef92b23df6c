// The built-in model (issue 5): a small Gemma-2 built from scratch, trained with LibTorch autograd
// on the agreement corpus, evaluated on prompt pairs with the project's own metric, and saved in
// the Hugging Face layout that model::load_gemma2 reads. Not a general training framework.
#pragma once

#include <torch/types.h>

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "sfc/data/pairs.h"
#include "sfc/model/config.h"
#include "sfc/model/gemma2.h"

namespace sfc::text {
class Tokenizer;
}

namespace sfc::builtin {

// Sizes of the built-in model; everything else is Gemma-2's (soft-caps 50/30, GeGLU, tied embedding).
struct BuiltinModelSizes {
  int64_t n_layer = 4;
  int64_t d_model = 128;
  int64_t n_head = 4;
  int64_t n_head_kv = 2;
  int64_t head_dim = 32;
  int64_t d_mlp = 512;
  int64_t sliding_window = 64;  // ≥ every sequence here, so the local layers see the whole prompt
};

// A Gemma-2 config for a tokenizer of `tokenizer_vocab` pieces (V rounded up to a multiple of 64).
model::Gemma2Config make_builtin_config(int64_t tokenizer_vocab, const BuiltinModelSizes& sizes = {});

// A model with Gemma-2's initialisation: every matrix normal(0, 0.02), every RMSNorm weight 0
// (Gemma multiplies by 1 + w). Deterministic: seeds torch's CPU generator with `seed`.
model::Gemma2 init_gemma2(const model::Gemma2Config& config, uint64_t seed);

// A corpus as right-padded token ids.
struct CorpusTokens {
  torch::Tensor tokens;  // (N, T) int64, BOS first, pad after the sentence
  torch::Tensor valid;   // (N, T) bool: position < length
};
CorpusTokens tokenize_corpus(const text::Tokenizer& tokenizer, const std::vector<std::string>& lines);

// Fraction of pairs the model gets right: LD < 0 on the clean prompt (and LD > 0 on the patch).
struct Accuracy {
  double clean = 0, patch = 0;                      // over all pairs
  std::map<std::string, double> clean_by_case;      // case name -> clean accuracy
  std::map<std::string, int64_t> n_by_case;
  int64_t n = 0;
  double mean_ld_clean = 0;                         // mean LD on clean prompts (negative is good)
};
Accuracy evaluate(const model::Gemma2Impl& model, const data::PairDataset& pairs, int64_t batch_size = 128);

struct ModelTrainOptions {
  int64_t max_steps = 3000;     // stops earlier once the target accuracy is reached
  int64_t min_steps = 300;
  int64_t batch_size = 64;      // sentences per step
  double lr = 2e-3;             // AdamW peak, linear warm-up then cosine decay to 10% over max_steps
  int64_t warmup = 100;
  double weight_decay = 0.01;   // matrices only, not norms
  double grad_clip = 1.0;
  int64_t eval_every = 100;
  double target_accuracy = 0.95;  // on the TEST pairs, clean and patch prompts
  uint64_t seed = 0;              // batch sampling
};

struct TrainResult {
  int64_t steps = 0;
  double loss = 0;       // mean next-token loss of the last eval_every steps
  Accuracy test, train;  // at the end
  bool reached_target = false;
  double seconds = 0;
};

// Next-token training (cross-entropy over real positions) with AdamW. Parameters require grad only
// inside this call. Progress lines (step, loss, accuracy) go to stderr.
TrainResult train_model(model::Gemma2Impl& model, const CorpusTokens& corpus, const data::PairDataset& train_pairs,
                        const data::PairDataset& test_pairs, const ModelTrainOptions& options);

// The Hugging Face config.json of `config` (the keys of transformers' Gemma2Config).
std::string config_json(const model::Gemma2Config& config);
// Writes <dir>/config.json and <dir>/model.safetensors (fp32, names "model.<parameter>").
void save_gemma2(const model::Gemma2Impl& model, const std::filesystem::path& dir);

}  // namespace sfc::builtin
