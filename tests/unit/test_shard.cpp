// Shard files: what is appended comes back bit for bit; a torn tail (a run killed mid-append) is
// cut on --resume and nothing before it is lost; a shard of another configuration is refused.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>
#include <fstream>

#include "sfc/core/error.h"
#include "sfc/job/shard.h"
#include "support/test_support.h"

namespace sfc::job {
namespace {

namespace fs = std::filesystem;

ShardRecord make_record(int64_t batch) {
  torch::manual_seed(batch);
  ShardRecord r;
  r.batch = batch;
  r.tensors.emplace_back("f32", torch::randn({2, 3, 4}));
  r.tensors.emplace_back("f64", torch::randn({5}, torch::kDouble));
  r.tensors.emplace_back("i32", torch::randint(-9, 9, {3, 2}, torch::kInt));
  r.tensors.emplace_back("i64", torch::randint(0, 1000, {7}, torch::kLong));
  r.tensors.emplace_back("bool", torch::rand({4, 2}) > 0.5);
  r.tensors.emplace_back("empty", torch::zeros({0}, torch::kLong));
  r.tensors.emplace_back("nan", torch::full({2}, std::nan(""), torch::kFloat));
  return r;
}

void expect_same(const ShardRecord& a, const ShardRecord& b) {
  EXPECT_EQ(a.batch, b.batch);
  ASSERT_EQ(a.tensors.size(), b.tensors.size());
  for (size_t i = 0; i < a.tensors.size(); ++i) {
    EXPECT_EQ(a.tensors[i].first, b.tensors[i].first);
    EXPECT_EQ(a.tensors[i].second.scalar_type(), b.tensors[i].second.scalar_type());
    EXPECT_EQ(a.tensors[i].second.sizes(), b.tensors[i].second.sizes());
    EXPECT_TRUE(a.tensors[i].second.equal(b.tensors[i].second) ||
                (a.tensors[i].second.isnan().all().item<bool>() && b.tensors[i].second.isnan().all().item<bool>()))
        << a.tensors[i].first;
  }
}

TEST(Shard, RecordsComeBackExactly) {
  test::TempDir dir;
  const auto file = shard_path(dir.path(), 3);
  EXPECT_EQ(file.filename(), "rank-00003.shard");
  {
    ShardWriter w(file, "config A", /*resume=*/false);
    for (int64_t b : {0, 4, 8}) w.append(make_record(b));
  }
  ShardReader r(file, "config A");
  EXPECT_EQ(r.batches(), (std::vector<int64_t>{0, 4, 8}));
  for (int64_t b : {8, 0, 4}) expect_same(r.read(b), make_record(b));
  EXPECT_FALSE(r.has(1));
  EXPECT_THROW(r.read(1), LoadError);
}

TEST(Shard, ResumeCutsATornTailAndKeepsTheRest) {
  test::TempDir dir;
  const auto file = shard_path(dir.path(), 0);
  uintmax_t after_two = 0;
  {
    ShardWriter w(file, "cfg", false);
    w.append(make_record(0));
    w.append(make_record(1));
    after_two = fs::file_size(file);
    w.append(make_record(2));
  }
  // A kill in the middle of the third append: half its bytes reached the disk.
  fs::resize_file(file, after_two + (fs::file_size(file) - after_two) / 2);
  EXPECT_THROW(ShardReader(file, "cfg"), LoadError);  // never combined as if complete
  {
    ShardWriter w(file, "cfg", /*resume=*/true);
    EXPECT_EQ(w.completed(), (std::vector<int64_t>{0, 1}));
    EXPECT_EQ(fs::file_size(file), after_two);
    EXPECT_TRUE(w.has(1));
    EXPECT_FALSE(w.has(2));
    w.append(make_record(2));
  }
  ShardReader r(file, "cfg");
  EXPECT_EQ(r.batches(), (std::vector<int64_t>{0, 1, 2}));
  expect_same(r.read(2), make_record(2));
}

TEST(Shard, AFlippedByteIsCaughtByTheChecksum) {
  test::TempDir dir;
  const auto file = shard_path(dir.path(), 0);
  uintmax_t after_one = 0;
  {
    ShardWriter w(file, "cfg", false);
    w.append(make_record(0));
    after_one = fs::file_size(file);
    w.append(make_record(1));
  }
  {
    std::fstream f(file, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(after_one + 40));
    char c = 0;
    f.read(&c, 1);
    f.seekp(static_cast<std::streamoff>(after_one + 40));
    c = static_cast<char>(c ^ 0x5a);
    f.write(&c, 1);
  }
  try {
    ShardReader r(file, "cfg");
    FAIL() << "a corrupt record was accepted";
  } catch (const LoadError& e) {
    EXPECT_NE(std::string(e.what()).find(file.string()), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("corrupt record"), std::string::npos) << e.what();
  }
  // --resume keeps the good first record and drops the damaged one, to be recomputed.
  ShardWriter w(file, "cfg", true);
  EXPECT_EQ(w.completed(), std::vector<int64_t>{0});
}

TEST(Shard, AnotherConfigurationIsRefused) {
  test::TempDir dir;
  const auto file = shard_path(dir.path(), 0);
  { ShardWriter w(file, "ig.steps = 10", false); w.append(make_record(0)); }
  for (bool resume : {true}) {
    try {
      ShardWriter w(file, "ig.steps = 20", resume);
      FAIL() << "resumed another configuration's shard";
    } catch (const LoadError& e) {
      EXPECT_NE(std::string(e.what()).find("another configuration"), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find(file.string()), std::string::npos) << e.what();
    }
  }
  EXPECT_THROW(ShardReader(file, "ig.steps = 20"), LoadError);
  // Starting over (no --resume) truncates.
  { ShardWriter w(file, "ig.steps = 20", false); EXPECT_TRUE(w.completed().empty()); }
  EXPECT_TRUE(ShardReader(file, "ig.steps = 20").batches().empty());
}

TEST(Shard, ResumeWithoutAFileStartsEmpty) {
  test::TempDir dir;
  ShardWriter w(shard_path(dir.path(), 1), "cfg", true);
  EXPECT_TRUE(w.completed().empty());
}

}  // namespace
}  // namespace sfc::job
