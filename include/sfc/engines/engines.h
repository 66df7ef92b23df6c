// The three estimators of an error node's importance, each filling its part of a BatchResult:
//   run_atp    clean forward+backward and patch forward, then SAE arithmetic per owned site
//   run_ig     SFC-style integrated gradients, one site at a time, steps stacked in the batch
//   run_patch  exact activation patching of error nodes (fast path), per position and global
// and the slow, obviously-correct patching path that tests compare the fast one against.
#pragma once

#include "sfc/data/pairs.h"
#include "sfc/engines/engine_types.h"
#include "sfc/model/gemma2.h"

namespace sfc::engines {

// Clean/patch activations and clean gradients at every owned site, shared by the engines.
// Numerics: the model may run in bf16, but what the engines compute from (LD, activations, gradients)
// is upcast here once to the compute dtype (fp32; fp64 for an fp64 model) and every SAE product,
// dot product and sum over α, positions and pairs runs in it (docs/design.md §1).
struct BatchCache {
  torch::Tensor ld_clean, ld_patch;  // (B) compute dtype
  // [layer * kNumSites + site] → (B, T, W) compute dtype; undefined where the site is not owned
  std::vector<torch::Tensor> clean, patch, grad;
  // Residual stream of the clean run between layers, L + 1 entries of (B, T, D) in the model's
  // dtype: resid_in[l] is the input of layer l (the embedding for l = 0, the output of layer l − 1
  // otherwise), resid_in[L] the last layer's output. Lets IG and patching resume at any layer.
  std::vector<torch::Tensor> resid_in;
  // Keys and values of the clean run: patched and interpolated runs recompute only the positions
  // from the first changed one on and read the earlier ones from here.
  model::KvCache kv;
  // Wall time of the clean and patch forwards and of the clean backward (for /timing).
  double forward_s = 0, backward_s = 0;
  const torch::Tensor& at(const std::vector<torch::Tensor>& v, Site site, int64_t layer) const {
    return v[layer * kNumSites + static_cast<int>(site)];
  }
};

// Runs the clean forward+backward and patch forward once for the batch.
BatchCache run_clean_and_patch(const model::Gemma2Impl& model, const data::PairBatch& batch,
                               const SaeSet& saes, const EngineOptions& options);

void run_atp(const model::Gemma2Impl& model, const data::PairBatch& batch, const SaeSet& saes,
             const EngineOptions& options, const BatchCache& cache, BatchResult& result);
void run_ig(const model::Gemma2Impl& model, const data::PairBatch& batch, const SaeSet& saes,
            const EngineOptions& options, const BatchCache& cache, BatchResult& result);
void run_patch(const model::Gemma2Impl& model, const data::PairBatch& batch, const SaeSet& saes,
               const EngineOptions& options, const BatchCache& cache, BatchResult& result);

// Slow reference: one full forward from the tokens per patched node, as the notebooks did.
void run_patch_slow(const model::Gemma2Impl& model, const data::PairBatch& batch, const SaeSet& saes,
                    const EngineOptions& options, const BatchCache& cache, BatchResult& result);

// Slow reference for IG: per step, one full forward+backward of the batch from the tokens with the
// site replaced, no resume and no stacking of steps. On a one-pair batch that is one intervention
// per pass, as run_patch_slow runs (bench_engines times it both ways).
void run_ig_slow(const model::Gemma2Impl& model, const data::PairBatch& batch, const SaeSet& saes,
                 const EngineOptions& options, const BatchCache& cache, BatchResult& result);

// Exact patching of the whole site activation (x ← x' at all positions), plain model: (B, L).
torch::Tensor patch_full_site(const model::Gemma2Impl& model, const data::PairBatch& batch, Site site,
                              const BatchCache& cache, const std::vector<int64_t>& layers);

}  // namespace sfc::engines
