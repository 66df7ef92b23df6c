// Loading errors of the model stage: each is one line naming the file and the problem.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <fstream>

#include "sfc/core/error.h"
#include "sfc/model/gemma2.h"
#include "support/safetensors_bytes.h"
#include "support/expect_load_error.h"
#include "support/test_support.h"

namespace sfc::model {
namespace {

std::string read_text(const std::filesystem::path& file) {
  std::ifstream in(file);
  return {std::istreambuf_iterator<char>(in), {}};
}

// The fixture checkpoint's tensors under their checkpoint names, for writing altered copies, and a
// folder holding the fixture's config.json beside such a copy.
std::map<std::string, torch::Tensor> fixture_tensors() {
  std::map<std::string, torch::Tensor> tensors;
  for (auto& item : load_gemma2(test::tiny_dir() / "model")->named_parameters())
    tensors["model." + item.key()] = item.value();
  return tensors;
}

void copy_config(const test::TempDir& dir) {
  std::filesystem::copy_file(test::tiny_dir() / "model" / "config.json", dir / "config.json");
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
  EXPECT_TRUE(test::throws_load_error([&] { Gemma2Config::from_json_file(dir / "config.json"); },
                                      dir / "config.json", {"model_type is 'llama'", "gemma2"}));
}

TEST(Gemma2Config, NamesAMissingKey) {
  test::TempDir dir;
  std::ofstream(dir / "config.json") << R"({"model_type": "gemma2", "hidden_activation": "gelu_pytorch_tanh",
    "vocab_size": 10, "intermediate_size": 8, "num_hidden_layers": 1, "num_attention_heads": 1})";
  EXPECT_TRUE(test::throws_load_error([&] { Gemma2Config::from_json_file(dir / "config.json"); },
                                      dir / "config.json", {"'hidden_size'"}));
}

TEST(LoadGemma2, ReportsMissingAndUnexpectedKeysOnce) {
  test::TempDir dir;
  copy_config(dir);
  auto tensors = fixture_tensors();
  tensors.erase("model.layers.2.mlp.up_proj.weight");
  tensors["model.layers.9.extra.weight"] = torch::zeros({2});
  test::write_safetensors(dir / "model.safetensors", tensors);
  EXPECT_TRUE(test::throws_load_error([&] { load_gemma2(dir.path()); }, dir.path(),
                                      {"1 missing [model.layers.2.mlp.up_proj.weight]",
                                       "1 unexpected [model.layers.9.extra.weight]"}));
}

TEST(LoadGemma2, ReportsAWrongShape) {
  test::TempDir dir;
  copy_config(dir);
  auto tensors = fixture_tensors();
  tensors["model.norm.weight"] = torch::zeros({65});
  test::write_safetensors(dir / "model.safetensors", tensors);
  EXPECT_TRUE(test::throws_load_error([&] { load_gemma2(dir.path()); }, dir.path(),
                                      {"model.norm.weight [65] (expected [64])"}));
}

TEST(LoadGemma2, AcceptsATiedLmHeadAndRefusesAnUntiedOne) {
  test::TempDir dir;
  copy_config(dir);
  auto tensors = fixture_tensors();
  tensors["lm_head.weight"] = tensors["model.embed_tokens.weight"];
  test::write_safetensors(dir / "model.safetensors", tensors);
  EXPECT_NO_THROW(load_gemma2(dir.path()));
  tensors["lm_head.weight"] = tensors["model.embed_tokens.weight"] + 1;
  test::write_safetensors(dir / "model.safetensors", tensors);
  EXPECT_TRUE(test::throws_load_error([&] { load_gemma2(dir.path()); }, dir / "model.safetensors",
                                      {"lm_head.weight differs"}));
}

TEST(LoadGemma2, NamesAMissingFolder) {
  EXPECT_TRUE(test::throws_load_error([&] { load_gemma2("/nonexistent/model"); }, "/nonexistent/model",
                                      {"does not exist"}));
}

}  // namespace
}  // namespace sfc::model
