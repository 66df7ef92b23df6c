// HDF5 wrappers: create, batch-wise hyperslab writes, read-back, fill values, attributes, errors,
// and the .partial/commit protocol. Runs on the parallel libhdf5 without MPI_Init.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <numeric>

#include "sfc/core/error.h"
#include "sfc/h5/h5_file.h"
#include "support/test_support.h"

namespace {

using namespace sfc::h5;
using sfc::test::TempDir;

TEST(H5File, LinkedLibraryIsParallelAndSerialDriverWorksWithoutMpiInit) {
  EXPECT_TRUE(hdf5_is_parallel());
  TempDir dir;
  File f = File::create(dir / "a.h5");
  f.create_dataset("x", {Dtype::kInt32, {2}}).write_all(std::vector<int32_t>{1, 2});
}

TEST(H5File, HyperslabBatchesRoundTrip) {
  TempDir dir;
  const int64_t N = 5, L = 2, D = 3;
  {
    File f = File::create(dir / "out.h5");
    Dataset ds = f.create_dataset("/sites/resid", {Dtype::kFloat32, {N, L, D}, NAN});
    // Batch 1: rows 0..1; batch 2: rows 2..3; row 4 never written.
    std::vector<float> b1(2 * L * D), b2(2 * L * D);
    std::iota(b1.begin(), b1.end(), 0.f);
    std::iota(b2.begin(), b2.end(), 100.f);
    ds.write<float>({0, 0, 0}, {2, L, D}, b1.data());
    ds.write<float>({2, 0, 0}, {2, L, D}, b2.data());
    EXPECT_EQ(ds.shape(), (std::vector<int64_t>{N, L, D}));
    EXPECT_EQ(ds.dtype(), Dtype::kFloat32);
  }
  File f = File::open_read_only(dir / "out.h5");
  EXPECT_TRUE(f.exists("sites/resid"));
  EXPECT_TRUE(f.exists("/sites"));
  EXPECT_FALSE(f.exists("sites/mlp"));
  EXPECT_FALSE(f.exists("nothing/here"));
  Dataset ds = f.open_dataset("sites/resid");
  const auto all = ds.read_all<float>();  // (N, L, D)
  ASSERT_EQ(all.size(), size_t(N * L * D));
  for (int64_t i = 0; i < 2 * L * D; ++i) {
    EXPECT_EQ(all[i], float(i));
    EXPECT_EQ(all[2 * L * D + i], float(100 + i));
  }
  for (int64_t i = 4 * L * D; i < N * L * D; ++i) EXPECT_TRUE(std::isnan(all[i])) << i;

  // A hyperslab in the middle, converted to double on read.
  const auto part = ds.read<double>({1, 1, 0}, {2, 1, D});  // (2, 1, D)
  EXPECT_EQ(part, (std::vector<double>{9, 10, 11, 103, 104, 105}));
}

TEST(H5File, IntegerFillAndTypes) {
  TempDir dir;
  {
    File f = File::create(dir / "i.h5");
    Dataset tokens = f.create_dataset("tokens", {Dtype::kInt32, {3, 4}, -1});
    const std::vector<int64_t> row = {2, 17, 5};  // written from int64, stored as int32
    tokens.write<int64_t>({1, 0}, {1, 3}, row.data());
    f.create_dataset("big", {Dtype::kInt64, {2}}).write_all(std::vector<int64_t>{int64_t(1) << 40, -7});
    f.create_dataset("d", {Dtype::kFloat64, {1}, NAN}).write_all(std::vector<double>{0.1});
  }
  File f = File::open_read_only(dir / "i.h5");
  EXPECT_EQ(f.open_dataset("tokens").read_all<int32_t>(),
            (std::vector<int32_t>{-1, -1, -1, -1, 2, 17, 5, -1, -1, -1, -1, -1}));
  EXPECT_EQ(f.open_dataset("big").read_all<int64_t>(), (std::vector<int64_t>{int64_t(1) << 40, -7}));
  EXPECT_EQ(f.open_dataset("big").dtype(), Dtype::kInt64);
  EXPECT_EQ(f.open_dataset("d").read_all<double>(), (std::vector<double>{0.1}));
}

TEST(H5File, ResizeRowsAppends) {
  TempDir dir;
  File f = File::create(dir / "r.h5");
  Dataset ds = f.create_dataset("rows", {Dtype::kFloat32, {0, 2}, NAN});
  const std::vector<float> batch = {1, 2, 3, 4};
  ds.resize_rows(2);
  ds.write<float>({0, 0}, {2, 2}, batch.data());
  ds.resize_rows(3);
  EXPECT_EQ(ds.shape(), (std::vector<int64_t>{3, 2}));
  const auto all = ds.read_all<float>();
  EXPECT_EQ(all[3], 4.f);
  EXPECT_TRUE(std::isnan(all[5]));
}

TEST(H5File, AttributesOnRootGroupsAndDatasets) {
  TempDir dir;
  {
    File f = File::create(dir / "a.h5");
    f.set_attribute("model", "/models/gemma-2-2b");
    f.set_attribute("model", "replaced é");  // overwrite, UTF-8
    Group g = f.create_group("a/b/c");
    g.set_attribute("site", "resid");
    Dataset ds = g.create_dataset("x", {Dtype::kFloat32, {1}});
    ds.set_attribute("units", "logits");
  }
  File f = File::open_read_only(dir / "a.h5");
  EXPECT_EQ(f.attribute("model"), "replaced é");
  EXPECT_TRUE(f.has_attribute("model"));
  EXPECT_FALSE(f.has_attribute("nope"));
  EXPECT_EQ(f.open_group("a/b/c").attribute("site"), "resid");
  EXPECT_EQ(f.open_group("a/b").open_dataset("c/x").attribute("units"), "logits");
  EXPECT_EQ(f.open_dataset("/a/b/c/x").path(), "/a/b/c/x");
  EXPECT_THROW(f.attribute("nope"), sfc::Error);
}

TEST(H5File, ErrorsNameTheFile) {
  TempDir dir;
  const auto missing = dir / "missing.h5";
  try {
    File::open_read_only(missing);
    FAIL();
  } catch (const sfc::Error& e) {
    EXPECT_NE(std::string(e.what()).find(missing.string()), std::string::npos) << e.what();
  }
  // Not an HDF5 file: the message names the call and the file.
  { std::ofstream(dir / "junk.h5") << "not hdf5"; }
  try {
    File::open_read_only(dir / "junk.h5");
    FAIL();
  } catch (const sfc::Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("H5Fopen"), std::string::npos) << msg;
    EXPECT_NE(msg.find("junk.h5"), std::string::npos) << msg;
  }
  File f = File::create(dir / "e.h5");
  Dataset ds = f.create_dataset("x", {Dtype::kFloat32, {2, 2}});
  std::vector<float> buf(4);
  EXPECT_THROW(ds.write<float>({1, 0}, {2, 2}, buf.data()), sfc::Error);  // out of bounds
  EXPECT_THROW(ds.read<float>({0}, {2}), sfc::Error);                     // wrong rank
  EXPECT_THROW(f.create_dataset("x", {Dtype::kFloat32, {2}}), sfc::Error);  // exists
  EXPECT_THROW(f.open_dataset("y"), sfc::Error);
  EXPECT_THROW(File::create(dir / "no" / "such" / "dir.h5"), sfc::Error);
}

