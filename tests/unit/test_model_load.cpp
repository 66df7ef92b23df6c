// How the model is built and filled (issue #15, loading): the default construction draws exactly
// what torch::nn::Linear/Embedding drew (the built-in model and the random test models depend on
// it), the loader's construction draws nothing and allocates in the requested dtype, and
// checkpoints in F32 or BF16, whole or sharded, land in fp32 or bf16 parameters with one
// conversion. Also the safetensors reader's load_into and a file cut after it was opened.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <fstream>

#include "sfc/core/error.h"
#include "sfc/io/safetensors.h"
#include "sfc/model/gemma2.h"
#include "support/expect_load_error.h"
#include "support/random_model.h"
#include "support/safetensors_bytes.h"
#include "support/test_support.h"

namespace sfc::model {
namespace {

namespace fs = std::filesystem;

torch::nn::Linear old_linear(int64_t in, int64_t out) {
  return torch::nn::Linear(torch::nn::LinearOptions(in, out).bias(false));
}

// Bitwise equality, dtype included (torch::equal alone would compare values across dtypes).
bool same_bits(const torch::Tensor& a, const torch::Tensor& b) {
  return a.scalar_type() == b.scalar_type() && a.sizes() == b.sizes() && torch::equal(a, b);
}

TEST(Gemma2Init, DefaultConstructionDrawsWhatTorchNnModulesDrew) {
  const auto config = test::tiny_random_config();
  // The construction before issue #15: torch::nn::Embedding, then per layer q, k, v, o and gate,
  // up, down as torch::nn::Linear without bias, in registration order; RMSNorm weights are zeros.
  torch::manual_seed(1234);
  std::map<std::string, torch::Tensor> old;
  old["embed_tokens.weight"] = torch::nn::Embedding(config.vocab_size, config.d_model)->weight;
  const int64_t D = config.d_model, M = config.d_mlp, HDh = config.n_head * config.head_dim,
                KDh = config.n_head_kv * config.head_dim;
  for (int64_t i = 0; i < config.n_layer; ++i) {
    const std::string p = "layers." + std::to_string(i) + ".";
    old[p + "self_attn.q_proj.weight"] = old_linear(D, HDh)->weight;
    old[p + "self_attn.k_proj.weight"] = old_linear(D, KDh)->weight;
    old[p + "self_attn.v_proj.weight"] = old_linear(D, KDh)->weight;
    old[p + "self_attn.o_proj.weight"] = old_linear(HDh, D)->weight;
    old[p + "mlp.gate_proj.weight"] = old_linear(D, M)->weight;
    old[p + "mlp.up_proj.weight"] = old_linear(D, M)->weight;
    old[p + "mlp.down_proj.weight"] = old_linear(M, D)->weight;
  }
  const auto old_next = torch::rand({16});  // where the generator stood after construction

  torch::manual_seed(1234);
  Gemma2 model(config);
  const auto next = torch::rand({16});

  EXPECT_TRUE(same_bits(next, old_next)) << "construction consumed a different number of random draws";
  const auto params = model->named_parameters();
  EXPECT_EQ(params.size(), old.size() + 4 * size_t(config.n_layer) + 1);  // + four norms per layer, final norm
  for (const auto& item : params) {
    const auto& p = item.value();
    EXPECT_FALSE(p.requires_grad()) << item.key();
    EXPECT_EQ(p.scalar_type(), torch::kFloat32) << item.key();
    if (item.key().find("norm") != std::string::npos) {
      EXPECT_TRUE(same_bits(p, torch::zeros({D}))) << item.key();
      continue;
    }
    ASSERT_EQ(old.count(item.key()), 1u) << "unexpected parameter " << item.key();
    EXPECT_TRUE(same_bits(p, old.at(item.key()))) << item.key();
  }
}

TEST(Gemma2Init, ParametersKeepTheirNamesAndOrder) {
  // The built-in trainer and random_gemma2 redraw in named_parameters() order after construction:
  // with the same generator state (above) and this order, their weights keep their bits.
  const auto config = test::tiny_random_config();
  std::vector<std::string> want = {"embed_tokens.weight"};
  for (int64_t i = 0; i < config.n_layer; ++i)
    for (const char* name : {"input_layernorm", "self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj",
                             "self_attn.o_proj", "post_attention_layernorm", "pre_feedforward_layernorm",
                             "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj", "post_feedforward_layernorm"})
      want.push_back("layers." + std::to_string(i) + "." + name + ".weight");
  want.push_back("norm.weight");
  EXPECT_EQ(Gemma2(config)->named_parameters().keys(), want);
  EXPECT_EQ(Gemma2(config, WeightOptions{{}, Init::kNone})->named_parameters().keys(), want);
}

TEST(Gemma2Init, NoInitDrawsNothingAndAllocatesInTheDtype) {
  const auto config = test::tiny_random_config();
  torch::manual_seed(99);
  const auto want = torch::rand({16});
  torch::manual_seed(99);
  Gemma2 model(config, WeightOptions{torch::TensorOptions().dtype(torch::kBFloat16), Init::kNone});
  EXPECT_TRUE(same_bits(torch::rand({16}), want)) << "Init::kNone must not touch the generator";
  for (const auto& item : model->named_parameters()) {
    EXPECT_EQ(item.value().scalar_type(), torch::kBFloat16) << item.key();
    EXPECT_FALSE(item.value().requires_grad()) << item.key();
  }
  EXPECT_EQ(model->dtype(), torch::kBFloat16);
  EXPECT_EQ(model->named_buffers()["rope_inv_freq"].scalar_type(), torch::kFloat32);  // always fp32
}

// The fixture's tensors under their checkpoint names, in fp32.
std::map<std::string, torch::Tensor> fixture_tensors() {
  std::map<std::string, torch::Tensor> tensors;
  for (auto& item : load_gemma2(test::tiny_dir() / "model")->named_parameters())
    tensors["model." + item.key()] = item.value().clone();
  return tensors;
}

// Writes `tensors` in `dtype` as a folder with config.json and either model.safetensors or two
// shards plus model.safetensors.index.json.
void write_checkpoint(const fs::path& dir, const std::map<std::string, torch::Tensor>& tensors,
                      const std::string& dtype, bool sharded) {
  fs::copy_file(test::tiny_dir() / "model" / "config.json", dir / "config.json");
  if (!sharded) {
    test::SafetensorsBytes bytes;
    for (const auto& [name, t] : tensors) bytes.add(name, t, dtype);
    bytes.write(dir / "model.safetensors");
    return;
  }
  test::SafetensorsBytes shard[2];
  nlohmann::json map = nlohmann::json::object();
  size_t i = 0;
  for (const auto& [name, t] : tensors) {
    const int k = (i++ % 2);  // alternate, so consecutive parameters come from different files
    shard[k].add(name, t, dtype);
    map[name] = "model-0000" + std::to_string(k + 1) + "-of-00002.safetensors";
  }
  shard[0].write(dir / "model-00001-of-00002.safetensors");
  shard[1].write(dir / "model-00002-of-00002.safetensors");
  std::ofstream(dir / "model.safetensors.index.json") << nlohmann::json{{"weight_map", map}}.dump();
}

TEST(LoadGemma2, F32AndBf16CheckpointsWholeOrShardedIntoFp32AndBf16) {
  const auto tensors = fixture_tensors();
  for (const std::string disk : {"F32", "BF16"}) {
    for (bool sharded : {false, true}) {
      test::TempDir dir;
      write_checkpoint(dir.path(), tensors, disk, sharded);
      for (torch::Dtype dtype : {torch::kFloat32, torch::kBFloat16}) {
        const auto model = load_gemma2(dir.path(), {dtype, torch::kCPU});
        const std::string what = disk + (sharded ? " sharded" : " single") + " into " +
                                 std::string(c10::toString(dtype));
        EXPECT_EQ(model->named_parameters().size(), tensors.size()) << what;
        for (const auto& item : model->named_parameters()) {
          // One conversion from what is on disk: fp32 -> dtype, or bf16 -> dtype.
          const auto& src = tensors.at("model." + item.key());
          const auto on_disk = disk == "BF16" ? src.to(torch::kBFloat16) : src;
          EXPECT_TRUE(same_bits(item.value(), on_disk.to(dtype))) << what << ": " << item.key();
          EXPECT_FALSE(item.value().requires_grad()) << what << ": " << item.key();
        }
      }
    }
  }
}

TEST(LoadGemma2, RefusesAnUntiedLmHeadInBf16Too) {
  auto tensors = fixture_tensors();
  test::TempDir dir;
  tensors["lm_head.weight"] = tensors["model.embed_tokens.weight"];
  write_checkpoint(dir.path(), tensors, "BF16", /*sharded=*/true);
  EXPECT_NO_THROW(load_gemma2(dir.path(), {torch::kBFloat16, torch::kCPU}));
  EXPECT_NO_THROW(load_gemma2(dir.path(), {torch::kFloat32, torch::kCPU}));

  test::TempDir other;
  auto last_row = tensors["model.embed_tokens.weight"].clone();
  last_row[-1][-1] += 1;  // differs in the very last element only
  tensors["lm_head.weight"] = last_row;
  write_checkpoint(other.path(), tensors, "BF16", /*sharded=*/false);
  EXPECT_TRUE(test::throws_load_error([&] { load_gemma2(other.path(), {torch::kBFloat16, torch::kCPU}); },
                                      other / "model.safetensors", {"lm_head.weight differs"}));
}

TEST(SafetensorsLoadInto, ConvertsIntoTheGivenTensorAndChecksIt) {
  test::TempDir tmp;
  const auto a = torch::randn({3, 5});
  test::SafetensorsBytes().add("h", torch::ones({1}), "F16").add("a", a).add("i", torch::arange(4), "I64")
      .write(tmp / "x.safetensors");  // "a" sits at an odd offset after a 2-byte tensor
  io::SafetensorsFile f(tmp / "x.safetensors");
  auto same = torch::empty({3, 5});
  f.load_into("a", same);
  EXPECT_TRUE(same_bits(same, a));
  auto bf = torch::empty({15}, torch::kBFloat16);  // any shape with as many elements
  f.load_into("a", bf);
  EXPECT_TRUE(same_bits(bf, a.to(torch::kBFloat16).view({15})));
  auto ints = torch::empty({4}, torch::kFloat64);  // integer on disk into float: allowed
  f.load_into("i", ints);
  EXPECT_TRUE(same_bits(ints, torch::arange(4, torch::kFloat64)));

  auto wrong = torch::empty({4, 5});
  EXPECT_TRUE(test::throws_load_error([&] { f.load_into("a", wrong); }, tmp / "x.safetensors",
                                      {"tensor 'a' [3, 5] cannot be read into a [4, 5] tensor"}));
  auto strided = torch::empty({5, 3}).t();
  EXPECT_TRUE(test::throws_load_error([&] { f.load_into("a", strided); }, tmp / "x.safetensors", {"non-contiguous"}));
  auto integer = torch::empty({3, 5}, torch::kInt32);
  EXPECT_TRUE(test::throws_load_error([&] { f.load_into("a", integer); }, tmp / "x.safetensors", {"'a' is F32"}));
}

TEST(SafetensorsLoadInto, PiecesCoverTheTensorInOrder) {
  test::TempDir tmp;
  const auto a = torch::randn({7, 3});
  test::SafetensorsBytes().add("a", a, "BF16").write(tmp / "x.safetensors");
  io::SafetensorsFile f(tmp / "x.safetensors");
  int64_t next = 0;
  f.for_each_piece("a", [&](const torch::Tensor& piece, int64_t offset) {
    EXPECT_EQ(offset, next);
    EXPECT_EQ(piece.scalar_type(), torch::kBFloat16);
    EXPECT_TRUE(same_bits(piece, a.to(torch::kBFloat16).view({-1}).narrow(0, offset, piece.numel())));
    next += piece.numel();
  });
  EXPECT_EQ(next, 21);
}

TEST(SafetensorsLoadInto, AFileCutAfterOpeningFailsWithAMessage) {
  test::TempDir tmp;
  test::SafetensorsBytes().add("a", torch::randn({64})).add("b", torch::randn({64})).write(tmp / "x.safetensors");
  io::SafetensorsFile f(tmp / "x.safetensors");
  fs::resize_file(tmp / "x.safetensors", fs::file_size(tmp / "x.safetensors") - 100);
  EXPECT_TRUE(test::throws_load_error([&] { f.load("b", torch::kFloat32); }, tmp / "x.safetensors",
                                      {"tensor 'b'", "file truncated?"}));
  EXPECT_TRUE(test::throws_load_error([&] { f.load("b", torch::kBFloat16); }, tmp / "x.safetensors",
                                      {"tensor 'b'", "file truncated?"}));
  EXPECT_NO_THROW(f.load("a", torch::kFloat32));  // still whole
}

}  // namespace
}  // namespace sfc::model
