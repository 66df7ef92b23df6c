// Which BLAS runs LibTorch's CPU matmuls, and whether OpenBLAS chose kernels below what the CPU can
// do. OpenBLAS picks its kernels by CPU model when it loads; a model newer than the library (Debian
// 12 ships 0.3.21, which predates e.g. Intel Emerald Rapids) gets its generic SSE3 "Prescott" kernels,
// 2–3× slower than the AVX-512 ones (bench_engines, README). OPENBLAS_CORETYPE, read when the library
// loads, overrides the choice, so the fix has to be in the environment before sfc starts.
// Not for GPU runs: CUDA matmuls never touch this BLAS.
#pragma once

#include <string>

namespace sfc {

struct CpuFeatures {
  bool avx2_fma = false;  // AVX2 and FMA: OpenBLAS's Haswell kernels
  bool avx512 = false;    // AVX-512 F, CD, BW, DQ, VL: its SkylakeX kernels
};

// What this CPU and the OS support (always false off x86-64).
CpuFeatures cpu_features();

// The OPENBLAS_CORETYPE to suggest when OpenBLAS runs kernel family `core` on a CPU with `features`,
// or "". Only OpenBLAS's unknown-CPU fallback (Prescott) is second-guessed: a core it recognised is
// its own best choice.
std::string better_openblas_core(const std::string& core, const CpuFeatures& features);

struct CpuBlas {
  std::string library;      // e.g. "OpenBLAS 0.3.21"; "" when the loaded BLAS is not OpenBLAS
  std::string core;         // OpenBLAS's kernel family, e.g. "Prescott", "SkylakeX"; "" when not OpenBLAS
  std::string better_core;  // better_openblas_core(core, cpu_features())

  // One line for logs and results files, e.g. "OpenBLAS 0.3.21, SkylakeX kernels".
  std::string describe() const;
  // "" when better_core is empty, else what to export and why, in one line.
  std::string hint() const;
};

// Asks the BLAS loaded into this process (through OpenBLAS's own openblas_get_config /
// openblas_get_corename, looked up at run time so that no link depends on OpenBLAS).
CpuBlas detect_cpu_blas();

}  // namespace sfc
