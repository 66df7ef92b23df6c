// `sfc reduce` end to end: `sfc run` on the gemma2-tiny fixture config, then the reduction pass alone
// and under mpiexec with 1 and 3 ranks. tests/cli/check_reduce.py recomputes /summary and the CSV
// with numpy and checks that 1 and 3 ranks wrote bit-identical summaries; errors are one line.
#include <gtest/gtest.h>

#include <fstream>
#include <memory>
#include <string>

#include "support/cli_support.h"
#include "support/test_support.h"

namespace {

namespace fs = std::filesystem;
using sfc::test::expect_one_line_error;
using sfc::test::python;
using sfc::test::quote;
using sfc::test::Result;
using sfc::test::run;
using sfc::test::sfc;
using sfc::test::TempDir;

std::string script(const char* name) { return quote(std::string(SFC_SOURCE_DIR) + "/tests/cli/" + name); }
std::string mpiexec(int ranks) { return std::string(SFC_MPIEXEC) + " -np " + std::to_string(ranks) + " "; }

// The three prompt pairs of the fixture and two shorter cuts of them, so that answer positions
// differ between pairs (7, 9, 11) and positions past a short prompt are NaN.
const char* kPairs =
    R"({"clean_ids": [2, 37, 122, 180, 133, 22, 272, 272, 256, 164, 184, 107], "patch_ids": [2, 37, 122, 286, 133, 22, 272, 272, 256, 164, 184, 107], "clean_answer_id": 175, "patch_answer_id": 23}
{"clean_ids": [2, 228, 208, 132, 206, 279, 38, 65, 119, 208, 93, 63], "patch_ids": [2, 229, 160, 132, 206, 279, 38, 65, 119, 208, 93, 63], "clean_answer_id": 7, "patch_answer_id": 25}
{"clean_ids": [2, 14, 212, 160, 138, 50, 253, 7, 211, 127, 20, 70], "patch_ids": [2, 14, 212, 160, 138, 85, 253, 7, 211, 123, 20, 70], "clean_answer_id": 128, "patch_answer_id": 133}
{"clean_ids": [2, 14, 212, 160, 138, 50, 253, 7], "patch_ids": [2, 14, 212, 160, 138, 85, 253, 7], "clean_answer_id": 128, "patch_answer_id": [133, 23]}
{"clean_ids": [2, 37, 122, 180, 133, 22, 272, 272, 256, 164], "patch_ids": [2, 37, 122, 286, 133, 22, 272, 272, 256, 164], "clean_answer_id": 175, "patch_answer_id": 23}
)";

// One `sfc run` of configs/gemma2-tiny.ini on kPairs, shared by the tests (read-only: each test reduces a copy).
class ReduceCommand : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = std::make_unique<TempDir>();
    std::ofstream(*dir_ / "pairs.jsonl") << kPairs;
    results_ = new Result(run_sfc("run.h5", ""));
  }
  static void TearDownTestSuite() {
    delete results_;
    dir_.reset();
  }
  // `sfc run` of the fixture config from the source folder (its paths are relative to it).
  static Result run_sfc(const std::string& out, const std::string& extra) {
    return run(
        "cd " + quote(SFC_SOURCE_DIR) + " && " +
            sfc("run --config configs/gemma2-tiny.ini --data.pairs=" + quote((*dir_ / "pairs.jsonl").string()) +
                " --data.batch_size=2 --run.threads=1 --output.path=" + quote((*dir_ / out).string()) + " " + extra),
        *dir_);
  }
  void SetUp() override { ASSERT_EQ(results_->status, 0) << results_->err; }
  // A fresh copy of the shared results file in this test's folder.
  fs::path copy(const std::string& name) const {
    const fs::path to = dir / name;
    fs::copy_file(*dir_ / "run.h5", to);
    return to;
  }
  Result check(const fs::path& file, const std::string& extra = "") const {
    return run(python(script("check_reduce.py") + " " + quote(file.string()) + " " + extra), dir);
  }

  static std::unique_ptr<TempDir> dir_;
  static Result* results_;
  TempDir dir;
};
std::unique_ptr<TempDir> ReduceCommand::dir_;
Result* ReduceCommand::results_ = nullptr;

TEST_F(ReduceCommand, MatchesNumpyAndOneAndThreeRanksAgreeBitForBit) {
  // Without mpiexec (a world of one), default options.
  const auto alone = copy("alone.h5");
  auto r = run(sfc("reduce " + quote(alone.string())), dir);
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("wrote /summary (5 pairs, L = 4, T = 12)"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("alone.summary.csv"), std::string::npos) << r.out;
  EXPECT_TRUE(fs::exists(dir / "alone.summary.csv"));
  auto c = check(alone);
  EXPECT_EQ(c.status, 0) << c.err << c.out;

  // One pair per leaf, so that three ranks split the five pairs 1 + 2 + 2 and merge across ranks.
  const auto one = copy("one.h5"), three = copy("three.h5");
  r = run(mpiexec(1) + sfc("reduce --leaf-rows=1 --topk=5 " + quote(one.string())), dir);
  ASSERT_EQ(r.status, 0) << r.err;
  r = run(mpiexec(3) + sfc("reduce --leaf-rows=1 --topk=5 " + quote(three.string())), dir);
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.err.find("3 rank(s)"), std::string::npos) << r.err;
  c = check(three, "--same-as " + quote(one.string()));
  EXPECT_EQ(c.status, 0) << c.err << c.out;
  c = check(one);
  EXPECT_EQ(c.status, 0) << c.err << c.out;

  // The rest of the file is still a valid results file.
  c = run(python(script("check_results.py") + " " + quote(three.string())), dir);
  EXPECT_EQ(c.status, 0) << c.err << c.out;
}

