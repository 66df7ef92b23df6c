// Gemma-2 in LibTorch, bound to Hugging Face checkpoint names, with SAE sites written into the
// forward (docs/design.md §2 "Model"). Knows nothing of SAEs or attribution. Weights never require grad.
#pragma once

#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>
#include <torch/types.h>

#include <filesystem>
#include <vector>

#include "sfc/model/config.h"
#include "sfc/model/sites.h"

namespace sfc::model {

// How a model's weights start out. kTorchDefault: as torch::nn::Linear (kaiming_uniform_(w, √5))
// and torch::nn::Embedding (normal_) initialise them, with the same RNG draws in the same order, so
// code that seeds, constructs and then redraws (the built-in trainer, tests/support/random_model.h)
// gets the same bits as with those modules. kNone: torch::empty, for a loader that overwrites
// every weight (no random draws, nothing written twice, no fp32 copy of a bf16 model).
enum class Init { kTorchDefault, kNone };

// Where and how the weights of a model under construction are allocated.
struct WeightOptions {
  torch::TensorOptions tensor;  // dtype and device of every weight (default fp32, CPU)
  Init init = Init::kTorchDefault;
};

// A linear map without bias, y = x·Wᵀ; its one parameter is registered as "weight" (out, in), as
// in torch::nn::Linear, so checkpoint names stay `…q_proj.weight`.
struct LinearImpl : torch::nn::Module {
  LinearImpl(int64_t in, int64_t out, const WeightOptions& options = {});
  torch::Tensor forward(const torch::Tensor& x) const;  // (…, in) -> (…, out)
  torch::Tensor weight;  // (out, in)
};
TORCH_MODULE(Linear);

// A token embedding table, registered as "weight" (n, dim), as in torch::nn::Embedding.
struct EmbeddingImpl : torch::nn::Module {
  EmbeddingImpl(int64_t n, int64_t dim, const WeightOptions& options = {});
  torch::Tensor weight;  // (V, D)
};
TORCH_MODULE(Embedding);

// Gemma-2 RMSNorm: computed in fp32, scaled by (1 + weight), cast back to the input dtype.
// Keys and values of every layer of one forward, (B, K, T, Dh) after RoPE. Attention is causal, so
// a later forward that changes nothing before position p0 can recompute only positions ≥ p0 and
// read the earlier keys and values from here.
struct KvCache {
  std::vector<torch::Tensor> k, v;  // [layer] (B, K, T, Dh); undefined for layers not run
  // [layer] (B, T, D): the residual stream after the layer's attention block, to which its MLP
  // output is added; lets a forward resume right after the `mlp` site.
  std::vector<torch::Tensor> mid;
};

// Makes a forward run over positions [offset, offset + S) only, continuing rows `rows` of a cached
// forward for the positions before `offset`.
struct KvPrefix {
  const KvCache* cache = nullptr;
  torch::Tensor rows;  // (R) int64: the cached row each row of this forward continues
  int64_t offset = 0;  // p0
};

struct RmsNormImpl : torch::nn::Module {
  // weight: zeros, (1 + 0) = identity (uninitialised under Init::kNone)
  RmsNormImpl(int64_t dim, double eps, const WeightOptions& options = {});
  torch::Tensor forward(const torch::Tensor& x) const;  // (..., D) -> (..., D)
  torch::Tensor weight;  // (D)
  double eps;
};
TORCH_MODULE(RmsNorm);

struct AttentionImpl : torch::nn::Module {
  AttentionImpl(const Gemma2Config& config, int64_t layer, const WeightOptions& options = {});
  // h: (B, S, D) for positions [offset, offset + S) (offset = 0 without a prefix); cos, sin: (S, Dh).
  // The site `attn` (input of o_proj) is called inside. Records this layer's keys and values into
  // `record` when given; reads positions < offset from `prefix` when given.
  torch::Tensor forward(const torch::Tensor& h, const torch::Tensor& cos, const torch::Tensor& sin,
                        SiteCalls* sites, KvCache* record = nullptr, const KvPrefix* prefix = nullptr) const;
  // The same for one query per row: keys and values from all S positions of h, the query of row r
  // only at position pos[r] (0 ≤ pos < S, int64 (R)); returns the output there (R, 1, D). No sites.
  torch::Tensor forward_at(const torch::Tensor& h, const torch::Tensor& cos, const torch::Tensor& sin,
                           const torch::Tensor& pos, const KvPrefix* prefix = nullptr) const;
  // The projections of both: queries q (B, H, Q, Dh), keys and values k, v (B, K, S, Dh) of h
  // (B, S, D), with RoPE (cos, sin (S, Dh)) on q and k. Q = S, or with `at` (B) int64 on h's device
  // one query per row, at position at[b] (Q = 1).
  struct Qkv {
    torch::Tensor q, k, v;
  };
  Qkv project(const torch::Tensor& h, const torch::Tensor& cos, const torch::Tensor& sin,
              const torch::Tensor& at = {}) const;
  // weights (H·Dh, D), (K·Dh, D), (K·Dh, D), (D, H·Dh); no biases
  Linear q_proj{nullptr}, k_proj{nullptr}, v_proj{nullptr}, o_proj{nullptr};
  Gemma2Config config;
  int64_t layer;
};
TORCH_MODULE(Attention);

struct MlpImpl : torch::nn::Module {
  explicit MlpImpl(const Gemma2Config& config, const WeightOptions& options = {});
  torch::Tensor forward(const torch::Tensor& h) const;  // (B, T, D) -> (B, T, D)
  // weights (M, D), (M, D), (D, M); no biases
  Linear gate_proj{nullptr}, up_proj{nullptr}, down_proj{nullptr};
};
TORCH_MODULE(Mlp);

struct DecoderLayerImpl : torch::nn::Module {
  DecoderLayerImpl(const Gemma2Config& config, int64_t layer, const WeightOptions& options = {});
  // h: (B, S, D) input of the layer -> output of the layer (the `resid` site).
  torch::Tensor forward(torch::Tensor h, const torch::Tensor& cos, const torch::Tensor& sin, SiteCalls* sites,
                        KvCache* record = nullptr, const KvPrefix* prefix = nullptr) const;
  // The rest of the layer after its `attn` site: h the layer's input, z the input of o_proj
  // (B, S, H·Dh) -> the layer's output (B, S, D), with the same operations as forward().
  torch::Tensor forward_from_attn_site(const torch::Tensor& h, const torch::Tensor& z) const;
  // The layer's output only at position pos[r] of each row (R, 1, D); see AttentionImpl::forward_at.
  torch::Tensor forward_at(const torch::Tensor& h, const torch::Tensor& cos, const torch::Tensor& sin,
                           const torch::Tensor& pos, const KvPrefix* prefix = nullptr) const;
  // The two halves after attention, shared by the three paths above. h (…, D) the layer's input and
  // attn_out o_proj's output there -> mid = h + post-norm(attn_out), the stream after attention.
  torch::Tensor attention_residual(const torch::Tensor& h, const torch::Tensor& attn_out) const;
  // mid (…, D) -> the layer's output: mid + post-norm(MLP(norm(mid))), the `mlp` site (when `sites`)
  // on the MLP block's output before the residual.
  torch::Tensor mlp_block(const torch::Tensor& mid, SiteCalls* sites) const;
  RmsNorm input_layernorm{nullptr}, post_attention_layernorm{nullptr};
  RmsNorm pre_feedforward_layernorm{nullptr}, post_feedforward_layernorm{nullptr};
  Attention self_attn{nullptr};
  Mlp mlp{nullptr};
  int64_t layer;
};
TORCH_MODULE(DecoderLayer);

struct ModelOptions {
  torch::Dtype dtype = torch::kFloat32;  // compute dtype (fp32 or bf16); norms run in fp32 anyway
  torch::Device device = torch::kCPU;
};

class Gemma2Impl : public torch::nn::Module {
 public:
  // Weights in options.tensor's dtype and device; initialised as LibTorch's modules would (the
  // default), or left uninitialised for load_gemma2 (Init::kNone). The rotary buffer is always fp32.
  explicit Gemma2Impl(const Gemma2Config& config, const WeightOptions& options = {});