TEST(H5File, ZeroCountIsANoOpInSerialMode) {
  TempDir dir;
  File f = File::create(dir / "z.h5");
  Dataset ds = f.create_dataset("x", {Dtype::kFloat32, {2, 2}, NAN});
  // A rank with no rows in MPI-IO mode makes these calls; serially they do nothing, null data too.
  ds.write<float>({0, 0}, {0, 2}, nullptr);
  ds.write<float>({2, 0}, {0, 2}, nullptr);  // empty, at the end: still inside the shape
  EXPECT_TRUE(ds.read<float>({1, 1}, {1, 0}).empty());
  EXPECT_THROW(ds.write<float>({3, 0}, {0, 2}, nullptr), sfc::Error);  // empty, but past the end
  EXPECT_THROW(ds.write<float>({0, 0}, {-1, 2}, nullptr), sfc::Error);
  for (float v : ds.read_all<float>()) EXPECT_TRUE(std::isnan(v));
  // Serial files count no transfers, so the collective check has nothing to object to.
  EXPECT_EQ(f.io_stats().collective, 0);
  EXPECT_EQ(f.io_stats().independent, 0);
  EXPECT_NO_THROW(f.require_collective("serial writes"));
}

TEST(H5Output, UncommittedLeavesNoFile) {
  TempDir dir;
  const auto out = dir / "run.h5";
  {
    H5Output o(out);
    EXPECT_TRUE(std::filesystem::exists(o.partial_path()));
    o.file().create_dataset("x", {Dtype::kFloat32, {4}}).write_all(std::vector<float>{1, 2, 3, 4});
    // No commit: as if an exception unwound the run.
  }
  EXPECT_FALSE(std::filesystem::exists(out));
  EXPECT_FALSE(std::filesystem::exists(H5Output::partial_name(out)));
}

TEST(H5Output, CommitRenames) {
  TempDir dir;
  const auto out = dir / "run.h5";
  {
    H5Output o(out);
    {
      Dataset ds = o.file().create_dataset("x", {Dtype::kFloat32, {2}});
      ds.write_all(std::vector<float>{1, 2});
    }
    EXPECT_FALSE(std::filesystem::exists(out));
    o.commit();
  }
  EXPECT_TRUE(std::filesystem::exists(out));
  EXPECT_FALSE(std::filesystem::exists(H5Output::partial_name(out)));
  EXPECT_EQ(File::open_read_only(out).open_dataset("x").read_all<float>(), (std::vector<float>{1, 2}));
}

TEST(H5Output, CommitWithOpenDatasetIsAnError) {
  TempDir dir;
  H5Output o(dir / "run.h5");
  Dataset ds = o.file().create_dataset("x", {Dtype::kFloat32, {2}});
  EXPECT_THROW(o.commit(), sfc::Error);
}

}  // namespace
