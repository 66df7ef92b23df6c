// `sfc run` end to end on the gemma2-tiny fixture: the results file against Hugging Face's numbers
// (tests/cli/check_results.py, names from analysis/sfc_schema.py), h5dump, config handling, and
// one-line errors that leave no results file behind.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <fstream>
#include <sstream>
#include <string>

#include "support/cli_support.h"
#include "support/test_support.h"

namespace {

using sfc::test::TempDir;
namespace fs = std::filesystem;

using sfc::test::quote;
using sfc::test::read_text;
using sfc::test::Result;
using sfc::test::run;
using sfc::test::expect_no_output;
using sfc::test::expect_one_line_error;
using sfc::test::python;
using sfc::test::sfc;
std::string checker() { return quote(std::string(SFC_SOURCE_DIR) + "/tests/cli/check_results.py"); }
std::string reference() { return quote((sfc::test::tiny_dir() / "reference.npz").string()); }

// The three prompt pairs of reference.npz (tokens_clean/tokens_patch, correct_id = clean answer,
// wrong_id = patch answer), then the first 7 tokens of pair 2 with two patch answers: alone in the
// last batch of 3 it has T_batch = 7 < T = 12.
const char* kPairs =
    R"({"clean_ids": [2, 37, 122, 180, 133, 22, 272, 272, 256, 164, 184, 107], "patch_ids": [2, 37, 122, 286, 133, 22, 272, 272, 256, 164, 184, 107], "clean_answer_id": 175, "patch_answer_id": 23}
{"clean_ids": [2, 228, 208, 132, 206, 279, 38, 65, 119, 208, 93, 63], "patch_ids": [2, 229, 160, 132, 206, 279, 38, 65, 119, 208, 93, 63], "clean_answer_id": 7, "patch_answer_id": 25}
{"clean_ids": [2, 14, 212, 160, 138, 50, 253, 7, 211, 127, 20, 70], "patch_ids": [2, 14, 212, 160, 138, 85, 253, 7, 211, 123, 20, 70], "clean_answer_id": 128, "patch_answer_id": 133}

{"clean_ids": [2, 14, 212, 160, 138, 50, 253], "patch_ids": [2, 14, 212, 160, 138, 85, 253], "clean_answer_id": 128, "patch_answer_id": [133, 23]}
)";

// A run folder: pairs.jsonl and run.ini pointing at the fixture, output out.h5.
struct RunDir {
  TempDir dir;
  fs::path ini = dir / "run.ini", pairs = dir / "pairs.jsonl", out = dir / "out.h5";
  explicit RunDir(const std::string& pairs_text = kPairs, const std::string& extra = "") {
    std::ofstream(pairs) << pairs_text;
    std::ofstream(ini) << "# gemma2-tiny\n[model]\npath = " << (sfc::test::tiny_dir() / "model").string()
                       << "\ndevice = cpu\n[sae]\npath = " << (sfc::test::tiny_dir() / "saes").string()
                       << "\n[data]\npairs = " << pairs.string() << "\nbatch_size = 3\n[output]\npath = "
                       << out.string() << "\n[run]\nthreads = 1\n"
                       << extra;
  }
  std::string base() const { return sfc("run --config " + quote(ini.string())); }
};