  const Gemma2Config& config() const { return config_; }
  torch::Dtype dtype() const { return embed_tokens_->weight.scalar_type(); }
  torch::Device device() const { return embed_tokens_->weight.device(); }

  // tokens (B, T) int64 -> input of layer 0 (B, T, D): embedding · sqrt(D) rounded to the dtype.
  torch::Tensor embed(const torch::Tensor& tokens) const;
  // Runs layers [first, end) on h = the input of layer `first` (B, T, D) — a cached residual stream
  // lets a forward start anywhere — and returns the output of layer end−1 (B, T, D). Autograd records
  // only if `h` requires grad or a site asks for a gradient. With `record`, keeps every layer's keys
  // and values; with `prefix`, h holds positions [prefix->offset, T) only (sites then see (B, S, W)
  // tensors of those positions) and the earlier positions come from the prefix's cache.
  torch::Tensor run_layers(torch::Tensor h, int64_t first, int64_t end, SiteCalls* sites,
                           KvCache* record = nullptr, const KvPrefix* prefix = nullptr) const;
  // run_layers(h, first, n_layer) at only what the metric reads: the output of the last layer at
  // position pos[r] of each row, (R, 1, D) (pos (R) int64, relative to h's first position). The last
  // layer computes keys and values at all positions but everything else only there, which saves most
  // of a layer in every resumed forward of IG and patching. `sites` must not touch the last layer.
  torch::Tensor run_to_answer(torch::Tensor h, int64_t first, const torch::Tensor& pos, SiteCalls* sites,
                              const KvPrefix* prefix = nullptr) const;
  // Resumes inside layer `layer` right after `site`, whose activation is x (R, S, W), and runs on to
  // the answer positions as run_to_answer. `base` is what the rest of the layer needs besides x:
  // attn: the layer's input; mlp: KvCache::mid of the layer (x is added to it); resid: unused (x is
  // the layer's output). Skips everything of the layer before the site, which a SiteCalls
  // replacement would recompute and throw away.
  torch::Tensor run_from_site_to_answer(Site site, int64_t layer, const torch::Tensor& x, const torch::Tensor& base,
                                        const torch::Tensor& pos, const KvPrefix* prefix = nullptr) const;
  // embed + all layers: output of the last layer (B, T, D), before the final norm.
  torch::Tensor forward(const torch::Tensor& tokens, SiteCalls* sites = nullptr, KvCache* record = nullptr) const;
  // Full logits (B, T, V) from the last layer's output: final norm, tied unembedding, soft-cap.
  torch::Tensor logits(const torch::Tensor& h) const;
  // Only the logits the metric needs: h (B, T, D), pos (B) int64 answer positions, ids (B, A) int64
  // vocabulary columns -> (B, A) soft-capped logits. Never touches the other V − A columns.
  torch::Tensor answer_logits(const torch::Tensor& h, const torch::Tensor& pos,
                              const torch::Tensor& ids) const;

