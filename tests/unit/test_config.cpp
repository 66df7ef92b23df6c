// Loading errors of the model stage: each is one line naming the file and the problem.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <fstream>

#include "sfc/core/error.h"
#include "sfc/model/gemma2.h"
#include "support/safetensors_bytes.h"
#include "support/test_support.h"

namespace sfc::model {
namespace {

std::string read_text(const std::filesystem::path& file) {
  std::ifstream in(file);
  return {std::istreambuf_iterator<char>(in), {}};
}

// Expects `fn` to throw sfc::Error whose one-line message contains every piece of `needles`.
template <typename Fn>
void expect_error(Fn fn, std::initializer_list<std::string> needles) {
  try {
    fn();
    FAIL() << "no error thrown";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_EQ(msg.find('\n'), std::string::npos) << "message is not one line: " << msg;
    for (const auto& n : needles) EXPECT_NE(msg.find(n), std::string::npos) << "'" << n << "' not in: " << msg;
  }
}

TEST(Gemma2Config, ReadsTheFixtureConfig) {
  auto c = Gemma2Config::from_json_file(test::tiny_dir() / "model" / "config.json");
  EXPECT_EQ(c.vocab_size, 300);
  EXPECT_EQ(c.d_model, 64);
  EXPECT_EQ(c.n_layer, 4);
  EXPECT_EQ(c.n_head, 4);
  EXPECT_EQ(c.n_head_kv, 2);
  EXPECT_EQ(c.head_dim, 24);
  EXPECT_EQ(c.site_width(Site::kAttn), 96);
  EXPECT_EQ(c.site_width(Site::kResid), 64);
  EXPECT_DOUBLE_EQ(c.query_pre_attn_scalar, 16);
  EXPECT_TRUE(c.is_sliding(0));
  EXPECT_FALSE(c.is_sliding(1));
}

TEST(Gemma2Config, RefusesAnotherArchitecture) {
  test::TempDir dir;
  std::string text = read_text(test::tiny_dir() / "model" / "config.json");
  text.replace(text.find("\"gemma2\""), 8, "\"llama\"");
  std::ofstream(dir / "config.json") << text;
  expect_error([&] { Gemma2Config::from_json_file(dir / "config.json"); },
               {(dir / "config.json").string(), "model_type is 'llama'", "gemma2"});
}

TEST(Gemma2Config, NamesAMissingKey) {
  test::TempDir dir;
  std::ofstream(dir / "config.json") << R"({"model_type": "gemma2", "hidden_activation": "gelu_pytorch_tanh",
    "vocab_size": 10, "intermediate_size": 8, "num_hidden_layers": 1, "num_attention_heads": 1})";
  expect_error([&] { Gemma2Config::from_json_file(dir / "config.json"); }, {"config.json", "'hidden_size'"});
}

TEST(LoadGemma2, ReportsMissingAndUnexpectedKeysOnce) {
  test::TempDir dir;
  std::filesystem::copy_file(test::tiny_dir() / "model" / "config.json", dir / "config.json");
  auto model = load_gemma2(test::tiny_dir() / "model");
  std::map<std::string, torch::Tensor> tensors;
  for (auto& item : model->named_parameters()) tensors["model." + item.key()] = item.value();
  tensors.erase("model.layers.2.mlp.up_proj.weight");
  tensors["model.layers.9.extra.weight"] = torch::zeros({2});
  test::write_safetensors(dir / "model.safetensors", tensors);
  expect_error([&] { load_gemma2(dir.path()); },
               {dir.path().string(), "1 missing [model.layers.2.mlp.up_proj.weight]",
                "1 unexpected [model.layers.9.extra.weight]"});
}

TEST(LoadGemma2, ReportsAWrongShape) {
  test::TempDir dir;
  std::filesystem::copy_file(test::tiny_dir() / "model" / "config.json", dir / "config.json");
  auto model = load_gemma2(test::tiny_dir() / "model");
  std::map<std::string, torch::Tensor> tensors;
  for (auto& item : model->named_parameters()) tensors["model." + item.key()] = item.value();
  tensors["model.norm.weight"] = torch::zeros({65});
  test::write_safetensors(dir / "model.safetensors", tensors);
  expect_error([&] { load_gemma2(dir.path()); }, {"model.norm.weight [65] (expected [64])"});
}

TEST(LoadGemma2, AcceptsATiedLmHeadAndRefusesAnUntiedOne) {
  test::TempDir dir;
  std::filesystem::copy_file(test::tiny_dir() / "model" / "config.json", dir / "config.json");
  auto model = load_gemma2(test::tiny_dir() / "model");
  std::map<std::string, torch::Tensor> tensors;
  for (auto& item : model->named_parameters()) tensors["model." + item.key()] = item.value();
  tensors["lm_head.weight"] = tensors["model.embed_tokens.weight"];
  test::write_safetensors(dir / "model.safetensors", tensors);
  EXPECT_NO_THROW(load_gemma2(dir.path()));
  tensors["lm_head.weight"] = tensors["model.embed_tokens.weight"] + 1;
  test::write_safetensors(dir / "model.safetensors", tensors);
  expect_error([&] { load_gemma2(dir.path()); }, {"lm_head.weight differs"});
}

TEST(LoadGemma2, NamesAMissingFolder) {
  expect_error([&] { load_gemma2("/nonexistent/model"); }, {"/nonexistent/model", "does not exist"});
}

}  // namespace
}  // namespace sfc::model