TEST(RunCommand, FixtureMatchesHuggingFace) {
  RunDir d;
  auto r = run(d.base(), d.dir);
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_TRUE(fs::exists(d.out));
  EXPECT_FALSE(fs::exists(d.out.string() + ".partial"));
  // stderr is a file here, not a terminal: no bar, and within run.progress_seconds only the last line.
  EXPECT_NE(r.err.find("sfc run: 4/4 pairs (100.0%), 2/2 batches, "), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("pairs/s"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find('\r'), std::string::npos) << r.err;

  // The same pairs one by one, with every latent score stored.
  const auto full = d.dir / "full.h5";
  r = run(d.base() + " --data.batch_size=1 --output.latents=full --output.path=" + quote(full.string()), d.dir);
  ASSERT_EQ(r.status, 0) << r.err;

  // sfc_version: the project version of CMakeLists.txt, as the build passed it to this test.
  auto check = run(python(checker() + " " + quote(d.out.string()) + " --reference " + reference() +
                          " 0:0 1:1 2:2 --short 3:7 --same-sums " + quote(full.string()) +
                          " --version " + SFC_PROJECT_VERSION),
                   d.dir);
  EXPECT_EQ(check.status, 0) << check.err << check.out;
  check = run(python(checker() + " " + quote(full.string()) + " --reference " + reference() +
                     " 0:0 1:1 2:2 --short 3:7 --full-sums"),
              d.dir);
  EXPECT_EQ(check.status, 0) << check.err << check.out;

  const auto dump = run("h5dump -H " + quote(d.out.string()), d.dir);
  EXPECT_EQ(dump.status, 0) << dump.err;
  EXPECT_NE(dump.out.find("DATASET \"atp_topk_index\""), std::string::npos);
}

TEST(RunCommand, OnlySomeEnginesAndSitesStillWriteEverySchemaDataset) {
  RunDir d;
  const auto r = run(d.base() + " --run.engines=atp --sae.sites=attn --sae.layers=1,3 --output.latents=none" +
                         " --run.progress_seconds=0",
                     d.dir);
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.err.find("4/4 pairs"), std::string::npos) << "progress_seconds = 0 prints no progress: " << r.err;
  const std::string script =
      "import sys, numpy as np, h5py; sys.path.insert(0, sys.argv[2]); import sfc_schema as S\n"
      "f = h5py.File(sys.argv[1], 'r')\n"
      "assert f.attrs[S.attr_n_latents('resid')] == '0' and S.LATENTS + '/resid' not in f\n"
      "assert np.isnan(f[S.error_path('resid', 'atp')][()]).all()\n"
      "assert np.isnan(f[S.error_path('attn', 'ig')][()]).all()\n"
      "a = f[S.error_path('attn', 'atp')][()]\n"
      "assert np.isnan(a[:, [0, 2]]).all() and not np.isnan(a[:3, [1, 3]]).any(), a\n"
      "assert S.config_value(f, 'run.engines') == 'atp'\n";
  std::ofstream(d.dir / "check.py") << script;
  auto check = run(python(checker() + " " + quote(d.out.string())), d.dir);
  EXPECT_EQ(check.status, 0) << check.err;
  check = run(python(quote((d.dir / "check.py").string()) + " " + quote(d.out.string()) + " " +
                     quote(std::string(SFC_SOURCE_DIR) + "/analysis")),
              d.dir);
  EXPECT_EQ(check.status, 0) << check.err;
}

