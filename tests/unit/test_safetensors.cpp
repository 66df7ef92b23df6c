// Safetensors reader: dtype round trips, sharded checkpoints, every corrupt-header failure, and the
// real fixture checkpoint.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <fstream>

#include "sfc/core/error.h"
#include "sfc/io/safetensors.h"
#include "support/expect_load_error.h"
#include "support/safetensors_bytes.h"
#include "support/test_support.h"

namespace {

using sfc::io::Checkpoint;
using sfc::io::SafetensorsFile;
using sfc::test::SafetensorsBytes;
using sfc::test::TempDir;
using sfc::test::throws_load_error;

torch::Tensor sample(std::vector<int64_t> shape, int seed) {
  torch::manual_seed(seed);
  return torch::randn(shape) * 3.0;
}

TEST(Safetensors, RoundTripF32Exact) {
  TempDir tmp;
  auto a = sample({3, 5}, 1);    // (3, 5)
  auto b = sample({7}, 2);       // (7)
  auto c = torch::tensor(2.5f);  // () scalar
  SafetensorsBytes().add("a", a).add("b.weight", b).add("c", c).write(tmp / "x.safetensors");
  SafetensorsFile f(tmp / "x.safetensors");
  EXPECT_EQ(f.names(), (std::vector<std::string>{"a", "b.weight", "c"}));
  EXPECT_EQ(f.entry("a").dtype, "F32");
  EXPECT_EQ(f.entry("a").shape, (std::vector<int64_t>{3, 5}));
  EXPECT_TRUE(torch::equal(f.load("a", torch::kFloat32), a));
  EXPECT_TRUE(torch::equal(f.load("b.weight", torch::kFloat32), b));
  EXPECT_TRUE(torch::equal(f.load("c", torch::kFloat32), c));
  // Cast on load.
  auto a16 = f.load("a", torch::kBFloat16);
  EXPECT_EQ(a16.scalar_type(), torch::kBFloat16);
  EXPECT_TRUE(torch::equal(a16, a.to(torch::kBFloat16)));
}

TEST(Safetensors, RoundTripBF16AndF16) {
  TempDir tmp;
  auto a = sample({4, 6}, 3);
  SafetensorsBytes().add("bf", a, "BF16").add("h", a, "F16").write(tmp / "x.safetensors");
  SafetensorsFile f(tmp / "x.safetensors");
  EXPECT_EQ(f.entry("bf").dtype, "BF16");
  EXPECT_EQ(f.entry("h").dtype, "F16");
  // Upcasting is exact: the values must equal the rounded originals bit for bit.
  EXPECT_TRUE(torch::equal(f.load("bf", torch::kFloat32), a.to(torch::kBFloat16).to(torch::kFloat32)));
  EXPECT_TRUE(torch::equal(f.load("h", torch::kFloat32), a.to(torch::kFloat16).to(torch::kFloat32)));
  EXPECT_TRUE(torch::equal(f.load("bf", torch::kBFloat16), a.to(torch::kBFloat16)));
  EXPECT_TRUE(torch::equal(f.load("h", torch::kFloat16), a.to(torch::kFloat16)));
  // Tolerance check against the float originals (bf16 keeps 8 mantissa bits).
  EXPECT_LT((f.load("bf", torch::kFloat32) - a).abs().max().item<float>(), 0.01f * a.abs().max().item<float>());
}

TEST(Safetensors, IntegerTensors) {
  TempDir tmp;
  auto i64 = torch::arange(-5, 7, torch::kInt64).reshape({3, 4});
  auto i32 = torch::arange(0, 10, torch::kInt32);
  SafetensorsBytes().add("i64", i64, "I64").add("i32", i32, "I32").write(tmp / "x.safetensors");
  SafetensorsFile f(tmp / "x.safetensors");
  EXPECT_TRUE(torch::equal(f.load("i64", torch::kInt64), i64));
  EXPECT_TRUE(torch::equal(f.load("i32", torch::kInt32), i32));
  EXPECT_TRUE(torch::equal(f.load("i32", torch::kInt64), i32.to(torch::kInt64)));
}

TEST(Safetensors, MetadataAndEmptyTensor) {
  TempDir tmp;
  SafetensorsBytes b;
  b.add("x", sample({2, 2}, 4)).add("empty", torch::zeros({0, 3}));
  b.header()["__metadata__"] = {{"format", "pt"}};
  b.write(tmp / "x.safetensors");
  SafetensorsFile f(tmp / "x.safetensors");
  EXPECT_EQ(f.names(), (std::vector<std::string>{"empty", "x"}));
  EXPECT_EQ(f.load("empty", torch::kFloat32).sizes(), (std::vector<int64_t>{0, 3}));
}

TEST(Safetensors, MissingFile) {
  TempDir tmp;
  EXPECT_TRUE(throws_load_error([&] { SafetensorsFile f(tmp / "nope.safetensors"); }, tmp / "nope.safetensors",
                                {"cannot open"}));
}

TEST(Safetensors, TooShortForLength) {
  TempDir tmp;
  std::ofstream(tmp / "x.safetensors") << "abc";
  EXPECT_TRUE(throws_load_error([&] { SafetensorsFile f(tmp / "x.safetensors"); }, tmp / "x.safetensors",
                                {"shorter than the 8-byte header length"}));
}

TEST(Safetensors, HeaderLengthBeyondFile) {
  TempDir tmp;
  SafetensorsBytes b;
  b.add("x", sample({2, 2}, 5));
  const uint64_t bogus = 1'000'000;
  std::string text = b.header().dump();
  b.write(tmp / "x.safetensors", &text, &bogus);
  EXPECT_TRUE(throws_load_error([&] { SafetensorsFile f(tmp / "x.safetensors"); }, tmp / "x.safetensors",
                                {"header length 1000000", "corrupt header"}));
}

TEST(Safetensors, BadJson) {
  TempDir tmp;
  SafetensorsBytes b;
  b.add("x", sample({2, 2}, 6));
  std::string text = b.header().dump();
  text.back() = ' ';  // drops the closing brace, keeps the length
  b.write(tmp / "x.safetensors", &text);
  EXPECT_TRUE(throws_load_error([&] { SafetensorsFile f(tmp / "x.safetensors"); }, tmp / "x.safetensors",
                                {"invalid JSON"}));
}

TEST(Safetensors, OffsetsOutOfRange) {
  TempDir tmp;
  SafetensorsBytes b;
  b.add("x", sample({2, 2}, 7));
  b.header()["x"]["data_offsets"] = {8, 24};  // the data block holds only 16 bytes
  b.write(tmp / "x.safetensors");
  EXPECT_TRUE(throws_load_error([&] { SafetensorsFile f(tmp / "x.safetensors"); }, tmp / "x.safetensors",
                                {"tensor 'x'", "out of range", "16 bytes"}));
}

TEST(Safetensors, OffsetsDisagreeWithShape) {
  TempDir tmp;
  SafetensorsBytes b;
  b.add("x", sample({2, 2}, 8));
  b.header()["x"]["shape"] = {2, 3};
  b.write(tmp / "x.safetensors");
  EXPECT_TRUE(throws_load_error([&] { SafetensorsFile f(tmp / "x.safetensors"); }, tmp / "x.safetensors",
                                {"tensor 'x'", "span 16 bytes", "F32 [2, 3] needs 24"}));
}

TEST(Safetensors, UnknownDtype) {
  TempDir tmp;
  SafetensorsBytes b;
  b.add("x", sample({2, 2}, 9));
  b.header()["x"]["dtype"] = "F8_E4M3";
  b.write(tmp / "x.safetensors");
  EXPECT_TRUE(throws_load_error([&] { SafetensorsFile f(tmp / "x.safetensors"); }, tmp / "x.safetensors",
                                {"unknown dtype 'F8_E4M3'"}));
}

TEST(Safetensors, MissingTensor) {
  TempDir tmp;
  SafetensorsBytes().add("x", sample({2}, 10)).write(tmp / "x.safetensors");
  SafetensorsFile f(tmp / "x.safetensors");
  EXPECT_TRUE(throws_load_error([&] { f.load("y", torch::kFloat32); }, tmp / "x.safetensors", {"no tensor 'y'"}));
}

TEST(Safetensors, FloatToIntegerRefused) {
  TempDir tmp;
  SafetensorsBytes().add("x", sample({2}, 11)).write(tmp / "x.safetensors");
  SafetensorsFile f(tmp / "x.safetensors");
  EXPECT_TRUE(throws_load_error([&] { f.load("x", torch::kInt64); }, tmp / "x.safetensors", {"'x' is F32"}));
}

TEST(Safetensors, TruncatedData) {
  // The header is checked against the file size, so cutting the data block fails at open.
  TempDir tmp;
  SafetensorsBytes b;
  b.add("x", sample({4, 4}, 12));
  b.data().resize(10);
  b.write(tmp / "x.safetensors");
  EXPECT_TRUE(throws_load_error([&] { SafetensorsFile f(tmp / "x.safetensors"); }, tmp / "x.safetensors",
                                {"out of range"}));
}

TEST(SafetensorsCheckpoint, SingleFile) {
  TempDir tmp;
  auto a = sample({2, 3}, 13);
  SafetensorsBytes().add("model.a", a).write(tmp / "model.safetensors");
  Checkpoint ck(tmp.path());
  EXPECT_EQ(ck.names(), (std::vector<std::string>{"model.a"}));
  EXPECT_EQ(ck.shape("model.a"), (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(ck.file_of("model.a"), tmp / "model.safetensors");
  EXPECT_TRUE(torch::equal(ck.load("model.a", torch::kFloat32), a));
  EXPECT_TRUE(throws_load_error([&] { ck.load("model.b", torch::kFloat32); }, tmp / "model.safetensors",
                                {"no tensor 'model.b'"}));
}

void write_index(const std::filesystem::path& file, const std::string& body) { std::ofstream(file) << body; }

TEST(SafetensorsCheckpoint, ShardedIndex) {
  TempDir tmp;
  auto a = sample({2, 3}, 14), b = sample({4}, 15), c = sample({5}, 16);
  SafetensorsBytes().add("a", a).add("b", b, "BF16").write(tmp / "model-00001-of-00002.safetensors");
  SafetensorsBytes().add("c", c).write(tmp / "model-00002-of-00002.safetensors");
  write_index(tmp / "model.safetensors.index.json",
              R"({"metadata": {"total_size": 44}, "weight_map": {"a": "model-00001-of-00002.safetensors",
                  "b": "model-00001-of-00002.safetensors", "c": "model-00002-of-00002.safetensors"}})");
  Checkpoint ck(tmp.path());
  EXPECT_EQ(ck.names(), (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_EQ(ck.file_of("c"), tmp / "model-00002-of-00002.safetensors");
  EXPECT_TRUE(torch::equal(ck.load("a", torch::kFloat32), a));
  EXPECT_TRUE(torch::equal(ck.load("b", torch::kFloat32), b.to(torch::kBFloat16).to(torch::kFloat32)));
  EXPECT_TRUE(torch::equal(ck.load("c", torch::kFloat32), c));
}

TEST(SafetensorsCheckpoint, IndexNamesMissingShard) {
  TempDir tmp;
  SafetensorsBytes().add("a", sample({2}, 17)).write(tmp / "model-00001-of-00002.safetensors");
  write_index(tmp / "model.safetensors.index.json",
              R"({"weight_map": {"a": "model-00001-of-00002.safetensors", "c": "model-00002-of-00002.safetensors"}})");
  EXPECT_TRUE(throws_load_error([&] { Checkpoint ck(tmp.path()); }, tmp / "model.safetensors.index.json",
                                {"model-00002-of-00002.safetensors", "missing"}));
}

TEST(SafetensorsCheckpoint, IndexMapsTensorToWrongShard) {
  TempDir tmp;
  SafetensorsBytes().add("a", sample({2}, 18)).write(tmp / "s1.safetensors");
  write_index(tmp / "model.safetensors.index.json", R"({"weight_map": {"a": "s1.safetensors", "z": "s1.safetensors"}})");
  EXPECT_TRUE(throws_load_error([&] { Checkpoint ck(tmp.path()); }, tmp / "s1.safetensors",
                                {"no tensor 'z'", "model.safetensors.index.json"}));
}

TEST(SafetensorsCheckpoint, IndexWithoutWeightMap) {
  TempDir tmp;
  write_index(tmp / "model.safetensors.index.json", R"({"metadata": {}})");
  EXPECT_TRUE(throws_load_error([&] { Checkpoint ck(tmp.path()); }, tmp / "model.safetensors.index.json",
                                {"weight_map"}));
}

TEST(SafetensorsCheckpoint, EmptyFolder) {
  TempDir tmp;
  EXPECT_TRUE(throws_load_error([&] { Checkpoint ck(tmp.path()); }, tmp.path(),
                                {"model.safetensors", "model.safetensors.index.json"}));
}

TEST(SafetensorsFixture, TinyGemmaCheckpoint) {
  const auto dir = sfc::test::tiny_dir() / "model";
  SafetensorsFile f(dir / "model.safetensors");
  const auto names = f.names();
  EXPECT_EQ(names.size(), 46u);
  for (const auto& n : names) EXPECT_EQ(f.entry(n).dtype, "F32") << n;
  EXPECT_EQ(f.entry("model.embed_tokens.weight").shape, (std::vector<int64_t>{300, 64}));
  EXPECT_FALSE(f.contains("lm_head.weight"));  // tied unembedding

  Checkpoint ck(dir);
  EXPECT_EQ(ck.names(), names);
  auto emb = ck.load("model.embed_tokens.weight", torch::kFloat32);  // (V, D)
  EXPECT_EQ(emb.sizes(), (std::vector<int64_t>{300, 64}));
  EXPECT_TRUE(torch::isfinite(emb).all().item<bool>());
  EXPECT_GT(emb.abs().max().item<float>(), 0.0f);
  auto q = ck.load("model.layers.0.self_attn.q_proj.weight", torch::kFloat32);  // (H·Dh, D)
  EXPECT_EQ(q.sizes(), (std::vector<int64_t>{96, 64}));
  EXPECT_TRUE(torch::equal(ck.load("model.norm.weight", torch::kBFloat16),
                           ck.load("model.norm.weight", torch::kFloat32).to(torch::kBFloat16)));
}

}  // namespace
