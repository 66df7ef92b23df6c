// Training the built-in Gemma-2. The model code was written for inference (weights never require
// grad); training switches requires_grad on for the length of train_model and calls embed +
// run_layers + logits directly, which build a graph as soon as the embedding requires grad.
#include "sfc/builtin/model_trainer.h"

#include <torch/torch.h>

#include <nlohmann/json.hpp>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <numeric>

#include "sfc/builtin/agreement_data.h"
#include "sfc/core/error.h"
#include "sfc/io/safetensors_writer.h"
#include "sfc/model/metric.h"
#include "sfc/text/tokenizer.h"

namespace sfc::builtin {

model::Gemma2Config make_builtin_config(int64_t tokenizer_vocab, const BuiltinModelSizes& s) {
  model::Gemma2Config c;
  c.vocab_size = (tokenizer_vocab + 63) / 64 * 64;
  c.d_model = s.d_model;
  c.d_mlp = s.d_mlp;
  c.n_layer = s.n_layer;
  c.n_head = s.n_head;
  c.n_head_kv = s.n_head_kv;
  c.head_dim = s.head_dim;
  c.query_pre_attn_scalar = double(s.head_dim);
  c.sliding_window = s.sliding_window;
  c.attn_softcap = 50.0;
  c.final_softcap = 30.0;
  c.rms_eps = 1e-6;
  c.rope_theta = 10000.0;
  return c;
}

model::Gemma2 init_gemma2(const model::Gemma2Config& config, uint64_t seed) {
  torch::manual_seed(seed);
  model::Gemma2 model(config);
  torch::NoGradGuard no_grad;
  // named_parameters() is ordered by registration, so the draws are the same on every run.
  for (auto& item : model->named_parameters()) {
    auto& p = item.value();
    if (p.dim() == 1) p.zero_();  // RMSNorm weights: (1 + 0) = identity at init
    else p.normal_(0.0, 0.02);
  }
  model->eval();
  return model;
}

CorpusTokens tokenize_corpus(const text::Tokenizer& tokenizer, const std::vector<std::string>& lines) {
  std::vector<std::vector<int64_t>> ids;
  ids.reserve(lines.size());
  int64_t T = 0;
  for (const auto& line : lines) {
    ids.push_back(tokenizer.encode(line));  // (T_i) BOS first
    T = std::max<int64_t>(T, int64_t(ids.back().size()));
  }
  const int64_t N = int64_t(ids.size());
  CorpusTokens out;
  out.tokens = torch::full({N, T}, tokenizer.pad_id(), torch::kInt64);  // (N, T)
  out.valid = torch::zeros({N, T}, torch::kBool);                     // (N, T)
  auto tok = out.tokens.accessor<int64_t, 2>();
  auto val = out.valid.accessor<bool, 2>();
  for (int64_t i = 0; i < N; ++i)
    for (size_t t = 0; t < ids[i].size(); ++t) {
      tok[i][int64_t(t)] = ids[i][t];
      val[i][int64_t(t)] = true;
    }
  return out;
}

Accuracy evaluate(const model::Gemma2Impl& model, const data::PairDataset& pairs, int64_t batch_size) {
  torch::NoGradGuard no_grad;
  Accuracy acc;
  const int64_t N = int64_t(pairs.pairs.size());
  std::map<std::string, int64_t> right_by_case;
  int64_t right_clean = 0, right_patch = 0;
  double sum_ld = 0;
  for (int64_t first = 0; first < N; first += batch_size) {
    const int64_t count = std::min(batch_size, N - first);
    auto batch = data::make_batch(pairs, first, count, model.config().pad_id, model.device());
    auto ld_clean = model::logit_diff(model, model.forward(batch.clean_ids), batch.answers).to(torch::kCPU);  // (B)
    auto ld_patch = model::logit_diff(model, model.forward(batch.patch_ids), batch.answers).to(torch::kCPU);  // (B)
    for (int64_t b = 0; b < count; ++b) {
      const auto& name = pairs.pairs[first + b].case_name;
      const bool ok = ld_clean[b].item<double>() < 0;
      right_clean += ok;
      right_patch += ld_patch[b].item<double>() > 0;
      right_by_case[name] += ok;
      acc.n_by_case[name] += 1;
      sum_ld += ld_clean[b].item<double>();
    }
  }
  acc.n = N;
  if (N > 0) {
    acc.clean = double(right_clean) / double(N);
    acc.patch = double(right_patch) / double(N);
    acc.mean_ld_clean = sum_ld / double(N);
  }
  for (const auto& [name, n] : acc.n_by_case) acc.clean_by_case[name] = double(right_by_case[name]) / double(n);
  return acc;
}

namespace {

double lr_at(const ModelTrainOptions& o, int64_t step) {
  if (step < o.warmup) return o.lr * double(step + 1) / double(o.warmup);
  const double progress = double(step - o.warmup) / double(std::max<int64_t>(1, o.max_steps - o.warmup));
  return o.lr * (0.1 + 0.9 * 0.5 * (1.0 + std::cos(M_PI * std::min(1.0, progress))));
}

std::string by_case(const Accuracy& a) {
  std::string out;
  char buf[64];
  for (const auto& [name, value] : a.clean_by_case) {
    std::snprintf(buf, sizeof buf, "%s%s %.3f", out.empty() ? "" : ", ", name.c_str(), value);
    out += buf;
  }
  return out;
}

}  // namespace

TrainResult train_model(model::Gemma2Impl& model, const CorpusTokens& corpus, const data::PairDataset& train_pairs,
                        const data::PairDataset& test_pairs, const ModelTrainOptions& o) {
  const auto start = std::chrono::steady_clock::now();
  const int64_t N = corpus.tokens.size(0);
  if (N == 0) throw Error("train_model: empty corpus");

  std::vector<torch::Tensor> decay, no_decay;
  for (auto& p : model.parameters()) {
    p.set_requires_grad(true);
    (p.dim() >= 2 ? decay : no_decay).push_back(p);
  }
  std::vector<torch::optim::OptimizerParamGroup> groups;
  groups.emplace_back(decay, std::make_unique<torch::optim::AdamWOptions>(
                                 torch::optim::AdamWOptions(o.lr).betas({0.9, 0.98}).weight_decay(o.weight_decay)));
  groups.emplace_back(no_decay, std::make_unique<torch::optim::AdamWOptions>(
                                    torch::optim::AdamWOptions(o.lr).betas({0.9, 0.98}).weight_decay(0.0)));
  torch::optim::AdamW optimizer(groups);

  SplitMix64 rng(o.seed ^ 0x5eedba7c4ULL);
  TrainResult result;
  double loss_sum = 0;
  int64_t loss_count = 0;
  for (int64_t step = 0; step < o.max_steps; ++step) {
    const double lr = lr_at(o, step);
    for (auto& group : optimizer.param_groups()) static_cast<torch::optim::AdamWOptions&>(group.options()).lr(lr);

    std::vector<int64_t> rows(o.batch_size);
    for (auto& r : rows) r = int64_t(rng.below(uint64_t(N)));
    auto index = torch::tensor(rows, torch::kInt64);
    auto valid = corpus.valid.index_select(0, index);
    const int64_t T = valid.sum(1).max().item<int64_t>();  // trim to the longest sentence of the batch
    auto tokens = corpus.tokens.index_select(0, index).slice(1, 0, T);  // (B, T)

    auto h = model.run_layers(model.embed(tokens.slice(1, 0, T - 1)), 0, model.config().n_layer, nullptr);
    auto logits = model.logits(h);                                          // (B, T-1, V)
    auto targets = tokens.slice(1, 1, T).masked_fill(~valid.slice(1, 1, T), -100);  // (B, T-1)
    auto loss = torch::nn::functional::cross_entropy(
        logits.reshape({-1, logits.size(-1)}), targets.reshape({-1}),
        torch::nn::functional::CrossEntropyFuncOptions().ignore_index(-100));
    optimizer.zero_grad();
    loss.backward();
    torch::nn::utils::clip_grad_norm_(model.parameters(), o.grad_clip);
    optimizer.step();
    loss_sum += loss.item<double>();
    ++loss_count;

    const bool last = step + 1 == o.max_steps;
    if ((step + 1) % o.eval_every == 0 || last) {
      result.steps = step + 1;
      result.loss = loss_sum / double(loss_count);
      loss_sum = 0;
      loss_count = 0;
      result.test = evaluate(model, test_pairs);
      const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      std::fprintf(stderr, "sfc builtin: step %5lld  loss %.4f  lr %.2e  test acc clean %.3f patch %.3f (%s)  %.0f s\n",
                   static_cast<long long>(step + 1), result.loss, lr, result.test.clean, result.test.patch,
                   by_case(result.test).c_str(), secs);
      result.reached_target = result.test.clean >= o.target_accuracy && result.test.patch >= o.target_accuracy;
      if (result.reached_target && step + 1 >= o.min_steps) break;
    }
  }
  for (auto& p : model.parameters()) {
    p.set_requires_grad(false);
    p.mutable_grad() = torch::Tensor();
  }
  result.train = evaluate(model, train_pairs);
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return result;
}

std::string config_json(const model::Gemma2Config& c) {
  nlohmann::ordered_json j;
  j["architectures"] = {"Gemma2ForCausalLM"};
  j["attention_bias"] = false;
  j["attention_dropout"] = 0.0;
  j["attn_logit_softcapping"] = c.attn_softcap;
  j["bos_token_id"] = c.bos_id;
  j["cache_implementation"] = "hybrid";
  j["eos_token_id"] = c.eos_id;
  j["final_logit_softcapping"] = c.final_softcap;
  j["head_dim"] = c.head_dim;
  j["hidden_act"] = "gelu_pytorch_tanh";
  j["hidden_activation"] = "gelu_pytorch_tanh";
  j["hidden_size"] = c.d_model;
  j["initializer_range"] = 0.02;
  j["intermediate_size"] = c.d_mlp;
  j["max_position_embeddings"] = 8192;
  j["model_type"] = "gemma2";
  j["num_attention_heads"] = c.n_head;
  j["num_hidden_layers"] = c.n_layer;
  j["num_key_value_heads"] = c.n_head_kv;
  j["pad_token_id"] = c.pad_id;
  j["query_pre_attn_scalar"] = c.query_pre_attn_scalar;
  j["rms_norm_eps"] = c.rms_eps;
  j["rope_theta"] = c.rope_theta;
  j["sliding_window"] = c.sliding_window;
  j["torch_dtype"] = "float32";
  j["transformers_version"] = "4.46.3";
  j["use_cache"] = true;
  j["vocab_size"] = c.vocab_size;
  return j.dump(2) + "\n";
}

void save_gemma2(const model::Gemma2Impl& model, const std::filesystem::path& dir) {
  std::filesystem::create_directories(dir);
  {
    std::ofstream out(dir / "config.json", std::ios::trunc);
    if (!out) throw LoadError(dir / "config.json", "cannot open for writing");
    out << config_json(model.config());
    if (!out.flush()) throw LoadError(dir / "config.json", "write failed");
  }
  std::vector<std::pair<std::string, torch::Tensor>> tensors;
  for (const auto& item : model.named_parameters())
    tensors.emplace_back("model." + item.key(), item.value().detach().to(torch::kCPU, torch::kFloat32));
  io::write_safetensors(dir / "model.safetensors", tensors);
}

}  // namespace sfc::builtin
