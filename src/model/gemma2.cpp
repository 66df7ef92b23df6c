// Gemma-2 forward, numerically following Hugging Face transformers 4.46 (eager attention), which
// produced the reference data in tests/fixtures. Each Gemma-2 quirk sits on its own line.
#include "sfc/model/gemma2.h"

#include <torch/torch.h>

#include <cmath>
#include <set>
#include <sstream>

#include "sfc/core/error.h"
#include "sfc/core/shapes.h"
#include "sfc/io/safetensors.h"

namespace sfc::model {
namespace {

// c·tanh(x/c): Gemma-2's soft-cap of attention scores and final logits; c = 0 turns it off.
torch::Tensor soft_cap(const torch::Tensor& x, double cap) {
  if (cap <= 0) return x;
  return torch::tanh(x / cap) * cap;
}

// (…, Dh) -> (…, Dh): [x1, x2] -> [−x2, x1]
torch::Tensor rotate_half(const torch::Tensor& x) {
  auto halves = x.chunk(2, -1);
  return torch::cat({-halves[1], halves[0]}, -1);
}

// RoPE: x (…, S, Dh) turned by the angles of its positions, cos and sin broadcast against it.
torch::Tensor rope(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin) {
  return x * cos + rotate_half(x) * sin;
}

// (B, S, n·Dh) -> (B, n, S, Dh): one slice per head.
torch::Tensor split_heads(const torch::Tensor& x, int64_t n, int64_t Dh) {
  return x.view({x.size(0), x.size(1), n, Dh}).transpose(1, 2);
}

// (B, n, S, Dh) -> (B, S, n·Dh), head-major.
torch::Tensor merge_heads(const torch::Tensor& x) {
  return x.transpose(1, 2).reshape({x.size(0), x.size(2), x.size(1) * x.size(3)});
}

// h (B, S, D) at position pos[b] of each row -> (B, 1, D); pos (B) int64 on any device.
torch::Tensor at_positions(const torch::Tensor& h, const torch::Tensor& pos) {
  const int64_t B = h.size(0);
  return h.gather(1, pos.to(h.device(), torch::kInt64).view({B, 1, 1}).expand({B, 1, h.size(2)}));
}

// Additive attention mask (1 or B, Q, P) in `dtype` for queries at positions `query` (1 or B, Q) int64
// (1: the same for every row) and keys at 0..P−1: 0 where the query may attend the key, the dtype's
// lowest value elsewhere (as HF does; exp underflows to exactly 0). Causal, and with a sliding window
// `window` > 0 also masks k ≤ q − window.
torch::Tensor attention_mask(const torch::Tensor& query, int64_t n_key, int64_t window, torch::Dtype dtype) {
  auto opts = torch::TensorOptions().device(query.device());
  auto q = query.unsqueeze(-1);
  auto k = torch::arange(n_key, opts.dtype(torch::kInt64)).view({1, 1, n_key});
  auto blocked = k > q;
  if (window > 0) blocked = blocked | (k <= q - window);
  auto lowest = torch::scalar_tensor(0, opts.dtype(dtype));
  lowest.fill_(dtype == torch::kBFloat16 ? -3.3895313892515355e38 : (dtype == torch::kHalf ? -65504.0 : -3.4028234663852886e38));
  return torch::where(blocked, lowest, torch::zeros({}, opts.dtype(dtype)));
}

// Attention of queries q (B, H, Q, Dh) at positions `query` (1 or B, Q) int64 (within the whole
// prompt) over keys/values k, v (B, K, S, Dh) of the positions a forward computes, preceded by the
// prefix's cached keys/values of positions < offset: the mixed values (B, H, Q, Dh).
torch::Tensor attend(const Gemma2Config& c, int64_t layer, const torch::Tensor& q, torch::Tensor k, torch::Tensor v,
                     const torch::Tensor& query, const KvPrefix* prefix) {
  const int64_t offset = prefix ? prefix->offset : 0;
  if (offset > 0) {  // positions < offset: the cached run's keys and values (B, K, offset, Dh)
    auto rows = prefix->rows.to(k.device());
    k = torch::cat({prefix->cache->k[layer].index_select(0, rows).slice(2, 0, offset), k}, 2);
    v = torch::cat({prefix->cache->v[layer].index_select(0, rows).slice(2, 0, offset), v}, 2);
  }
  const int64_t groups = c.n_head / c.n_head_kv, P = k.size(2);
  k = k.repeat_interleave(groups, /*dim=*/1);  // GQA: query head h reads kv head h/(H/K)
  v = v.repeat_interleave(groups, /*dim=*/1);  // (B, H, P, Dh), P = offset + S

  auto scores = torch::matmul(q, k.transpose(2, 3)) * std::pow(c.query_pre_attn_scalar, -0.5);  // (B, H, Q, P)
  scores = soft_cap(scores, c.attn_softcap);  // soft-cap before masking
  const int64_t window = c.is_sliding(layer) ? c.sliding_window : 0;
  scores = scores + attention_mask(query, P, window, scores.scalar_type()).unsqueeze(1);  // (1 or B, 1, Q, P)
  // Softmax in fp32 (fp64 for a float64 model), back to the compute dtype.
  auto probs = torch::softmax(scores, -1, torch::promote_types(scores.scalar_type(), torch::kFloat32))
                   .to(q.scalar_type());  // (B, H, Q, P)
  return torch::matmul(probs, v);         // (B, H, Q, Dh)
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// torch::nn::Linear and Embedding allocate with torch::empty and then initialise in their
// constructors (LibTorch 1.13 and 2.x alike); these do the same draws, or none under Init::kNone.
LinearImpl::LinearImpl(int64_t in, int64_t out, const WeightOptions& options) {
  weight = register_parameter("weight", torch::empty({out, in}, options.tensor));
  if (options.init == Init::kTorchDefault) torch::nn::init::kaiming_uniform_(weight, std::sqrt(5.0));
}

torch::Tensor LinearImpl::forward(const torch::Tensor& x) const { return torch::linear(x, weight); }

EmbeddingImpl::EmbeddingImpl(int64_t n, int64_t dim, const WeightOptions& options) {
  weight = register_parameter("weight", torch::empty({n, dim}, options.tensor));
  if (options.init == Init::kTorchDefault) torch::nn::init::normal_(weight);
}

RmsNormImpl::RmsNormImpl(int64_t dim, double eps_, const WeightOptions& options) : eps(eps_) {
  weight = register_parameter("weight", options.init == Init::kTorchDefault ? torch::zeros({dim}, options.tensor)
                                                                             : torch::empty({dim}, options.tensor));
}

torch::Tensor RmsNormImpl::forward(const torch::Tensor& x) const {
  // Norms run in fp32 (or fp64 for a float64 model, as in finite-difference tests).
  const auto compute = torch::promote_types(x.scalar_type(), torch::kFloat32);
  auto xf = x.to(compute);
  auto normed = xf * torch::rsqrt(xf.pow(2).mean(-1, /*keepdim=*/true) + eps);
  return (normed * (1.0 + weight.to(compute))).to(x.scalar_type());  // (1 + w), not w
}

// ---------------------------------------------------------------------------------------------
AttentionImpl::AttentionImpl(const Gemma2Config& c, int64_t layer_, const WeightOptions& w) : config(c), layer(layer_) {
  q_proj = register_module("q_proj", Linear(c.d_model, c.n_head * c.head_dim, w));
  k_proj = register_module("k_proj", Linear(c.d_model, c.n_head_kv * c.head_dim, w));
  v_proj = register_module("v_proj", Linear(c.d_model, c.n_head_kv * c.head_dim, w));
  o_proj = register_module("o_proj", Linear(c.n_head * c.head_dim, c.d_model, w));
}

AttentionImpl::Qkv AttentionImpl::project(const torch::Tensor& h, const torch::Tensor& cos, const torch::Tensor& sin,
                                          const torch::Tensor& at) const {
  const int64_t B = h.size(0), H = config.n_head, K = config.n_head_kv, Dh = config.head_dim;
  const auto h_q = at.defined() ? at_positions(h, at) : h;        // (B, Q, D)
  auto q = split_heads(torch::linear(h_q, q_proj->weight), H, Dh);  // (B, H, Q, Dh)
  auto k = split_heads(torch::linear(h, k_proj->weight), K, Dh);    // (B, K, S, Dh)
  auto v = split_heads(torch::linear(h, v_proj->weight), K, Dh);    // (B, K, S, Dh)
  // RoPE on queries and keys, not values; a lone query turns by the angles of its own position.
  const auto cos_q = at.defined() ? cos.index_select(0, at).view({B, 1, 1, Dh}) : cos;
  const auto sin_q = at.defined() ? sin.index_select(0, at).view({B, 1, 1, Dh}) : sin;
  q = rope(q, cos_q, sin_q);
  k = rope(k, cos, sin);
  return {q, k, v};
}

torch::Tensor AttentionImpl::forward(const torch::Tensor& h, const torch::Tensor& cos, const torch::Tensor& sin,
                                     SiteCalls* sites, KvCache* record, const KvPrefix* prefix) const {
  // S: the positions this forward computes (all T, or those ≥ the prefix offset).
  const int64_t S = h.size(1);
  auto [q, k, v] = project(h, cos, sin);  // (B, H, S, Dh), (B, K, S, Dh), (B, K, S, Dh)
  if (record) {
    record->k[layer] = k.detach();
    record->v[layer] = v.detach();
  }
  const int64_t offset = prefix ? prefix->offset : 0;
  auto query = torch::arange(offset, offset + S, torch::TensorOptions().dtype(torch::kInt64).device(h.device()));
  auto z = merge_heads(attend(config, layer, q, k, v, query.view({1, S}), prefix));  // (B, S, H·Dh)
  if (sites) z = sites->at(Site::kAttn, layer, z);
  return torch::linear(z, o_proj->weight);  // (B, S, D)
}

torch::Tensor AttentionImpl::forward_at(const torch::Tensor& h, const torch::Tensor& cos, const torch::Tensor& sin,
                                        const torch::Tensor& pos, const KvPrefix* prefix) const {
  // As forward() (same operations in the same order), with one query per row.
  const int64_t R = h.size(0);
  auto at = pos.to(h.device(), torch::kInt64);  // (R)
  auto [q, k, v] = project(h, cos, sin, at);    // (R, H, 1, Dh), (R, K, S, Dh), (R, K, S, Dh)
  const int64_t offset = prefix ? prefix->offset : 0;  // each query's own mask row: causal, sliding window
  auto z = merge_heads(attend(config, layer, q, k, v, (at + offset).view({R, 1}), prefix));  // (R, 1, H·Dh)
  return torch::linear(z, o_proj->weight);                                                  // (R, 1, D)
}

// ---------------------------------------------------------------------------------------------
MlpImpl::MlpImpl(const Gemma2Config& c, const WeightOptions& w) {
  gate_proj = register_module("gate_proj", Linear(c.d_model, c.d_mlp, w));
  up_proj = register_module("up_proj", Linear(c.d_model, c.d_mlp, w));
  down_proj = register_module("down_proj", Linear(c.d_mlp, c.d_model, w));
}

torch::Tensor MlpImpl::forward(const torch::Tensor& h) const {
  // GeGLU with the tanh approximation of GELU.
  auto gate = torch::gelu(torch::linear(h, gate_proj->weight), "tanh");  // (B, T, M)
  return torch::linear(gate * torch::linear(h, up_proj->weight), down_proj->weight);
}

// ---------------------------------------------------------------------------------------------
// Registration order fixes the order of the initial random draws (and of named_parameters()).
DecoderLayerImpl::DecoderLayerImpl(const Gemma2Config& c, int64_t layer_, const WeightOptions& w) : layer(layer_) {
  input_layernorm = register_module("input_layernorm", RmsNorm(c.d_model, c.rms_eps, w));
  self_attn = register_module("self_attn", Attention(c, layer_, w));
  post_attention_layernorm = register_module("post_attention_layernorm", RmsNorm(c.d_model, c.rms_eps, w));
  pre_feedforward_layernorm = register_module("pre_feedforward_layernorm", RmsNorm(c.d_model, c.rms_eps, w));
  mlp = register_module("mlp", Mlp(c, w));
  post_feedforward_layernorm = register_module("post_feedforward_layernorm", RmsNorm(c.d_model, c.rms_eps, w));
}

torch::Tensor DecoderLayerImpl::attention_residual(const torch::Tensor& h, const torch::Tensor& attn_out) const {
  auto normed = post_attention_layernorm->forward(attn_out);  // post-norm: Gemma-2 norms the block's output too
  return h + normed;                                           // residual
}

torch::Tensor DecoderLayerImpl::mlp_block(const torch::Tensor& mid, SiteCalls* sites) const {
  auto x = pre_feedforward_layernorm->forward(mid);  // norm
  x = mlp->forward(x);                               // MLP
  x = post_feedforward_layernorm->forward(x);        // post-norm: Gemma-2 norms the block's output too
  if (sites) x = sites->at(Site::kMlp, layer, x);    // site mlp
  return mid + x;                                    // residual
}

// norm → attention → post-norm → residual → norm → MLP → post-norm → residual, with the sites.
torch::Tensor DecoderLayerImpl::forward(torch::Tensor h, const torch::Tensor& cos, const torch::Tensor& sin,
                                        SiteCalls* sites, KvCache* record, const KvPrefix* prefix) const {
  auto attn_out = self_attn->forward(input_layernorm->forward(h), cos, sin, sites, record, prefix);  // site attn inside
  auto mid = attention_residual(h, attn_out);              // post-norm, residual
  if (record) record->mid[layer] = mid.detach();
  auto out = mlp_block(mid, sites);                        // norm, MLP, post-norm (site mlp), residual
  if (sites) out = sites->at(Site::kResid, layer, out);    // site resid
  return out;  // (B, S, D)
}

torch::Tensor DecoderLayerImpl::forward_from_attn_site(const torch::Tensor& h, const torch::Tensor& z) const {
  auto mid = attention_residual(h, torch::linear(z, self_attn->o_proj->weight));  // o_proj, then as forward()
  return mlp_block(mid, nullptr);
}

torch::Tensor DecoderLayerImpl::forward_at(const torch::Tensor& h, const torch::Tensor& cos, const torch::Tensor& sin,
                                           const torch::Tensor& pos, const KvPrefix* prefix) const {
  auto attn_out = self_attn->forward_at(input_layernorm->forward(h), cos, sin, pos, prefix);  // (R, 1, D)
  auto mid = attention_residual(at_positions(h, pos), attn_out);                            // (R, 1, D)
  return mlp_block(mid, nullptr);
}

// ---------------------------------------------------------------------------------------------
Gemma2Impl::Gemma2Impl(const Gemma2Config& c, const WeightOptions& w) : config_(c) {
  embed_tokens_ = register_module("embed_tokens", Embedding(c.vocab_size, c.d_model, w));
  // Registered as "layers.<i>" through a ModuleList so names match the checkpoint; kept in a typed
  // vector too so the const forward can call them.
  auto list = register_module("layers", torch::nn::ModuleList());
  for (int64_t i = 0; i < c.n_layer; ++i) {
    layers_.push_back(DecoderLayer(c, i, w));
    list->push_back(layers_.back());
  }
  norm_ = register_module("norm", RmsNorm(c.d_model, c.rms_eps, w));
  // HF's inv_freq: 1 / θ^(2i/Dh), computed in fp32 on the CPU (the same bits on every device).
  auto exponents = torch::arange(0, c.head_dim, 2, torch::kInt64).to(torch::kFloat32) / double(c.head_dim);
  rope_inv_freq_ = register_buffer("rope_inv_freq", (1.0 / torch::pow(c.rope_theta, exponents)).to(w.tensor.device()));
  for (auto& p : parameters()) p.set_requires_grad(false);
}

torch::Tensor Gemma2Impl::embed(const torch::Tensor& tokens) const {
  auto h = torch::embedding(embed_tokens_->weight, tokens.to(torch::kInt64));  // (B, T, D)
  // sqrt(D) is rounded to the compute dtype before the multiply, as in HF.
  auto normalizer = torch::scalar_tensor(std::sqrt(double(config_.d_model)), h.options());
  return h * normalizer;
}

std::pair<torch::Tensor, torch::Tensor> Gemma2Impl::rotary(int64_t n_tokens, int64_t offset) const {
  auto pos = torch::arange(offset, offset + n_tokens, rope_inv_freq_.options());  // (S) fp32
  auto freqs = pos.unsqueeze(1) * rope_inv_freq_.unsqueeze(0);              // (S, Dh/2) fp32
  auto angles = torch::cat({freqs, freqs}, -1);                            // (S, Dh)
  return {angles.cos().to(dtype()), angles.sin().to(dtype())};
}

torch::Tensor Gemma2Impl::run_layers(torch::Tensor h, int64_t first, int64_t end, SiteCalls* sites,
                                     KvCache* record, const KvPrefix* prefix) const {
  TORCH_CHECK(h.dim() == 3 && h.size(2) == config_.d_model, "run_layers: expected h (B, T, ",
              config_.d_model, "), got ", h.sizes());
  TORCH_CHECK(0 <= first && first <= end && end <= config_.n_layer, "run_layers: bad layer range [", first,
              ", ", end, ")");
  // Build a graph only when someone wants a gradient: a site asked for one, or the caller passed
  // an input that requires grad (e.g. an interpolated activation in integrated gradients).
  torch::AutoGradMode grad_mode(h.requires_grad() || (sites != nullptr && sites->wants_grad()));
  if (record) {
    record->k.resize(config_.n_layer);
    record->v.resize(config_.n_layer);
    record->mid.resize(config_.n_layer);
  }
  if (prefix && prefix->offset > 0) {
    TORCH_CHECK(!record, "run_layers: recording keys/values of a prefixed forward is not supported");
    TORCH_CHECK(prefix->cache && prefix->rows.size(0) == h.size(0), "run_layers: prefix rows must match the batch");
  }
  auto [cos, sin] = rotary(h.size(1), prefix ? prefix->offset : 0);
  for (int64_t i = first; i < end; ++i) h = layers_.at(i)->forward(h, cos, sin, sites, record, prefix);
  return h;
}

torch::Tensor Gemma2Impl::run_to_answer(torch::Tensor h, int64_t first, const torch::Tensor& pos, SiteCalls* sites,
                                        const KvPrefix* prefix) const {
  const int64_t L = config_.n_layer;
  TORCH_CHECK(pos.dim() == 1 && pos.size(0) == h.size(0), "run_to_answer: pos must be (R)");
  torch::AutoGradMode grad_mode(h.requires_grad() || (sites != nullptr && sites->wants_grad()));
  auto at = pos.to(h.device(), torch::kInt64);
  if (first >= L) return at_positions(h, at);
  h = run_layers(h, first, L - 1, sites, nullptr, prefix);
  auto [cos, sin] = rotary(h.size(1), prefix ? prefix->offset : 0);
  return layers_.back()->forward_at(h, cos, sin, at, prefix);
}

torch::Tensor Gemma2Impl::run_from_site_to_answer(Site site, int64_t layer, const torch::Tensor& x,
                                                  const torch::Tensor& base, const torch::Tensor& pos,
                                                  const KvPrefix* prefix) const {
  TORCH_CHECK(0 <= layer && layer < config_.n_layer, "run_from_site_to_answer: no layer ", layer);
  torch::AutoGradMode grad_mode(x.requires_grad());
  torch::Tensor h;  // the output of `layer`
  switch (site) {
    case Site::kResid: h = x; break;
    case Site::kMlp: h = base + x; break;
    case Site::kAttn: h = layers_.at(layer)->forward_from_attn_site(base, x); break;
  }
  return run_to_answer(h, layer + 1, pos, nullptr, prefix);
}

torch::Tensor Gemma2Impl::forward(const torch::Tensor& tokens, SiteCalls* sites, KvCache* record) const {
  torch::AutoGradMode grad_mode(sites != nullptr && sites->wants_grad());
  return run_layers(embed(tokens), 0, config_.n_layer, sites, record);
}

torch::Tensor Gemma2Impl::logits(const torch::Tensor& h) const {
  auto logits = torch::matmul(norm_->forward(h), embed_tokens_->weight.t());  // (B, T, V) tied unembedding
  return soft_cap(logits, config_.final_softcap);
}

torch::Tensor Gemma2Impl::answer_logits(const torch::Tensor& h, const torch::Tensor& pos,
                                        const torch::Tensor& ids) const {
  const int64_t B = h.size(0), D = h.size(2);
  TORCH_CHECK(pos.dim() == 1 && pos.size(0) == B, "answer_logits: pos must be (B)");
  TORCH_CHECK(ids.dim() == 2 && ids.size(0) == B, "answer_logits: ids must be (B, A)");
  auto last = norm_->forward(at_positions(h, pos));                                        // (B, 1, D)
  auto columns = embed_tokens_->weight.index_select(0, ids.to(h.device(), torch::kInt64).reshape(-1))
                     .view({B, ids.size(1), D});                                  // (B, A, D)
  auto logits = torch::matmul(last, columns.transpose(1, 2)).squeeze(1);          // (B, A)
  return soft_cap(logits, config_.final_softcap);
}

// ---------------------------------------------------------------------------------------------
Gemma2 load_gemma2(const std::filesystem::path& dir, const ModelOptions& options) {
  if (!std::filesystem::is_directory(dir))
    throw LoadError(dir, "model folder does not exist (expected config.json and model.safetensors)");
  const auto config = Gemma2Config::from_json_file(dir / "config.json");
  if (options.dtype != torch::kFloat32 && options.dtype != torch::kBFloat16 && options.dtype != torch::kHalf)
    throw Error("model dtype must be fp32, bf16 or fp16");
  io::Checkpoint checkpoint(dir);
  // Built uninitialised, in the final dtype and device: every weight is written once, below.
  Gemma2 model(config, WeightOptions{torch::TensorOptions().dtype(options.dtype).device(options.device), Init::kNone});

  std::vector<std::string> missing, wrong_shape;
  std::set<std::string> used;
  torch::NoGradGuard no_grad;
  for (auto& item : model->named_parameters(/*recurse=*/true)) {
    const std::string name = "model." + item.key();
    if (!checkpoint.contains(name)) {
      missing.push_back(name);
      continue;
    }
    used.insert(name);
    const auto shape = checkpoint.shape(name);
    if (c10::IntArrayRef(shape) != item.value().sizes()) {
      wrong_shape.push_back(name + " " + shape_str(shape) + " (expected " + shape_str(item.value().sizes().vec()) + ")");
      continue;
    }
    checkpoint.load_into(name, item.value());  // converted once, straight into the parameter
  }
  // Gemma-2 ties the unembedding to the embedding. A checkpoint may still carry lm_head.weight;
  // accept it only if it really is the same matrix (in the model's dtype), compared piece by piece
  // so that no second (V, D) matrix is ever held.
  if (checkpoint.contains("lm_head.weight") && !checkpoint.contains("model.lm_head.weight")) {
    used.insert("lm_head.weight");
    const auto embedding = model->named_parameters()["embed_tokens.weight"];  // (V, D)
    const bool embedding_loaded = checkpoint.contains("model.embed_tokens.weight") &&
                                  c10::IntArrayRef(checkpoint.shape("model.embed_tokens.weight")) == embedding.sizes();
    // Without a loaded embedding there is nothing to compare with; the report below names why.
    if (embedding_loaded) {
      bool same = c10::IntArrayRef(checkpoint.shape("lm_head.weight")) == embedding.sizes();
      const auto flat = embedding.view({-1});  // (V·D)
      if (same)
        checkpoint.for_each_piece("lm_head.weight", [&](const torch::Tensor& piece, int64_t offset) {
          if (same) same = piece.to(flat.device(), options.dtype).equal(flat.narrow(0, offset, piece.numel()));
        });
      if (!same)
        throw LoadError(checkpoint.file_of("lm_head.weight"),
                        "lm_head.weight differs from model.embed_tokens.weight; Gemma-2 ties them");
    }
  }
  std::vector<std::string> unexpected;
  for (const auto& name : checkpoint.names())
    if (!used.count(name)) unexpected.push_back(name);

  if (!missing.empty() || !wrong_shape.empty() || !unexpected.empty()) {
    auto list = [](const std::vector<std::string>& names) {
      std::ostringstream out;
      for (size_t i = 0; i < names.size() && i < 5; ++i) out << (i ? ", " : "") << names[i];
      if (names.size() > 5) out << ", … (" << names.size() - 5 << " more)";
      return out.str();
    };
    std::ostringstream msg;
    msg << "checkpoint does not match the Gemma-2 config:";
    if (!missing.empty()) msg << " " << missing.size() << " missing [" << list(missing) << "];";
    if (!wrong_shape.empty()) msg << " " << wrong_shape.size() << " wrong shape [" << list(wrong_shape) << "];";
    if (!unexpected.empty()) msg << " " << unexpected.size() << " unexpected [" << list(unexpected) << "]";
    throw LoadError(dir, msg.str());
  }
  model->eval();
  return model;
}

}  // namespace sfc::model
