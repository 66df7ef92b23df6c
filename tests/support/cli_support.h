// Helpers for tests that run the built `sfc` binary through the shell and read what it printed.
#pragma once

#include <sys/wait.h>

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

}  // namespace sfc::test
