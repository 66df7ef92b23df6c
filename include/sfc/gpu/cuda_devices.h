// Plain CUDA runtime queries (no torch): how many GPUs this process sees and whether a driver is
// usable. Compiled only with SFC_WITH_CUDA; the torch device itself is chosen in src/app/device.cpp.
#pragma once

#include <string>

namespace sfc::gpu {

struct CudaDevices {
  int count = 0;              // visible devices; 0 when no driver or no GPU
  std::string problem;        // why count is 0 (e.g. "CUDA driver version is insufficient"), else empty
};

CudaDevices query_cuda_devices();

// Throws sfc::Error("<what>: <cuda error string>") when `status` is not cudaSuccess.
void check_cuda(int status, const char* what);

}  // namespace sfc::gpu
