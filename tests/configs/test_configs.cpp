// The shipped configs/*.ini and the command-line surface of `sfc`, through the built binary. The
// configs are listed when the test runs, so a config added later is covered without touching this
// file. A path containing "/path/to/" is a placeholder (configs for models that are downloaded
// separately); every other input path must exist relative to the repository root.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "support/cli_support.h"
#include "support/test_support.h"

namespace {

namespace fs = std::filesystem;
using sfc::test::expect_one_line_error;
using sfc::test::quote;
using sfc::test::read_text;
using sfc::test::run;
using sfc::test::sfc;
using sfc::test::TempDir;

const fs::path kRepo = SFC_SOURCE_DIR;
constexpr const char* kPlaceholder = "/path/to/";

std::vector<fs::path> shipped_configs() {
  std::vector<fs::path> out;
  for (const auto& entry : fs::directory_iterator(kRepo / "configs"))
    if (entry.is_regular_file() && entry.path().extension() == ".ini") out.push_back(entry.path());
  std::sort(out.begin(), out.end());
  return out;
}

std::string trim(const std::string& s) {
  const size_t b = s.find_first_not_of(" \t\r");
  if (b == std::string::npos) return "";
  return s.substr(b, s.find_last_not_of(" \t\r") - b + 1);
}

// "section.key" -> value of an INI text, as Boost reads it: '#' starts a comment anywhere.
std::map<std::string, std::string> read_ini(const std::string& text) {
  std::map<std::string, std::string> keys;
  std::istringstream in(text);
  std::string line, section;
  while (std::getline(in, line)) {
    line = trim(line.substr(0, line.find('#')));
    if (line.empty()) continue;
    if (line.front() == '[') {
      section = trim(line.substr(1, line.find(']') - 1));
      continue;
    }
    const size_t eq = line.find('=');
    if (eq == std::string::npos) continue;
    keys[section + "." + trim(line.substr(0, eq))] = trim(line.substr(eq + 1));
  }
  return keys;
}

// The config text with `[section] key = value` set: the existing line replaced, else appended.
std::string with_key(const std::string& text, const std::string& section, const std::string& key,
                     const std::string& value) {
  std::istringstream in(text);
  std::ostringstream out;
  std::string line, current;
  bool replaced = false;
  while (std::getline(in, line)) {
    const std::string t = trim(line.substr(0, line.find('#')));
    if (!t.empty() && t.front() == '[') current = trim(t.substr(1, t.find(']') - 1));
    const size_t eq = t.find('=');
    if (current == section && eq != std::string::npos && trim(t.substr(0, eq)) == key) {
      out << key << " = " << value << "\n";
      replaced = true;
    } else {
      out << line << "\n";
    }
  }
  if (!replaced) out << "\n[" << section << "]\n" << key << " = " << value << "\n";
  return out.str();
}

std::string print_config(const fs::path& ini, const TempDir& dir) {
  const auto r = run(sfc("run --config " + quote(ini.string()) + " --print-config"), dir);
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.err, "");
  return r.out;
}

TEST(Configs, TheReadyConfigsAreThere) {
  std::vector<std::string> names;
  for (const auto& c : shipped_configs()) names.push_back(c.filename().string());
  for (const char* want : {"gemma2-tiny.ini", "gemma2-2b.ini", "gemma2-9b.ini"})
    EXPECT_NE(std::find(names.begin(), names.end(), want), names.end()) << want << " missing from configs/";
}

// Each config parses and validates, every key it sets survives into the resolved config, and the
// printed config read back prints the same text.
TEST(Configs, EachParsesValidatesAndPrintsItself) {
  TempDir dir;
  for (const auto& ini : shipped_configs()) {
    SCOPED_TRACE(ini.string());
    const std::string printed = print_config(ini, dir);
    ASSERT_NE(printed.find("[model]"), std::string::npos) << printed;

    const auto given = read_ini(read_text(ini));
    const auto resolved = read_ini(printed);
    EXPECT_FALSE(given.empty());
    for (const auto& [key, value] : given) {
      ASSERT_TRUE(resolved.count(key)) << key << " set in the file but not in --print-config";
      EXPECT_EQ(resolved.at(key), value) << key;
    }

    const auto again = dir / "printed.ini";
    std::ofstream(again) << printed;
    EXPECT_EQ(print_config(again, dir), printed);
  }
}

