// Parallel HDF5 through sfc_h5, run under `mpirun -np 3` (ctest label mpi): collective creation,
// disjoint hyperslabs with one rank taking part empty, read-back (serial, MPI-IO, h5py), and the
// check that HDF5 really did the transfers collectively. Not for the serial API (tests/unit).
#include <gtest/gtest.h>
#include <mpi.h>

#include <cmath>
#include <cstdio>
#include <optional>
#include <string>
#include <vector>

#include "sfc/core/error.h"
#include "sfc/h5/h5_file.h"
#include "support/mpi_test_support.h"
#include "support/cli_support.h"

namespace {

using namespace sfc::h5;
using sfc::test::TempDir;

using sfc::test::mpi_rank;

using sfc::test::world;

int mpi_size() { return world().size(); }

int64_t sum_over_ranks(int64_t value) { return world().sum(value); }

using sfc::test::SharedTempDir;

// Rows of each rank: rank 1 has none (empty participation), rank r else r + 2; one last row is
// written by nobody, to check the fill value. np 3: rows 0-1 rank 0, 2-5 rank 2, 6 fill.
struct RowSplit {
  std::vector<int64_t> start, count;
  int64_t n_rows = 0;
};

RowSplit split_rows(int size) {
  RowSplit s;
  for (int r = 0; r < size; ++r) {
    s.start.push_back(s.n_rows);
    s.count.push_back(r == 1 ? 0 : r + 2);
    s.n_rows += s.count.back();
  }
  s.n_rows += 1;
  return s;
}

constexpr int64_t L = 2, D = 3, T = 4;
float resid_value(int64_t row, int64_t l, int64_t d) { return float(row * 100 + l * 10 + d) + 0.25f; }
int32_t token_value(int64_t row, int64_t t) { return int32_t(row * 10 + t); }

// This rank's rows of resid (rows, L, D) and tokens (rows, T).
std::vector<float> resid_rows(int64_t start, int64_t count) {
  std::vector<float> v;
  for (int64_t i = start; i < start + count; ++i)
    for (int64_t l = 0; l < L; ++l)
      for (int64_t d = 0; d < D; ++d) v.push_back(resid_value(i, l, d));
  return v;
}

std::vector<int32_t> token_rows(int64_t start, int64_t count) {
  std::vector<int32_t> v;
  for (int64_t i = start; i < start + count; ++i)
    for (int64_t t = 0; t < T; ++t) v.push_back(token_value(i, t));
  return v;
}

// Creates resid (chunks of 3 rows, so ranks share chunks), tokens (default chunks) and a deflated
// copy of resid; writes this rank's rows into each. Collective calls only: every rank runs it.
void write_rows(File& file, const RowSplit& split, int rank) {
  const int64_t N = split.n_rows, start = split.start[rank], count = split.count[rank];
  DatasetSpec resid_spec(Dtype::kFloat32, {N, L, D}, NAN);
  resid_spec.chunk = {3, L, D};
  DatasetSpec packed_spec(Dtype::kFloat32, {N, L, D}, NAN);
  packed_spec.deflate = 4;
  Dataset resid = file.create_dataset("sites/resid", resid_spec);
  Dataset tokens = file.create_dataset("tokens", {Dtype::kInt32, {N, T}, -1});
  Dataset packed = file.create_dataset("sites/resid_deflate", packed_spec);
  const auto r = resid_rows(start, count);
  const auto t = token_rows(start, count);
  resid.write<float>({start, 0, 0}, {count, L, D}, r.data());
  tokens.write<int32_t>({start, 0}, {count, T}, t.data());
  packed.write<float>({start, 0, 0}, {count, L, D}, r.data());
}

// Rank 0 alone, after commit: every element through the serial API.
void expect_serial_read_back(const std::filesystem::path& out, const RowSplit& split) {
  File f = File::open_read_only(out);
  EXPECT_EQ(f.attribute("model"), "tiny");
  const int64_t N = split.n_rows, written = N - 1;
  for (const char* name : {"sites/resid", "sites/resid_deflate"}) {
    const auto all = f.open_dataset(name).read_all<float>();  // (N, L, D)
    ASSERT_EQ(all.size(), size_t(N * L * D)) << name;
    for (int64_t i = 0; i < N; ++i)
      for (int64_t l = 0; l < L; ++l)
        for (int64_t d = 0; d < D; ++d) {
          const float v = all[(i * L + l) * D + d];
          if (i < written)
            EXPECT_EQ(v, resid_value(i, l, d)) << name << " row " << i;
          else
            EXPECT_TRUE(std::isnan(v)) << name << " row " << i << " never written: " << v;
        }
  }
  const auto tokens = f.open_dataset("tokens").read_all<int32_t>();  // (N, T)
  ASSERT_EQ(tokens.size(), size_t(N * T));
  for (int64_t i = 0; i < N; ++i)
    for (int64_t t = 0; t < T; ++t)
      EXPECT_EQ(tokens[i * T + t], i < written ? token_value(i, t) : -1) << "tokens row " << i;
}

TEST(H5Parallel, DisjointRowsWithAnEmptyRankThroughH5Output) {
  const int rank = mpi_rank(), size = mpi_size();
  ASSERT_GE(size, 2) << "run under mpirun -np 2 or more";  // same on every rank: no hang
  const RowSplit split = split_rows(size);
  SharedTempDir dir;
  const auto out = dir / "parallel.h5";
  {
    H5Output output(out, FileOptions{&world()});
    output.file().set_attribute("model", "tiny");
    write_rows(output.file(), split, rank);
    // 3 non-empty transfers per rank with rows, none counted on the empty rank.
    const IoStats& stats = output.file().io_stats();
    EXPECT_EQ(stats.independent, 0) << stats.last_cause;
    EXPECT_EQ(stats.collective, split.count[rank] > 0 ? 3 : 0);
    EXPECT_NO_THROW(output.file().require_collective("writing rows"));
    EXPECT_TRUE(std::filesystem::exists(output.partial_path()));
    EXPECT_FALSE(std::filesystem::exists(out));
    output.commit();
  }
  // commit() returns on no rank before rank 0 renamed the file.
  EXPECT_TRUE(std::filesystem::exists(out));
  EXPECT_FALSE(std::filesystem::exists(H5Output::partial_name(out)));

  // Read back collectively, each rank its own rows (rank 1 empty again).
  {
    File f = File::open_read_only(out, FileOptions{&world()});
    const int64_t start = split.start[rank], count = split.count[rank];
    EXPECT_EQ(f.open_dataset("sites/resid").read<float>({start, 0, 0}, {count, L, D}), resid_rows(start, count));
    EXPECT_EQ(f.open_dataset("tokens").read<int32_t>({start, 0}, {count, T}), token_rows(start, count));
    EXPECT_EQ(f.io_stats().collective, count > 0 ? 2 : 0);
    EXPECT_EQ(f.io_stats().independent, 0) << f.io_stats().last_cause;
  }

  if (rank == 0) {
    expect_serial_read_back(out, split);
    // And as the analysis scripts will see it.
    using sfc::test::python;
    using sfc::test::quote;
    std::string args = quote(std::string(SFC_SOURCE_DIR) + "/tests/mpi/check_h5_parallel.py") + " " +
                       quote(out.string());
    for (int64_t c : split.count) args += " " + std::to_string(c);
    TempDir logs;
    const auto check = sfc::test::run(python(args), logs);
    EXPECT_EQ(check.status, 0) << check.out << check.err;
  }
  world().barrier();  // rank 0 reads the file before SharedTempDir removes it
}

TEST(H5Parallel, CollectiveCheckCountsWhatHdf5Did) {
  const int rank = mpi_rank(), size = mpi_size();
  ASSERT_GE(size, 2);
  const RowSplit split = split_rows(size);
  const int64_t start = split.start[rank], count = split.count[rank];
  const bool has_rows = count > 0;
  SharedTempDir dir;

  // Collective transfers: counted collective on the ranks with rows, nowhere independent.
  {
    File f = File::create(dir / "collective.h5", FileOptions{&world()});
    write_rows(f, split, rank);
    EXPECT_EQ(f.io_stats().independent, 0) << f.io_stats().last_cause;
    EXPECT_EQ(f.io_stats().collective, has_rows ? 3 : 0);
    EXPECT_GT(sum_over_ranks(f.io_stats().collective), 0);
    EXPECT_NO_THROW(f.require_collective("collective writes"));
  }

  // Independent transfers asked for: counted independent, and require_collective names the file
  // and the cause. The deflated dataset is left out: HDF5 writes filtered data only collectively.
  {
    const auto file = dir / "independent.h5";
    File f = File::create(file, FileOptions{&world(), /*collective=*/false});
    Dataset resid = f.create_dataset("resid", {Dtype::kFloat32, {split.n_rows, L, D}, NAN});
    Dataset tokens = f.create_dataset("tokens", {Dtype::kInt32, {split.n_rows, T}, -1});
    const auto r = resid_rows(start, count);
    const auto t = token_rows(start, count);
    resid.write<float>({start, 0, 0}, {count, L, D}, r.data());
    tokens.write<int32_t>({start, 0}, {count, T}, t.data());
    EXPECT_EQ(f.io_stats().collective, 0);
    EXPECT_EQ(f.io_stats().independent, has_rows ? 2 : 0);
    if (has_rows) {
      EXPECT_NE(f.io_stats().last_cause.find("independent I/O was requested"), std::string::npos)
          << f.io_stats().last_cause;
      try {
        f.require_collective("independent writes");
        ADD_FAILURE() << "require_collective accepted independent transfers";
      } catch (const sfc::Error& e) {
        const std::string msg = e.what();
        EXPECT_NE(msg.find(file.string()), std::string::npos) << msg;
        EXPECT_NE(msg.find("independent writes"), std::string::npos) << msg;
        EXPECT_NE(msg.find("FileOptions::collective = false"), std::string::npos) << msg;
      }
    } else {
      EXPECT_NO_THROW(f.require_collective("nothing transferred on this rank"));
    }
    EXPECT_GT(sum_over_ranks(f.io_stats().independent), 0);
    // The data is right all the same.
    EXPECT_EQ(resid.read<float>({start, 0, 0}, {count, L, D}), r);
  }

  // HDF5 falling back by itself although collective was asked for: HDF5 1.10 converts types only
  // in independent I/O (here int64 rows into an int32 dataset). Caught and named.
  {
    const auto file = dir / "conversion.h5";
    File f = File::create(file, FileOptions{&world()});
    Dataset tokens = f.create_dataset("tokens", {Dtype::kInt32, {split.n_rows, T}, -1});
    const auto t32 = token_rows(start, count);
    const std::vector<int64_t> t64(t32.begin(), t32.end());
    tokens.write<int64_t>({start, 0}, {count, T}, t64.data());
    EXPECT_EQ(f.io_stats().independent, has_rows ? 1 : 0);
    if (has_rows) {
      EXPECT_NE(f.io_stats().last_cause.find("/tokens: the memory type needs conversion"), std::string::npos)
          << f.io_stats().last_cause;
      EXPECT_THROW(f.require_collective("int64 tokens"), sfc::Error);
    }
    EXPECT_EQ(tokens.read<int32_t>({start, 0}, {count, T}), t32);  // same type: collective again
    EXPECT_EQ(f.io_stats().collective, has_rows ? 1 : 0);
  }
}

TEST(H5Parallel, UncommittedOutputLeavesNoFileOnAnyRank) {
  SharedTempDir dir;
  const auto out = dir / "unfinished.h5";
  {
    H5Output output(out, FileOptions{&world()});
    output.file().create_dataset("x", {Dtype::kInt32, {2}, -1});
  }  // no commit: as if an exception unwound the run on every rank
  world().barrier();  // rank 0 removed the partial file
  EXPECT_FALSE(std::filesystem::exists(out));
  EXPECT_FALSE(std::filesystem::exists(H5Output::partial_name(out)));
}

}  // namespace

int main(int argc, char** argv) { return sfc::test::run_mpi_tests(argc, argv); }
