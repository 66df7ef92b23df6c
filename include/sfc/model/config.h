// Gemma-2 hyper-parameters, read from a Hugging Face `config.json` and validated.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>

#include "sfc/core/site.h"

namespace sfc::model {

struct Gemma2Config {
  int64_t vocab_size = 0;   // V
  int64_t d_model = 0;      // D   (hidden_size)
  int64_t d_mlp = 0;        // M   (intermediate_size)
  int64_t n_layer = 0;      // L   (num_hidden_layers)
  int64_t n_head = 0;       // H   (num_attention_heads)
  int64_t n_head_kv = 0;    // K   (num_key_value_heads)
  int64_t head_dim = 0;     // Dh
  double query_pre_attn_scalar = 0;  // queries are scaled by its −1/2 power
  int64_t sliding_window = 0;        // on even layers (HF: layer_idx % 2 == 0)
  double attn_softcap = 0;           // attn_logit_softcapping (0 = off)
  double final_softcap = 0;          // final_logit_softcapping (0 = off)
  double rms_eps = 1e-6;
  double rope_theta = 10000.0;
  int64_t bos_id = 2, eos_id = 1, pad_id = 0;

  // Width W of a site's activation: D for resid and mlp, H·Dh for attn.
  int64_t site_width(Site site) const { return site == Site::kAttn ? n_head * head_dim : d_model; }
  bool is_sliding(int64_t layer) const { return sliding_window > 0 && layer % 2 == 0; }

  // Parses and validates config.json: model_type must be "gemma2", every size positive, H a
  // multiple of K, a supported activation. Throws LoadError("<file>: <problem>").
  static Gemma2Config from_json_file(const std::filesystem::path& file);
};

}  // namespace sfc::model