// A shipped config names every input and the output; real inputs exist, placeholders say so.
TEST(Configs, EachNamesItsInputsAndTheyExistUnlessPlaceholders) {
  TempDir dir;
  for (const auto& ini : shipped_configs()) {
    SCOPED_TRACE(ini.string());
    const auto resolved = read_ini(print_config(ini, dir));
    for (const char* key : {"model.path", "sae.path", "data.pairs", "output.path"}) {
      ASSERT_TRUE(resolved.count(key)) << key;
      EXPECT_NE(resolved.at(key), "") << key << " is not set";
    }
    for (const char* key : {"model.path", "sae.path", "data.pairs"}) {
      const std::string path = resolved.at(key);
      if (path.find(kPlaceholder) != std::string::npos) continue;
      const fs::path p = fs::path(path).is_absolute() ? fs::path(path) : kRepo / path;
      EXPECT_TRUE(fs::exists(p)) << key << " = " << path << " does not exist (relative to " << kRepo << ")";
    }
  }
}

// The "done when": a wrong key fails with its name. A misspelt key, a value that does not
// parse and a value that is not allowed each stop with one line naming the key and the file.
TEST(Configs, AMisspeltKeyOrABadValueFailsNamingKeyAndFile) {
  TempDir dir;
  for (const auto& ini : shipped_configs()) {
    SCOPED_TRACE(ini.string());
    const std::string text = read_text(ini);
    const auto bad = dir / ("bad-" + ini.filename().string());
    const std::string base = sfc("run --config " + quote(bad.string()) + " --print-config");

    std::ofstream(bad) << text << "\n[ig]\nstepz = 10\n";
    auto r = run(base, dir);
    EXPECT_EQ(r.status, 2) << r.err;
    expect_one_line_error(r, {"ig.stepz", bad.filename().string()});
    EXPECT_EQ(r.out, "");

    std::ofstream(bad) << with_key(text, "ig", "steps", "ten");
    r = run(base, dir);
    EXPECT_EQ(r.status, 2) << r.err;
    expect_one_line_error(r, {"ig.steps", "ten", bad.filename().string()});

    std::ofstream(bad) << with_key(text, "patch", "mode", "sometimes");
    r = run(base, dir);
    EXPECT_EQ(r.status, 1) << r.err;
    expect_one_line_error(r, {"patch.mode", "sometimes", bad.filename().string()});

    // The same bad value given on the command line is not blamed on the file.
    r = run(sfc("run --config " + quote(ini.string()) + " --print-config --patch.mode=sometimes"), dir);
    EXPECT_EQ(r.status, 1) << r.err;
    expect_one_line_error(r, {"patch.mode", "sometimes"});
    EXPECT_EQ(r.err.find(ini.filename().string()), std::string::npos) << r.err;
  }
}

// Overrides win over the file and show in --print-config.
TEST(Configs, CommandLineOverridesWin) {
  TempDir dir;
  for (const auto& ini : shipped_configs()) {
    SCOPED_TRACE(ini.string());
    const auto r = run(sfc("run --config " + quote(ini.string()) +
                           " --ig.steps=3 --run.progress_seconds=0 --print-config"),
                       dir);
    ASSERT_EQ(r.status, 0) << r.err;
    const auto resolved = read_ini(r.out);
    EXPECT_EQ(resolved.at("ig.steps"), "3");
    EXPECT_EQ(resolved.at("run.progress_seconds"), "0");
  }
}

// `sfc --help` lists the commands; each answers --help with a Usage line. Every key that
// --print-config shows is documented in `sfc run --help`.
TEST(Help, EveryCommandHasHelp) {
  TempDir dir;
  const auto top = run(sfc("--help"), dir);
  ASSERT_EQ(top.status, 0) << top.err;
  std::vector<std::string> commands;
  std::istringstream in(top.out);
  std::string line;
  bool listing = false;
  while (std::getline(in, line)) {
    if (line.rfind("Commands:", 0) == 0) {
      listing = true;
    } else if (listing && line.rfind("  ", 0) == 0) {
      std::istringstream words(line);
      std::string name;
      words >> name;
      commands.push_back(name);
    } else if (listing) {
      break;
    }
  }
  for (const char* want : {"run", "reduce", "cache"})
    EXPECT_NE(std::find(commands.begin(), commands.end(), want), commands.end()) << want << " not in: " << top.out;

  for (const auto& command : commands) {
    SCOPED_TRACE(command);
    for (const char* flag : {"--help", "-h"}) {
      const auto r = run(sfc(command + " " + flag), dir);
      EXPECT_EQ(r.status, 0) << r.err;
      EXPECT_NE(r.out.find("Usage: sfc " + command), std::string::npos) << r.out;
    }
  }

  const auto help = run(sfc("run --help"), dir);
  const auto resolved = read_ini(run(sfc("run --print-config"), dir).out);
  ASSERT_FALSE(resolved.empty());
  for (const auto& [key, value] : resolved)
    EXPECT_NE(help.out.find("--" + key), std::string::npos) << key << " not in sfc run --help";

  const auto unknown = run(sfc("runn"), dir);
  EXPECT_EQ(unknown.status, 2);
  expect_one_line_error(unknown, {"runn", "sfc --help"});
}

}  // namespace
