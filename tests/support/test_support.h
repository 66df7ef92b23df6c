// Shared helpers for the test suites: fixture paths, array comparison with a relative tolerance,
// temporary folders, running the sfc binary.
#pragma once

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cstdlib>
#include <filesystem>
#include <random>
#include <string>

namespace sfc::test {

inline std::filesystem::path fixtures_dir() { return SFC_FIXTURES_DIR; }
inline std::filesystem::path tiny_dir() { return fixtures_dir() / "gemma2-tiny"; }

// max|actual − expected| ≤ rel_tol · max|expected| (the fixture README's tolerance), with a message
// naming the array and the worst element.
inline ::testing::AssertionResult close_rel_max(const torch::Tensor& actual, const torch::Tensor& expected,
                                                double rel_tol, const std::string& what) {
  if (actual.sizes() != expected.sizes())
    return ::testing::AssertionFailure()
           << what << ": shape " << actual.sizes() << " != expected " << expected.sizes();
  auto a = actual.detach().to(torch::kCPU, torch::kFloat64);
  auto e = expected.detach().to(torch::kCPU, torch::kFloat64);
  const double scale = e.abs().max().item<double>();
  const double err = (a - e).abs().max().item<double>();
  if (!(err <= rel_tol * scale))  // also catches NaN
    return ::testing::AssertionFailure() << what << ": max |diff| " << err << " > " << rel_tol
                                         << " x max |expected| " << scale;
  return ::testing::AssertionSuccess();
}

// A fresh empty folder under the system temp dir, removed by the destructor.
class TempDir {
 public:
  TempDir() {
    std::random_device rd;
    path_ = std::filesystem::temp_directory_path() / ("sfc-test-" + std::to_string(rd()));
    std::filesystem::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }
  std::filesystem::path operator/(const std::string& name) const { return path_ / name; }

 private:
  std::filesystem::path path_;
};

}  // namespace sfc::test
