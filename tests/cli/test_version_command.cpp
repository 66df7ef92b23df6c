// `sfc --version`: the version, the CPU BLAS line, and the OPENBLAS_CORETYPE hint exactly when
// OpenBLAS runs its generic kernels on a CPU that can do better (forced here with OPENBLAS_CORETYPE,
// which OpenBLAS reads when it loads; the expectation comes from /proc/cpuinfo, not from sfc).
#include <gtest/gtest.h>

#include <sstream>
#include <string>

#include "support/cli_support.h"
#include "support/cpu_flags.h"
#include "support/test_support.h"

namespace {

using sfc::test::run;
using sfc::test::sfc;
using sfc::test::TempDir;

// The line of `text` that starts with `prefix`, without it; "" when there is none.
std::string line_after(const std::string& text, const std::string& prefix) {
  std::istringstream lines(text);
  for (std::string line; std::getline(lines, line);)
    if (line.rfind(prefix, 0) == 0) return line.substr(prefix.size());
  return "";
}

TEST(VersionCommand, NamesTheBlasAndHintsOnlyWhenOpenBlasFellBackToGenericKernels) {
  TempDir dir;
  const auto plain = run(sfc("--version"), dir);
  ASSERT_EQ(plain.status, 0) << plain.err;
  // The first line is the project version of CMakeLists.txt (one place: src/core/version.cpp).
  EXPECT_EQ(plain.out.substr(0, plain.out.find('\n')), std::string("sfc ") + SFC_PROJECT_VERSION) << plain.out;
  const std::string blas = line_after(plain.out, "blas: ");
  ASSERT_FALSE(blas.empty()) << plain.out;
  if (blas.rfind("OpenBLAS ", 0) != 0) {  // MKL or another BLAS: nothing to check or suggest
    EXPECT_EQ(line_after(plain.out, "hint: "), "") << plain.out;
    return;
  }
  const auto cpu = sfc::test::ProcCpuFlags::read();
  ASSERT_FALSE(cpu.flags.empty()) << "no flags line in /proc/cpuinfo";
  const std::string better = cpu.avx512() ? "SkylakeX" : cpu.avx2_fma() ? "Haswell" : "";

  const auto generic = run("OPENBLAS_CORETYPE=Prescott " + sfc("--version"), dir);
  ASSERT_EQ(generic.status, 0) << generic.err;
  EXPECT_NE(line_after(generic.out, "blas: ").find("Prescott kernels"), std::string::npos) << generic.out;
  const std::string hint = line_after(generic.out, "hint: ");
  if (better.empty()) {
    EXPECT_EQ(hint, "") << generic.out;
    return;
  }
  EXPECT_NE(hint.find("export OPENBLAS_CORETYPE=" + better), std::string::npos) << generic.out;

  // Following the hint: those kernels, and no hint.
  const auto followed = run("OPENBLAS_CORETYPE=" + better + " " + sfc("--version"), dir);
  ASSERT_EQ(followed.status, 0) << followed.err;
  EXPECT_NE(line_after(followed.out, "blas: ").find(better + " kernels"), std::string::npos) << followed.out;
  EXPECT_EQ(line_after(followed.out, "hint: "), "") << followed.out;
}

}  // namespace
