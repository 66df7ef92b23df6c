// Test helper: a call must throw sfc::LoadError whose one-line message names the file and the problem.
#pragma once

#include <gtest/gtest.h>

#include <filesystem>
#include <string>
#include <vector>

#include "sfc/core/error.h"

namespace sfc::test {

// Runs `fn`; passes when it throws LoadError mentioning `file` and every one of `parts`, on one line.
template <class Fn>
::testing::AssertionResult throws_load_error(Fn&& fn, const std::filesystem::path& file,
                                             const std::vector<std::string>& parts) {
  try {
    fn();
  } catch (const sfc::LoadError& e) {
    const std::string msg = e.what();
    if (msg.find('\n') != std::string::npos) return ::testing::AssertionFailure() << "message spans lines: " << msg;
    if (msg.find(file.string()) == std::string::npos)
      return ::testing::AssertionFailure() << "message does not name " << file << ": " << msg;
    for (const auto& p : parts)
      if (msg.find(p) == std::string::npos)
        return ::testing::AssertionFailure() << "message lacks '" << p << "': " << msg;
    return ::testing::AssertionSuccess() << msg;
  } catch (const std::exception& e) {
    return ::testing::AssertionFailure() << "threw something other than LoadError: " << e.what();
  }
  return ::testing::AssertionFailure() << "no exception";
}

}  // namespace sfc::test
