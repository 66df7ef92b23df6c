// A small Gemma-2 with random weights, for properties that need no reference (finite differences,
// fast vs slow paths). Weights are scaled so the soft-caps and the sliding window matter.
#pragma once

#include <torch/torch.h>

#include "sfc/model/gemma2.h"

namespace sfc::test {

inline model::Gemma2Config tiny_random_config() {
  model::Gemma2Config c;
  c.vocab_size = 40;
  c.d_model = 16;
  c.d_mlp = 24;
  c.n_layer = 3;
  c.n_head = 4;
  c.n_head_kv = 2;
  c.head_dim = 6;
  c.query_pre_attn_scalar = 8;
  c.sliding_window = 3;
  c.attn_softcap = 5.0;   // small caps so tanh is far from linear
  c.final_softcap = 3.0;
  return c;
}

inline model::Gemma2 random_gemma2(const model::Gemma2Config& config, uint64_t seed,
                                   torch::Dtype dtype = torch::kFloat64) {
  torch::manual_seed(seed);
  model::Gemma2 model(config);
  torch::NoGradGuard no_grad;
  for (auto& item : model->named_parameters()) {
    auto& p = item.value();
    const bool is_norm = item.key().find("norm") != std::string::npos;
    p.copy_(is_norm ? 0.3 * torch::randn_like(p) : torch::randn_like(p) / std::sqrt(double(p.size(-1))) * 1.5);
  }
  model->to(dtype);
  return model;
}

}  // namespace sfc::test
