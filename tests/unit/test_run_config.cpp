// `sfc run` configuration: INI + --section.key overrides, unknown keys, bad values, round trip of the
// resolved text, and the mapping to the engines' options.
#include <gtest/gtest.h>

#include <fstream>

#include "sfc/app/config.h"
#include "sfc/engines/engine_types.h"
#include "sfc/core/error.h"
#include "support/test_support.h"

namespace sfc::app {
namespace {

using sfc::test::TempDir;

std::string write_file(const TempDir& dir, const std::string& name, const std::string& text) {
  const auto path = dir / name;
  std::ofstream(path) << text;
  return path.string();
}

const char* kIni =
    "[model]\npath = /models/gemma\ndtype = bf16\n"
    "[sae]\npath = /saes\nsites = resid, attn\nlayers = 3,1\n"
    "[data]\npairs = pairs.jsonl\nbatch_size = 4\n"
    "[output]\npath = out.h5\n";

// Expects `fn` to throw an sfc::Error of type E whose one-line message contains every needle.
template <typename E, typename Fn>
void expect_error(Fn fn, std::initializer_list<std::string> needles) {
  try {
    fn();
    FAIL() << "no error thrown";
  } catch (const E& e) {
    const std::string msg = e.what();
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
    for (const auto& n : needles) EXPECT_NE(msg.find(n), std::string::npos) << "'" << n << "' not in: " << msg;
  }
}

TEST(RunConfig, FileThenOverridesWin) {
  TempDir dir;
  const auto ini = write_file(dir, "a.ini", kIni);
  const auto parsed = parse_run_command_line({"--config", ini, "--data.batch_size=16", "--ig.steps", "3"});
  const auto& c = parsed.config;
  EXPECT_EQ(c.model.path, "/models/gemma");
  EXPECT_EQ(c.model.dtype, "bf16");
  EXPECT_EQ(c.model.device, "cpu");  // default
  EXPECT_EQ(c.data.batch_size, 16);  // CLI beats file
  EXPECT_EQ(c.ig.steps, 3);
  EXPECT_EQ(c.run.engines, "atp,ig,patch");
  EXPECT_EQ(c.output.topk, 32);
  EXPECT_EQ(c.tokenizer_path(), std::filesystem::path("/models/gemma/tokenizer.model"));
  EXPECT_FALSE(parsed.print_config);

  const auto options = c.engine_options();
  EXPECT_EQ(options.sites, (std::vector<Site>{Site::kResid, Site::kAttn}));
  EXPECT_EQ(options.layers, (std::vector<int64_t>{1, 3}));
  EXPECT_EQ(options.ig_steps, 3);
  EXPECT_TRUE(options.patch_positions.all);
  EXPECT_TRUE(options.patch_per_position);
  EXPECT_TRUE(options.patch_global);
  EXPECT_TRUE(options.latents);
}

TEST(RunConfig, EngineOptionsMapping) {
  TempDir dir;
  const auto ini = write_file(dir, "a.ini", kIni);
  const auto c = parse_run_command_line({"--config", ini, "--patch.positions=-1, 0,2", "--patch.mode=global",
                                         "--output.latents=none", "--patch.max_rows=8", "--sae.layers=all"})
                     .config;
  const auto options = c.engine_options();
  EXPECT_FALSE(options.patch_positions.all);
  EXPECT_EQ(options.patch_positions.list, (std::vector<int64_t>{-1, 0, 2}));
  EXPECT_FALSE(options.patch_per_position);
  EXPECT_TRUE(options.patch_global);
  EXPECT_FALSE(options.latents);
  EXPECT_EQ(options.max_rows, 8);
  EXPECT_TRUE(options.layers.empty());
  EXPECT_EQ(c.output.latent_output(), engines::LatentOutput::kNone);
  EXPECT_FALSE(c.run.has_engine("pat"));
  EXPECT_TRUE(c.run.has_engine("patch"));
}

TEST(RunConfig, UnknownKeysNameTheKey) {
  TempDir dir;
  const auto ini = write_file(dir, "bad.ini", std::string(kIni) + "[data]\nbatchsize = 3\n");
  expect_error<UsageError>([&] { parse_run_command_line({"--config", ini}); }, {"data.batchsize", "bad.ini"});
  const auto good = write_file(dir, "good.ini", kIni);
  expect_error<UsageError>([&] { parse_run_command_line({"--config", good, "--model.dtyp=bf16"}); },
                           {"model.dtyp"});
  const auto section = write_file(dir, "section.ini", std::string(kIni) + "[models]\npath = x\n");
  expect_error<UsageError>([&] { parse_run_command_line({"--config", section}); }, {"models.path"});
}

TEST(RunConfig, BadValuesNameKeyAndValue) {
  TempDir dir;
  const auto ini = write_file(dir, "a.ini", kIni);
  auto with = [&](const std::string& flag) { return parse_run_command_line({"--config", ini, flag}); };
  expect_error<UsageError>([&] { with("--data.batch_size=abc"); }, {"data.batch_size", "abc"});
  expect_error<ConfigError>([&] { with("--data.batch_size=0"); }, {"data.batch_size", "0"});
  expect_error<ConfigError>([&] { with("--model.dtype=fp64"); }, {"model.dtype", "fp64"});
  expect_error<ConfigError>([&] { with("--model.device=gpu"); }, {"model.device", "gpu"});
  expect_error<ConfigError>([&] { with("--sae.sites=resid,foo"); }, {"sae.sites", "foo"});
  expect_error<ConfigError>([&] { with("--sae.sites=resid,resid"); }, {"sae.sites", "twice"});
  expect_error<ConfigError>([&] { with("--sae.layers=1,-2"); }, {"sae.layers", "-2"});
  expect_error<ConfigError>([&] { with("--sae.layers=1,,2"); }, {"sae.layers", "empty"});
  expect_error<ConfigError>([&] { with("--sae.l0=big"); }, {"sae.l0", "big"});
  expect_error<ConfigError>([&] { with("--run.engines=atp,magic"); }, {"run.engines", "magic"});
  expect_error<ConfigError>([&] { with("--ig.steps=0"); }, {"ig.steps", "0"});
  expect_error<ConfigError>([&] { with("--patch.positions=1,x"); }, {"patch.positions", "x"});
  expect_error<ConfigError>([&] { with("--patch.mode=some"); }, {"patch.mode", "some"});
  expect_error<ConfigError>([&] { with("--output.latents=all"); }, {"output.latents", "all"});
  expect_error<ConfigError>([&] { with("--output.topk=-3"); }, {"output.topk", "-3"});
  expect_error<ConfigError>([&] { with("--data.on_bad_record=ignore"); }, {"data.on_bad_record", "ignore"});
  const auto bad_file = write_file(dir, "b.ini", std::string(kIni) + "[ig]\nsteps = ten\n");
  expect_error<UsageError>([&] { parse_run_command_line({"--config", bad_file}); }, {"ig.steps", "ten", "b.ini"});
}

TEST(RunConfig, RequiredKeysAndMissingFile) {
  expect_error<ConfigError>([] { parse_run_command_line({"--model.path=m", "--sae.path=s", "--data.pairs=p"}); },
                            {"output.path"});
  expect_error<ConfigError>([] { parse_run_command_line({}); }, {"model.path"});
  expect_error<LoadError>([] { parse_run_command_line({"--config", "/no/such/file.ini"}); }, {"/no/such/file.ini"});
  // Printing a config needs no paths, but still checks values.
  EXPECT_TRUE(parse_run_command_line({"--print-config"}).print_config);
  expect_error<ConfigError>([] { parse_run_command_line({"--print-config", "--ig.steps=0"}); }, {"ig.steps"});
  EXPECT_TRUE(parse_run_command_line({"--help"}).help);
}

TEST(RunConfig, ResolvedTextParsesBackToTheSameConfig) {
  TempDir dir;
  const auto ini = write_file(dir, "a.ini", kIni);
  const auto first = parse_run_command_line({"--config", ini, "--patch.positions=-1,2", "--output.topk=5"}).config;
  const std::string text = first.to_string();
  EXPECT_NE(text.find("[patch]\npositions = -1,2\n"), std::string::npos) << text;
  EXPECT_NE(text.find("topk = 5"), std::string::npos) << text;
  const auto again = write_file(dir, "resolved.ini", text);
  EXPECT_EQ(parse_run_command_line({"--config", again}).config.to_string(), text);
}

}  // namespace
}  // namespace sfc::app
