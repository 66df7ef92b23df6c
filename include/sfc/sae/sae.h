// JumpReLU sparse autoencoders (Gemma Scope) and where to find them on disk.
// An SAE knows nothing of the model: it maps a site activation (…, W) to latents (…, F) and back.
#pragma once

#include <torch/types.h>

#include <filesystem>
#include <map>
#include <optional>
#include <string>

#include "sfc/core/site.h"

namespace sfc::sae {

// f = relu(pre)·1[pre > θ] with pre = x·W_enc + b_enc;  x̂ = f·W_dec + b_dec;  error e = x − x̂.
struct JumpReluSae {
  torch::Tensor W_enc;      // (W, F)
  torch::Tensor W_dec;      // (F, W)
  torch::Tensor b_enc;      // (F)
  torch::Tensor b_dec;      // (W)
  torch::Tensor threshold;  // (F)
  std::filesystem::path source;  // file it was read from, for messages

  int64_t d_in() const { return W_enc.size(0); }
  int64_t d_sae() const { return W_enc.size(1); }

  // The arithmetic runs in compute_dtype(): fp32 at least, whatever the input's and the SAE's dtypes
  // (a bf16 activation is upcast, never computed in bf16); fp64 when either is fp64. Results come
  // back in that dtype.
  torch::Tensor encode(const torch::Tensor& x) const;  // (..., W) -> (..., F)
  torch::Tensor decode(const torch::Tensor& f) const;  // (..., F) -> (..., W)
  torch::Tensor error(const torch::Tensor& x) const;   // (..., W) -> (..., W)  x − decode(encode(x))
  // g·W_decᵀ: the gradient at the latents (∂m/∂f_j = W_dec[j]·g) of a gradient g at the site.
  torch::Tensor latent_grad(const torch::Tensor& g) const;  // (..., W) -> (..., F)
  torch::Dtype compute_dtype(const torch::Tensor& x) const;  // promote(x, W_enc, fp32)
};

// Reads one SAE from a Gemma Scope `params.npz`, or from a SAELens folder (`cfg.json` +
// `sae_weights.safetensors`), or from a folder holding either. Checks every tensor's presence and
// shape, and that d_in equals `expected_d_in` (the site width): a mismatch is a LoadError naming
// the file and both numbers. Tensors are cast to `dtype` and moved to `device`.
JumpReluSae load_sae(const std::filesystem::path& file_or_dir, int64_t expected_d_in,
                     torch::Dtype dtype = torch::kFloat32, torch::Device device = torch::kCPU);

// Which SAE of a release folder to take per layer.
struct SaeSelection {
  std::string release;  // release prefix, e.g. "gemma-scope-2b-pt"; empty = the only one under root
  std::string width;  // e.g. "16k" or "112" (folder width_<width>); empty = the only one present
  // "canonical": via canonical.json (as SAELens' directory does); a number K: the average_l0_* folder
  // with L0 nearest K; empty: canonical.json when present, else the only average_l0_* folder.
  std::string l0;
};

// Site → SAE location for all layers, following the Gemma Scope folder layout:
//   <root>/<release>-{res,mlp,att}/layer_<L>/width_<W>/average_l0_<K>/params.npz
// optionally with <root>/canonical.json mapping "<release>-<suffix>-canonical" →
// "layer_<L>/width_<W>/canonical" → "layer_<L>/width_<W>/average_l0_<K>".
class SaeLocator {
 public:
  SaeLocator(std::filesystem::path root, SaeSelection selection = {});
  // The folder (or params.npz) of the SAE at (site, layer); throws LoadError naming what is missing
  // or ambiguous, with the choices found.
  std::filesystem::path locate(Site site, int64_t layer) const;
  const std::filesystem::path& root() const { return root_; }

 private:
  std::filesystem::path release_dir(Site site) const;
  std::filesystem::path root_;
  SaeSelection selection_;
};

}  // namespace sfc::sae
