// sfc::reduce::summarize under `mpirun -np 3` (ctest label mpi) on synthetic results files: the same
// /summary on 3 ranks as on one (bit for bit), with more ranks than leaves, with no pairs at all, and
// a bad file failing on every rank alike. tests/cli/check_reduce.py checks the numbers with numpy.
#include <gtest/gtest.h>
#include <mpi.h>

#include <cmath>
#include <limits>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "sfc/core/error.h"
#include "sfc/h5/h5_file.h"
#include "sfc/schema/results_schema.h"
#include "sfc/reduce/reduce.h"
#include "support/mpi_test_support.h"
#include "support/cli_support.h"

namespace {

namespace fs = std::filesystem;
namespace sc = sfc::schema;
using sfc::test::TempDir;

using sfc::test::mpi_rank;
using sfc::test::world;

using sfc::test::SharedTempDir;

// A results file with random scores: NaN past each pair's length and here and there, exact zeros
// (ties) before position 2, latent sums for the resid site only. Rank 0 writes it.
void write_synthetic(const fs::path& path, int64_t N, int64_t L, int64_t T, int64_t F, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal;
  std::uniform_real_distribution<float> unit(0, 1);
  std::uniform_int_distribution<int64_t> length_of(std::max<int64_t>(1, T / 2), T);
  const float nan = std::numeric_limits<float>::quiet_NaN();
  auto f = sfc::h5::File::create(path);
  f.set_attribute(sc::kAttrSchemaVersion, sc::kSchemaVersion);
  f.set_attribute(sc::kAttrNPairs, std::to_string(N));
  f.set_attribute(sc::kAttrNLayer, std::to_string(L));
  f.set_attribute(sc::kAttrNTokens, std::to_string(T));
  for (sfc::Site site : sfc::kAllSites)
    f.set_attribute(sc::attr_n_latents(site), site == sfc::Site::kResid ? std::to_string(F) : "0");
  std::vector<int32_t> length(N), answer(N);
  for (int64_t i = 0; i < N; ++i)
    answer[i] = static_cast<int32_t>((length[i] = static_cast<int32_t>(length_of(rng))) - 1);
  f.create_dataset(sc::path(sc::kPairs, sc::kAnswerPos), {sfc::h5::Dtype::kInt32, {N}}).write_all(answer);
  auto scores = [&](const std::string& where, float offset) {
    std::vector<float> x(N * L * T);
    for (int64_t i = 0; i < N; ++i)
      for (int64_t l = 0; l < L; ++l)
        for (int64_t t = 0; t < T; ++t) {
          float v = offset + normal(rng);
          if (t < 2) v = 0;
          if (t >= length[i] || unit(rng) < 0.05f) v = nan;
          x[(i * L + l) * T + t] = v;
        }
    f.create_dataset(where, {sfc::h5::Dtype::kFloat32, {N, L, T}}).write_all(x);
  };
  for (sfc::Site site : sfc::kAllSites)
    for (const auto& entry : sc::kSummaryErrorMetrics) scores(sc::path(sc::kError, site, entry), 0);
  for (const auto& entry : sc::kResidPostDatasets) scores(sc::path(sc::kResidPost, entry), 50);
  std::vector<int64_t> count(T, 0);
  for (int64_t i = 0; i < N; ++i)
    for (int64_t t = 0; t < length[i]; ++t) ++count[t];
  f.create_dataset(sc::path(sc::kLatents, sc::kLatentCount), {sfc::h5::Dtype::kInt64, {T}}).write_all(count);
  for (const auto* entry : {&sc::kAtpSum, &sc::kIgSum}) {
    std::vector<double> sums(L * T * F);
    for (int64_t l = 0; l < L; ++l)
      for (int64_t t = 0; t < T; ++t)
        for (int64_t j = 0; j < F; ++j)
          sums[(l * T + t) * F + j] = count[t] > 0 ? count[t] * double(normal(rng)) : std::nan("");
    f.create_dataset(sc::path(sc::kLatents, sfc::Site::kResid, *entry), {sfc::h5::Dtype::kFloat64, {L, T, F}})
        .write_all(sums);
  }
  f.close();
}

// Runs check_reduce.py on rank 0; every rank gets its exit status.
int check(const SharedTempDir& dir, const fs::path& file, const std::string& extra = "") {
  int status = 0;
  if (mpi_rank() == 0) {
    TempDir scratch;
    const auto r =
        sfc::test::run(sfc::test::python(sfc::test::quote(std::string(SFC_SOURCE_DIR) + "/tests/cli/check_reduce.py") +
                                         " " + sfc::test::quote(file.string()) + " " + extra),
                       scratch);
    status = r.status;
    if (status != 0) ADD_FAILURE() << r.err << r.out;
  }
  world().broadcast_bytes(&status, sizeof status, 0);
  return status;
}

// `file` on all ranks of the world, and a copy of it on rank 0 alone: the same summary.
void expect_same_on_world_and_one_rank(const SharedTempDir& dir, const fs::path& file, int64_t leaf_rows) {
  const fs::path alone = file.parent_path() / ("alone-" + file.filename().string());
  if (mpi_rank() == 0) fs::copy_file(file, alone);
  sfc::reduce::ReduceOptions options;
  options.leaf_rows = leaf_rows;
  options.topk = 4;
  const auto report = sfc::reduce::summarize(file, world(), options);
  EXPECT_EQ(report.n_ranks, 3);
  if (mpi_rank() == 0) sfc::reduce::summarize(alone, sfc::mpi::Comm(MPI_COMM_SELF), options);
  world().barrier();
  EXPECT_EQ(check(dir, file, "--same-as " + sfc::test::quote(alone.string())), 0);
}

TEST(ReduceMpi, ThreeRanksWriteTheSameSummaryAsOne) {
  SharedTempDir dir;
  if (mpi_rank() == 0) write_synthetic(dir / "a.h5", 41, 3, 7, 9, 1);
  world().barrier();
  expect_same_on_world_and_one_rank(dir, dir / "a.h5", 4);  // 11 leaves: 3 + 4 + 4, uneven tree nodes
}

TEST(ReduceMpi, MoreRanksThanLeavesAndNoPairs) {
  SharedTempDir dir;
  if (mpi_rank() == 0) {
    write_synthetic(dir / "two.h5", 2, 2, 5, 3, 2);   // 2 leaves for 3 ranks: rank 0 has none
    write_synthetic(dir / "none.h5", 0, 2, 5, 3, 3);  // no pairs: counts 0, NaN everywhere
  }
  world().barrier();
  expect_same_on_world_and_one_rank(dir, dir / "two.h5", 1);
  expect_same_on_world_and_one_rank(dir, dir / "none.h5", 1);
}

// Every rank fails; rank 0 reports the message (sfc::Error), the others end quietly (ExitStatus 1),
// so a user reads it once.
TEST(ReduceMpi, ABadFileFailsOnEveryRankAndRankZeroReportsIt) {
  SharedTempDir dir;
  const auto missing = dir / "missing.h5";
  try {
    sfc::reduce::summarize(missing, world(), {});
    ADD_FAILURE() << "no error";
  } catch (const sfc::Error& e) {
    EXPECT_EQ(mpi_rank(), 0) << e.what();
    EXPECT_NE(std::string(e.what()).find(missing.string() + ": no such file"), std::string::npos) << e.what();
  } catch (const sfc::ExitStatus& e) {
    EXPECT_NE(mpi_rank(), 0);
    EXPECT_EQ(e.status, 1);
  }
}

}  // namespace

int main(int argc, char** argv) { return sfc::test::run_mpi_tests(argc, argv); }
