// Helpers for tests that run the built `sfc` binary through the shell and read what it printed.
#pragma once

#include <gtest/gtest.h>
#include <sys/wait.h>

#include <algorithm>
#include <vector>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "support/test_support.h"

namespace sfc::test {

struct Result {
  int status = -1;
  std::string out, err;
};

inline std::string read_text(const std::filesystem::path& file) {
  std::ifstream in(file);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

inline std::string quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

// Runs `command` through the shell with stdout/stderr captured in `dir`.
inline Result run(const std::string& command, const TempDir& dir) {
  const auto out = dir / "stdout.txt", err = dir / "stderr.txt";
  const int raw = std::system((command + " >" + quote(out.string()) + " 2>" + quote(err.string())).c_str());
  Result r;
  r.status = WIFEXITED(raw) ? WEXITSTATUS(raw) : -1;
  r.out = read_text(out);
  r.err = read_text(err);
  return r;
}

inline std::string sfc(const std::string& args) { return quote(SFC_BINARY) + " " + args; }

inline std::string python(const std::string& args) { return quote(SFC_PYTHON3) + " " + args; }

// An error is exactly one line "sfc: error: ..." containing every `needles`.
inline void expect_one_line_error(const Result& r, const std::vector<std::string>& needles) {
  EXPECT_EQ(r.err.rfind("sfc: error: ", 0), 0u) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  for (const auto& n : needles) EXPECT_NE(r.err.find(n), std::string::npos) << "'" << n << "' not in: " << r.err;
}

// A failed run leaves neither the output nor its .partial.
inline void expect_no_output(const std::filesystem::path& out) {
  EXPECT_FALSE(std::filesystem::exists(out)) << out;
  EXPECT_FALSE(std::filesystem::exists(out.string() + ".partial")) << out;
}

}  // namespace sfc::test