TEST_F(ReduceCommand, RerunOverwritesTheSummaryWhateverTheTopk) {
  // `sfc run` has already written a /summary (topk 32); each pass overwrites the last one.
  const auto file = copy("again.h5");
  for (const std::string options : {"--topk=3", "--topk=3 --leaf-rows=2", "--topk=40 --no-csv"}) {
    const auto r = run(mpiexec(2) + sfc("reduce " + options + " " + quote(file.string())), dir);
    ASSERT_EQ(r.status, 0) << options << ": " << r.err;
    // The CSV left by the pass before --no-csv is not this pass's.
    const auto c = check(file, options.find("--no-csv") != std::string::npos ? "--no-csv" : "");
    EXPECT_EQ(c.status, 0) << options << ": " << c.err << c.out;
  }
}

TEST_F(ReduceCommand, PartialRunHasNanWhereNothingWasComputed) {
  // Only AtP, only attn at layers 1 and 3, no latents: IG and patching are NaN, so every correlation
  // with them is NaN and the AtP statistics exist only for those layers.
  const auto r0 = run_sfc("partial.h5", "--run.engines=atp --sae.sites=attn --sae.layers=1,3 --output.latents=none");
  ASSERT_EQ(r0.status, 0) << r0.err;
  const auto file = dir / "partial.h5";
  fs::copy_file(*dir_ / "partial.h5", file);
  const auto r = run(mpiexec(2) + sfc("reduce --leaf-rows=1 " + quote(file.string())), dir);
  ASSERT_EQ(r.status, 0) << r.err;
  const auto c = check(file);
  EXPECT_EQ(c.status, 0) << c.err << c.out;
  const std::string probe =
      "import sys, numpy as np, h5py; sys.path.insert(0, sys.argv[2]); import sfc_schema as S\n"
      "f = h5py.File(sys.argv[1], 'r')\n"
      "m = f[S.summary_metric_path('attn', 'atp', 'mean')][()]\n"
      "assert np.isnan(m[[0, 2]]).all() and np.isfinite(m[[1, 3], :8]).all(), m\n"
      "assert (f[S.summary_metric_path('attn', 'ig', 'count')][()] == 0).all()\n"
      "assert np.isnan(f[S.summary_corr_path('attn', 'layer', 'pearson_atp_patch')][()]).all()\n"
      "assert S.summary_latents_path('resid', 'atp_mean') not in f\n"
      "assert (f[S.summary_latents_path('attn', 'topk_index')][()] == -1).all()\n"
      "assert np.isnan(f[S.summary_latents_path('attn', 'ig_mean')][()]).all()\n";
  const auto p = run(python("-c " + quote(probe) + " " + quote(file.string()) + " " +
                            quote(std::string(SFC_SOURCE_DIR) + "/analysis")),
                     dir);
  EXPECT_EQ(p.status, 0) << p.err;
}

TEST_F(ReduceCommand, BadFilesAreOneLineErrorsNamingTheFile) {
  const auto missing = dir / "missing.h5";
  auto r = run(sfc("reduce " + quote(missing.string())), dir);
  EXPECT_EQ(r.status, 1);
  expect_one_line_error(r, {missing.string(), "no such file"});

  const auto text = dir / "notes.h5";
  std::ofstream(text) << "not HDF5\n";
  r = run(sfc("reduce " + quote(text.string())), dir);
  EXPECT_EQ(r.status, 1);
  expect_one_line_error(r, {text.string(), "not an HDF5 file"});

  const auto other = dir / "other.h5";
  const auto made = run(python("-c " + quote("import h5py, sys; h5py.File(sys.argv[1], 'w')['x'] = [1, 2]") + " " +
                               quote(other.string())),
                        dir);
  ASSERT_EQ(made.status, 0) << made.err;
  r = run(sfc("reduce " + quote(other.string())), dir);
  EXPECT_EQ(r.status, 1);
  expect_one_line_error(r, {other.string(), "not an `sfc run` results file"});
  EXPECT_FALSE(fs::exists(dir / "other.summary.csv"));

  // Under mpiexec every rank fails the same way, and the job exits 1.
  r = run(mpiexec(2) + sfc("reduce " + quote(missing.string())), dir);
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.err.find("no such file"), std::string::npos) << r.err;
}

TEST_F(ReduceCommand, UsageAndBadArguments) {
  auto r = run(sfc("reduce --help"), dir);
  EXPECT_EQ(r.status, 0);
  EXPECT_NE(r.out.find("Usage: sfc reduce FILE"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("--topk"), std::string::npos) << r.out;
  r = run(sfc("--help"), dir);
  EXPECT_NE(r.out.find("reduce "), std::string::npos) << r.out;

  r = run(sfc("reduce"), dir);
  EXPECT_EQ(r.status, 2);
  expect_one_line_error(r, {"sfc reduce", "FILE"});
  for (const char* bad : {"--topk=0 x.h5", "--topk=many x.h5", "--leaf-rows=0 x.h5", "--bogus x.h5", "a.h5 b.h5"}) {
    r = run(sfc(std::string("reduce ") + bad), dir);
    EXPECT_EQ(r.status, 2) << bad;
    expect_one_line_error(r, {"sfc reduce"});
  }
}

}  // namespace
