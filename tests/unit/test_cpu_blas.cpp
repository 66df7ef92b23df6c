// Which CPU BLAS is loaded and which kernels it runs: the rule that second-guesses OpenBLAS, the CPU
// feature probe against the kernel's /proc/cpuinfo, and the detection against this process's own
// memory map (the test binary links LibTorch, so the BLAS LibTorch uses is loaded here too).
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <fstream>
#include <string>

#include "sfc/core/cpu_blas.h"
#include "support/cpu_flags.h"

namespace {

bool process_maps_openblas() {
  std::ifstream in("/proc/self/maps");
  std::string line;
  while (std::getline(in, line))
    if (line.find("openblas") != std::string::npos) return true;
  return false;
}

TEST(CpuBlas, OnlyTheUnknownCpuFallbackIsSecondGuessed) {
  const sfc::CpuFeatures none{}, avx2{true, false}, avx512{true, true};
  EXPECT_EQ(sfc::better_openblas_core("Prescott", avx512), "SkylakeX");
  EXPECT_EQ(sfc::better_openblas_core("PRESCOTT", avx512), "SkylakeX");  // single-target builds
  EXPECT_EQ(sfc::better_openblas_core("Prescott", avx2), "Haswell");
  EXPECT_EQ(sfc::better_openblas_core("Prescott", none), "");
  EXPECT_EQ(sfc::better_openblas_core("Haswell", avx512), "");  // a core OpenBLAS chose knowingly
  EXPECT_EQ(sfc::better_openblas_core("Zen", avx2), "");
  EXPECT_EQ(sfc::better_openblas_core("SkylakeX", avx512), "");
  EXPECT_EQ(sfc::better_openblas_core("", avx512), "");  // not OpenBLAS
}

TEST(CpuBlas, FeaturesAgreeWithProcCpuinfo) {
  const auto cpu = sfc::test::ProcCpuFlags::read();
  ASSERT_FALSE(cpu.flags.empty()) << "no flags line in /proc/cpuinfo";
  const auto features = sfc::cpu_features();
#if defined(__x86_64__)
  EXPECT_EQ(features.avx2_fma, cpu.avx2_fma());
  EXPECT_EQ(features.avx512, cpu.avx512());
#else
  EXPECT_FALSE(features.avx2_fma || features.avx512);
#endif
}

TEST(CpuBlas, DetectionMatchesTheLoadedLibrary) {
  // A matmul first, so that whatever BLAS LibTorch uses is loaded and has chosen its kernels.
  auto product = torch::mm(torch::ones({64, 64}), torch::ones({64, 64}));
  ASSERT_EQ(product[0][0].item<float>(), 64.0f);
  const auto blas = sfc::detect_cpu_blas();
  if (process_maps_openblas()) {
    EXPECT_EQ(blas.library.rfind("OpenBLAS ", 0), 0u) << blas.library;
    EXPECT_FALSE(blas.core.empty());
    EXPECT_EQ(blas.describe(), blas.library + ", " + blas.core + " kernels");
    EXPECT_EQ(blas.better_core, sfc::better_openblas_core(blas.core, sfc::cpu_features()));
    EXPECT_EQ(blas.hint().empty(), blas.better_core.empty());
    if (!blas.better_core.empty()) {
      EXPECT_NE(blas.hint().find("OPENBLAS_CORETYPE=" + blas.better_core), std::string::npos);
    }
  } else {
    EXPECT_TRUE(blas.library.empty() && blas.core.empty() && blas.hint().empty()) << blas.describe();
  }
}

}  // namespace
