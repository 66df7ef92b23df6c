// Small helpers shared by the engine sources (private to src/engines).
#pragma once

#include <torch/cuda.h>
#include <torch/torch.h>

#include <chrono>
#include <vector>

#include "sfc/data/pairs.h"
#include "sfc/engines/engine_types.h"
#include "sfc/model/gemma2.h"
#include "sfc/model/metric.h"
#include "sfc/model/sites.h"

namespace sfc::engines::detail {

// The dtype the engines compute in (docs/design.md §1, BatchCache): fp32 for an fp32, bf16 or fp16
// model, fp64 for an fp64 one (finite-difference and fast-vs-slow tests).
inline torch::Dtype compute_dtype(const model::Gemma2Impl& model) {
  return torch::promote_types(model.dtype(), torch::kFloat32);
}

// Adds `delta` (B, S, W) in the compute dtype to the site's activation x in the compute dtype, and
// casts the sum to the model's dtype once: (x + Δ) rounded once, not Δ rounded and then the sum.
// Where Δ = 0 the activation comes back bit for bit (a bf16 value survives fp32 and back).
inline void add_in_compute_dtype(model::SiteCalls& sites, Site site, int64_t layer, torch::Tensor delta) {
  sites.transform(site, layer, [delta = std::move(delta)](const torch::Tensor& x) {
    return (x.to(delta.scalar_type()) + delta).to(x.scalar_type());
  });
}

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
