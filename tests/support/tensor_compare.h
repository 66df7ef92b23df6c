// Tensor comparison for tests, with the fixture README's tolerance convention.
#pragma once

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <string>

namespace sfc::test {

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

}  // namespace sfc::test