TEST(RunCommand, PrintConfigShowsOverrides) {
  RunDir d;
  const auto r = run(d.base() + " --ig.steps=4 --patch.positions=-1 --print-config", d.dir);
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("[ig]\nsteps = 4\n"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("positions = -1\n"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("batch_size = 3\n"), std::string::npos) << r.out;  // from the file
  expect_no_output(d.out);
}

// --print-config and --help are answered by the front alone: neither LibTorch nor MPI is loaded
// (the dynamic loader lists every library it opens under LD_DEBUG=files), while a real command
// loads libsfc_commands.so and LibTorch with it.
TEST(RunCommand, PrintConfigAndHelpLoadNeitherLibTorchNorMpi) {
  RunDir d;
  for (const std::string flags : {" --print-config", " --help"}) {
    const auto r = run("LD_DEBUG=files " + d.base() + flags, d.dir);
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_EQ(r.err.find("libtorch"), std::string::npos) << flags;
    EXPECT_EQ(r.err.find("libmpi"), std::string::npos) << flags;
    EXPECT_EQ(r.err.find("libsfc_commands"), std::string::npos) << flags;
  }
  const auto version = run("LD_DEBUG=files " + sfc("--version"), d.dir);
  ASSERT_EQ(version.status, 0) << version.err;
  EXPECT_NE(version.err.find("libsfc_commands.so"), std::string::npos);
  EXPECT_NE(version.err.find("libtorch_cpu"), std::string::npos);
}

TEST(RunCommand, UnknownKeysAndBadValues) {
  RunDir d("", "[ig]\nsteps = 2\nstep_size = 3\n");
  auto r = run(d.base(), d.dir);
  EXPECT_EQ(r.status, 2);
  expect_one_line_error(r, {"ig.step_size", "run.ini"});
  RunDir good;
  r = run(good.base() + " --patch.modes=global", good.dir);
  EXPECT_EQ(r.status, 2);
  expect_one_line_error(r, {"patch.modes"});
  r = run(good.base() + " --patch.mode=sometimes", good.dir);
  EXPECT_EQ(r.status, 1);
  expect_one_line_error(r, {"patch.mode", "sometimes"});
  r = run(good.base() + " --data.batch_size=many", good.dir);
  EXPECT_EQ(r.status, 2);
  expect_one_line_error(r, {"data.batch_size", "many"});
  r = run(good.base() + " --sae.layers=2,9", good.dir);
  EXPECT_EQ(r.status, 1);
  expect_one_line_error(r, {"sae.layers", "9", "4 layers"});
  r = run(good.base() + " --sae.path=" + quote((good.dir / "no-saes").string()), good.dir);
  EXPECT_EQ(r.status, 1);
  expect_one_line_error(r, {"no-saes"});
  r = run(good.base() + " --model.dtype=fp64", good.dir);
  EXPECT_EQ(r.status, 1);
  expect_one_line_error(r, {"model.dtype", "fp64"});
  r = run(sfc("run --model.path=m --sae.path=s --data.pairs=p"), good.dir);
  EXPECT_EQ(r.status, 1);
  expect_one_line_error(r, {"output.path"});
  expect_no_output(good.out);
  r = run(good.base() + " --output.path=" + quote((good.dir / "no/dir/o.h5").string()), good.dir);
  EXPECT_EQ(r.status, 1);
  expect_one_line_error(r, {"output.path", "does not exist"});
}

TEST(RunCommand, MalformedPairsFileNamesItsLineAndLeavesNoFile) {
  std::string pairs = kPairs;
  pairs.insert(pairs.find('\n') + 1, "{\"clean_ids\": [2, 5, 6], \"patch_ids\": [2, 5\n");
  RunDir d(pairs);
  auto r = run(d.base(), d.dir);
  EXPECT_EQ(r.status, 1);
  expect_one_line_error(r, {"pairs.jsonl:2"});
  expect_no_output(d.out);

  // With on_bad_record = skip the run goes on, and the file says what was skipped.
  r = run(d.base() + " --data.on_bad_record=skip", d.dir);
  ASSERT_EQ(r.status, 0) << r.err;
  const std::string script =
      "import sys, h5py; f = h5py.File(sys.argv[1], 'r')\n"
      "a = f['pairs'].attrs; assert a['n_skipped'] == '1', dict(a); assert 'pairs.jsonl:2' in a['skip_reasons']\n"
      "assert f['pairs/length'].shape == (4,)\n";
  const auto check = run(python("-c " + quote(script) + " " + quote(d.out.string())), d.dir);
  EXPECT_EQ(check.status, 0) << check.err;
}

TEST(RunCommand, Help) {
  TempDir dir;
  auto r = run(sfc("run --help"), dir);
  EXPECT_EQ(r.status, 0);
  EXPECT_NE(r.out.find("--patch.positions"), std::string::npos);
  EXPECT_NE(r.out.find("--print-config"), std::string::npos);
  r = run(sfc("--help"), dir);
  EXPECT_NE(r.out.find("run "), std::string::npos);
}

}  // namespace
