// See cpu_blas.h. dlsym rather than linking OpenBLAS: LibTorch brings whichever BLAS it was built
// with (Debian's libblas.so.3 alternative, MKL in the PyTorch builds), and sfc must run with any.
#include "sfc/core/cpu_blas.h"

#include <dlfcn.h>

#include <cctype>
#include <sstream>

namespace sfc {

CpuFeatures cpu_features() {
  CpuFeatures f;
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  __builtin_cpu_init();
  f.avx2_fma = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  f.avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512cd") &&
             __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq") &&
             __builtin_cpu_supports("avx512vl");
#endif
  return f;
}

std::string better_openblas_core(const std::string& core, const CpuFeatures& features) {
  // Dynamic builds say "Prescott", single-target builds "PRESCOTT".
  std::string lower = core;
  for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (lower != "prescott") return "";
  if (features.avx512) return "SkylakeX";
  if (features.avx2_fma) return "Haswell";
  return "";
}

CpuBlas detect_cpu_blas() {
  using Text = char* (*)();
  CpuBlas blas;
  auto config = reinterpret_cast<Text>(dlsym(RTLD_DEFAULT, "openblas_get_config"));
  auto corename = reinterpret_cast<Text>(dlsym(RTLD_DEFAULT, "openblas_get_corename"));
  if (!config || !corename) return blas;
  std::istringstream words(config());  // "OpenBLAS 0.3.21 DYNAMIC_ARCH NO_AFFINITY Prescott MAX_THREADS=64"
  std::string name, version;
  words >> name >> version;
  blas.library = name + " " + version;
  blas.core = corename();
  blas.better_core = better_openblas_core(blas.core, cpu_features());
  return blas;
}

std::string CpuBlas::describe() const {
  if (library.empty()) return "not OpenBLAS (no kernel check)";
  return library + ", " + core + " kernels";
}

std::string CpuBlas::hint() const {
  if (better_core.empty()) return "";
  return library + " runs its generic " + core + " kernels on this CPU (a model it does not know), which has " +
         (better_core == "SkylakeX" ? "AVX-512" : "AVX2") + ": export OPENBLAS_CORETYPE=" + better_core +
         " for 2-3x faster CPU matmuls";
}

}  // namespace sfc