  // Rotary tables for positions offset..offset+S−1: (cos, sin), each (S, Dh) in the compute dtype.
  std::pair<torch::Tensor, torch::Tensor> rotary(int64_t n_tokens, int64_t offset = 0) const;

 private:
  // Registered under the checkpoint's names minus the leading "model." (embed_tokens.weight,
  // layers.{i}.self_attn.q_proj.weight, …, norm.weight), so loading is a name lookup.
  Gemma2Config config_;
  Embedding embed_tokens_{nullptr};             // weight (V, D), also the unembedding (tied)
  std::vector<DecoderLayer> layers_;            // L, each registered as "layers.<i>"
  RmsNorm norm_{nullptr};
  torch::Tensor rope_inv_freq_;                 // (Dh/2) fp32, a buffer, not a weight
};
TORCH_MODULE(Gemma2);

// Reads config.json and the safetensors checkpoint of `dir`, binds every tensor by its Hugging Face
// name, and reports all missing and unexpected keys in one LoadError. A checkpoint without
// lm_head.weight uses the tied embedding; one with an lm_head that differs from it is refused.
// The model is built uninitialised in options' dtype and device, and each checkpoint tensor is
// converted once, straight into its parameter: the host peak is about the model in its dtype.
Gemma2 load_gemma2(const std::filesystem::path& dir, const ModelOptions& options = {});

}  // namespace sfc::model
