// Trains the built-in model's SAEs (issue 5): a JumpReLU SAE at every site and layer, fitted on the
// model's own activations over the training corpus, written in the Gemma Scope layout the loader
// reads (sae/sae_locator.cpp). Not for real Gemma Scope SAEs: those are downloaded.
#pragma once

#include <torch/types.h>

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "sfc/core/site.h"
#include "sfc/model/gemma2.h"
#include "sfc/sae/sae.h"

namespace sfc::builtin {

struct SaeTrainOptions {
  int64_t width = 256;        // F, latents per SAE (74 words: wider SAEs only add dead latents)
  int64_t steps = 400;        // optimiser steps per SAE (FVU 10–12% at width 256 on the built-in model)
  int64_t batch_rows = 512;   // activation rows per step
  double lr = 5e-3;
  double l1 = 0.3;            // initial sparsity penalty, on activations normalised to E|x − mean|² = W
  // l1 is steered (multiplicatively, from 20% to 70% of the steps) so the ReLU SAE's FVU on its
  // training batches approaches this; 0 keeps l1 fixed. The thresholds then add a little FVU.
  double target_fvu = 0.12;
  // JumpReLU threshold of each latent = this × its mean positive pre-activation (set after training).
  double threshold_fraction = 0.2;
  uint64_t seed = 0;
  std::string release = "agreement";  // folder prefix: <release>-res / -mlp / -att
};

// Quality of one SAE on a set of activations.
struct SaeQuality {
  Site site = Site::kResid;
  int64_t layer = 0;
  int64_t width = 0;
  double fvu = 0;  // fraction of variance unexplained: sum |x − x̂|² / sum |x − mean(x)|²
  double l0 = 0;   // mean number of active latents per token
};

// Activations of every site and layer of `model` for the real (valid) tokens of `tokens` (N, T)
// int64 with `valid` (N, T) bool: [layer * kNumSites + site] -> (rows, W) fp32.
std::vector<torch::Tensor> collect_activations(const model::Gemma2Impl& model, const torch::Tensor& tokens,
                                               const torch::Tensor& valid);

SaeQuality measure_sae(const sae::JumpReluSae& sae, const torch::Tensor& activations, Site site, int64_t layer);

// Trains all SAEs deterministically (torch seeded from options.seed, one thread is enough) and
// writes `<out_dir>/<release>-{res,mlp,att}/layer_<l>/width_<F>/average_l0_<round(l0)>/params.npz`
// plus `<out_dir>/canonical.json` mapping each `layer_<l>/width_<F>/canonical` to its folder. Returns
// the quality of each SAE on `activations` (from collect_activations), site-major.
std::vector<SaeQuality> train_saes(const model::Gemma2Impl& model, const std::vector<torch::Tensor>& activations,
                                   const std::filesystem::path& out_dir, const SaeTrainOptions& options);

}  // namespace sfc::builtin
