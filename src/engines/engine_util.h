// Small helpers shared by the engine sources (private to src/engines).
#pragma once

#include <torch/cuda.h>
#include <torch/torch.h>

#include <chrono>
#include <vector>

#include "sfc/data/pairs.h"
#include "sfc/engines/engine_types.h"
#include "sfc/model/metric.h"

namespace sfc::engines::detail {

// The layers the options ask for (all when empty), checked against the model.
std::vector<int64_t> selected_layers(const EngineOptions& options, int64_t n_layer);

// Rows `rows` (R) int64 of a batch's answers.
model::AnswerSpec select_answers(const model::AnswerSpec& answers, const torch::Tensor& rows);

// `answers` repeated `times` times along the batch: row k·B + b is pair b.
model::AnswerSpec repeat_answers(const model::AnswerSpec& answers, int64_t times);

// The same answers read from an output that holds only each row's answer position, as
// run_to_answer and run_from_site_to_answer return: position 0 of every row.
model::AnswerSpec answers_at_only_position(const model::AnswerSpec& answers);

// Normalised patching effect: effect / (LD_patch − LD_clean), with 1 in the denominator where it is 0.
torch::Tensor normalise_effect(const torch::Tensor& effect, const torch::Tensor& ld_clean, const torch::Tensor& ld_patch);

// Writes `value` (B, T) into layer `layer` of a (B, L, T) result, NaN at padding (valid (B, T) false).
void put_scores(torch::Tensor& target, int64_t layer, const torch::Tensor& value, const torch::Tensor& valid);

// Writes latent scores `value` (B, T, F_l) into layer `layer` of a site's (B, L, T, F) tensor `slot`,
// made NaN-filled on first use (F = the site's widest SAE, so narrower layers stay NaN-padded); NaN
// at padding (valid (B, T) false).
void put_latents(torch::Tensor& slot, int64_t n_layer, int64_t max_width, int64_t layer, const torch::Tensor& value,
                 const torch::Tensor& valid);

// Wall time between laps; on a GPU it waits for the device first, so a lap is the work's own time
// and not the time to queue it.
class Stopwatch {
 public:
  explicit Stopwatch(const torch::Device& device) : device_(device), last_(std::chrono::steady_clock::now()) {}
  double lap() {
    if (device_.is_cuda()) torch::cuda::synchronize(device_.index());
    const auto now = std::chrono::steady_clock::now();
    const double s = std::chrono::duration<double>(now - last_).count();
    last_ = now;
    return s;
  }

 private:
  torch::Device device_;
  std::chrono::steady_clock::time_point last_;
};

}  // namespace sfc::engines::detail
