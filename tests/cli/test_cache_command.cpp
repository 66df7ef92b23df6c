// `sfc cache` end to end: runs the built binary on the gemma2-tiny fixture, checks the HDF5 output
// against Hugging Face's numbers with tests/cli/check_cache.py, and checks exit codes and one-line
// error messages for bad input.
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
std::string model_dir() { return (sfc::test::tiny_dir() / "model").string(); }


// Clean prompts 0 and 1 of reference.npz (inputs, copied here), and the first 7 tokens of prompt 2,
// so that one batch of two has right padding.
const char* kFixtureIds =
    "2,37,122,180,133,22,272,272,256,164,184,107;"
    "2,228,208,132,206,279,38,65,119,208,93,63;"
    "2,14,212,160,138,50,253";

TEST(CacheCommand, FixtureIdsMatchHuggingFace) {
  TempDir dir;
  const auto out = dir / "cache.h5";
  const auto r = run(sfc("cache --model " + quote(model_dir()) + " --ids '" + kFixtureIds + "' --out " +
                         quote(out.string()) + " --batch-size 2 --device cpu --dtype fp32 --threads 1"),
                     dir);
  ASSERT_EQ(r.status, 0) << r.err;
  ASSERT_TRUE(fs::exists(out));
  EXPECT_FALSE(fs::exists(out.string() + ".partial"));
  const auto check = run(python(quote(std::string(SFC_SOURCE_DIR) + "/tests/cli/check_cache.py") + " " +
                                quote(out.string()) + " " +
                                quote((sfc::test::tiny_dir() / "reference.npz").string()) + " 0:0:12 1:1:12 2:2:7"),
                         dir);
  EXPECT_EQ(check.status, 0) << check.err << check.out;
}

TEST(CacheCommand, TokenizesAndRunsTheModelInOneProcess) {
  TempDir dir;
  {
    std::ofstream corpus(dir / "corpus.txt");
    for (int r = 0; r < 5; ++r)
      for (const char* s : {"The doctor", "The doctors", "The cat", "The cats", "The author"})
        for (const char* v : {"goes", "go", "likes", "like", "writes"})
          corpus << s << " that the executive likes " << v << " home.\n";
  }
  auto r = run(sfc("tokenizer-train --corpus " + quote((dir / "corpus.txt").string()) + " --prefix " +
                   quote((dir / "tiny").string()) + " --vocab 250"),
               dir);
  ASSERT_EQ(r.status, 0) << r.err;
  const auto out = dir / "x.h5";
  r = run(sfc("cache --model " + quote(model_dir()) + " --tokenizer " + quote((dir / "tiny.model").string()) +
              " --prompt 'The doctors that the executive likes' --prompt 'The cat goes' --out " + quote(out.string())),
          dir);
  ASSERT_EQ(r.status, 0) << r.err;
  const std::string script =
      "import h5py,sys; f=h5py.File(sys.argv[1],'r'); t=f['tokens'][()]; n=f['lengths'][()];"
      "assert t.shape[0]==2 and (t[:,0]==2).all(), t; assert (n>1).all(), n;"
      "assert f.attrs['tokenizer'].endswith('tiny.model'), dict(f.attrs);"
      "import numpy as np; assert not np.isnan(f['logits'][0,:n[0]]).any()";
  const auto check = run(python("-c " + quote(script) + " " + quote(out.string())), dir);
  EXPECT_EQ(check.status, 0) << check.err;
}

TEST(CacheCommand, MissingModelFolder) {
  TempDir dir;
  const auto out = dir / "x.h5";
  const auto r = run(sfc("cache --model " + quote((dir / "no-such-model").string()) + " --ids '2,5' --out " +
                         quote(out.string())),
                     dir);
  EXPECT_EQ(r.status, 1);
  expect_one_line_error(r, {"no-such-model"});
  expect_no_output(out);
}

TEST(CacheCommand, TokenIdOutsideVocabulary) {
  TempDir dir;
  const auto out = dir / "x.h5";
  const auto r = run(sfc("cache --model " + quote(model_dir()) + " --ids '2,5,7;2,300' --out " + quote(out.string())),
                     dir);
  EXPECT_NE(r.status, 0);
  expect_one_line_error(r, {"prompt 1", "300", "vocabulary"});
  expect_no_output(out);
}

TEST(CacheCommand, EmptyOrMalformedIds) {
  TempDir dir;
  const auto out = dir / "x.h5";
  auto r = run(sfc("cache --model " + quote(model_dir()) + " --ids '2,5;' --out " + quote(out.string())), dir);
  EXPECT_EQ(r.status, 2);
  expect_one_line_error(r, {"prompt 1", "empty"});
  r = run(sfc("cache --model " + quote(model_dir()) + " --ids '2,x5' --out " + quote(out.string())), dir);
  EXPECT_EQ(r.status, 2);
  expect_one_line_error(r, {"prompt 0", "x5"});
  expect_no_output(out);
}

TEST(CacheCommand, MissingTokenizerNamesTheFile) {
  TempDir dir;
  const auto out = dir / "x.h5";
  const auto r = run(sfc("cache --model " + quote(model_dir()) + " --prompt 'hello' --out " + quote(out.string())),
                     dir);
  EXPECT_EQ(r.status, 1);
  expect_one_line_error(r, {"tokenizer.model"});
  expect_no_output(out);
}

TEST(CacheCommand, UsageErrors) {
  TempDir dir;
  auto r = run(sfc("frobnicate"), dir);
  EXPECT_EQ(r.status, 2);
  expect_one_line_error(r, {"frobnicate"});
  r = run(sfc("cache --model " + quote(model_dir()) + " --ids '2,5'"), dir);  // no --out
  EXPECT_EQ(r.status, 2);
  expect_one_line_error(r, {"--out"});
  r = run(sfc("cache --model m --ids 2 --prompt x --out o.h5"), dir);  // both inputs
  EXPECT_EQ(r.status, 2);
  r = run(sfc("cache --model " + quote(model_dir()) + " --ids 2,5 --out " + quote((dir / "no/dir/o.h5").string())),
          dir);
  EXPECT_EQ(r.status, 1);
  expect_one_line_error(r, {"no/dir", "does not exist"});
  r = run(sfc("cache --no-such-flag"), dir);
  EXPECT_EQ(r.status, 2);
  expect_one_line_error(r, {"no-such-flag"});
  r = run(sfc("cache --model " + quote(model_dir()) + " --ids 2,5 --out " + quote((dir / "o.h5").string()) +
              " --dtype fp64"),
          dir);
  EXPECT_EQ(r.status, 1);
  expect_one_line_error(r, {"--dtype", "fp64"});
}

TEST(CacheCommand, HelpAndVersion) {
  TempDir dir;
  auto r = run(sfc("--help"), dir);
  EXPECT_EQ(r.status, 0);
  EXPECT_NE(r.out.find("cache"), std::string::npos);
  r = run(sfc("cache --help"), dir);
  EXPECT_EQ(r.status, 0);
  EXPECT_NE(r.out.find("--batch-size"), std::string::npos);
  r = run(sfc("--version"), dir);
  EXPECT_EQ(r.status, 0);
  EXPECT_EQ(r.out.rfind("sfc ", 0), 0u) << r.out;
}

}  // namespace
