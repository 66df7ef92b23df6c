// Reading Gemma-2's config.json. Refuses anything that is not a Gemma-2 checkpoint, so a wrong
// folder fails at load and not as nonsense logits later.
#include "sfc/model/config.h"

#include <fstream>
#include <optional>
#include <nlohmann/json.hpp>

#include "sfc/core/error.h"

namespace sfc::model {
namespace {

using nlohmann::json;

// A required number; `fallback` is used when the key is absent or null and a fallback exists.
template <typename Number>
Number number_at(const json& j, const std::filesystem::path& file, const char* key,
                 std::optional<Number> fallback = std::nullopt) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) {
    if (fallback) return *fallback;
    throw LoadError(file, std::string("missing key '") + key + "'");
  }
  if (!it->is_number())
    throw LoadError(file, std::string("key '") + key + "' must be a number, got " + it->dump());
  return it->get<Number>();
}

}  // namespace

Gemma2Config Gemma2Config::from_json_file(const std::filesystem::path& file) {
  std::ifstream in(file);
  if (!in) throw LoadError(file, "cannot open (expected a Hugging Face config.json)");
  json j;
  try {
    in >> j;
  } catch (const json::exception& e) {
    throw LoadError(file, std::string("not valid JSON: ") + e.what());
  }
  if (!j.is_object()) throw LoadError(file, "expected a JSON object");

  const std::string model_type = j.value("model_type", std::string());
  if (model_type != "gemma2") {
    std::string arch = j.contains("architectures") ? j["architectures"].dump() : "none";
    throw LoadError(file, "model_type is '" + model_type + "' (architectures " + arch +
                              "), expected 'gemma2': only Gemma-2 checkpoints are supported");
  }
  const std::string act = j.value("hidden_activation", j.value("hidden_act", std::string()));
  if (act != "gelu_pytorch_tanh" && act != "gelu_tanh")
    throw LoadError(file, "hidden_activation is '" + act + "', expected 'gelu_pytorch_tanh'");
  if (j.value("attention_bias", false)) throw LoadError(file, "attention_bias=true is not supported");

  Gemma2Config c;
  c.vocab_size = number_at<int64_t>(j, file, "vocab_size");
  c.d_model = number_at<int64_t>(j, file, "hidden_size");
  c.d_mlp = number_at<int64_t>(j, file, "intermediate_size");
  c.n_layer = number_at<int64_t>(j, file, "num_hidden_layers");
  c.n_head = number_at<int64_t>(j, file, "num_attention_heads");
  c.n_head_kv = number_at<int64_t>(j, file, "num_key_value_heads", std::optional<int64_t>(c.n_head));
  c.head_dim = number_at<int64_t>(j, file, "head_dim", std::optional<int64_t>(c.n_head ? c.d_model / c.n_head : 0));
  c.query_pre_attn_scalar = number_at<double>(j, file, "query_pre_attn_scalar", std::optional<double>(double(c.head_dim)));
  c.sliding_window = number_at<int64_t>(j, file, "sliding_window", std::optional<int64_t>(0));
  c.attn_softcap = number_at<double>(j, file, "attn_logit_softcapping", std::optional<double>(0.0));
  c.final_softcap = number_at<double>(j, file, "final_logit_softcapping", std::optional<double>(0.0));
  c.rms_eps = number_at<double>(j, file, "rms_norm_eps", std::optional<double>(1e-6));
  c.rope_theta = number_at<double>(j, file, "rope_theta", std::optional<double>(10000.0));
  c.bos_id = number_at<int64_t>(j, file, "bos_token_id", std::optional<int64_t>(2));
  c.eos_id = number_at<int64_t>(j, file, "eos_token_id", std::optional<int64_t>(1));
  c.pad_id = number_at<int64_t>(j, file, "pad_token_id", std::optional<int64_t>(0));
  if (j.contains("tie_word_embeddings") && j["tie_word_embeddings"] == false)
    throw LoadError(file, "tie_word_embeddings=false is not supported (Gemma-2 ties the unembedding)");

  const std::pair<const char*, int64_t> sizes[] = {
      {"vocab_size", c.vocab_size}, {"hidden_size", c.d_model}, {"intermediate_size", c.d_mlp},
      {"num_hidden_layers", c.n_layer}, {"num_attention_heads", c.n_head},
      {"num_key_value_heads", c.n_head_kv}, {"head_dim", c.head_dim}};
  for (const auto& [key, value] : sizes)
    if (value <= 0) throw LoadError(file, std::string(key) + " must be positive, got " + std::to_string(value));
  if (c.n_head % c.n_head_kv != 0)
    throw LoadError(file, "num_attention_heads " + std::to_string(c.n_head) +
                              " is not a multiple of num_key_value_heads " + std::to_string(c.n_head_kv));
  if (c.head_dim % 2 != 0) throw LoadError(file, "head_dim must be even for rotary embeddings, got " + std::to_string(c.head_dim));
  if (c.query_pre_attn_scalar <= 0) throw LoadError(file, "query_pre_attn_scalar must be positive");
  return c;
}

}  // namespace sfc::model
