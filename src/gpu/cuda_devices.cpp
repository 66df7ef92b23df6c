// CUDA runtime queries; the single place that checks cudaError_t codes.
#include "sfc/gpu/cuda_devices.h"

#include <cuda_runtime_api.h>

#include "sfc/core/error.h"

namespace sfc::gpu {

void check_cuda(int status, const char* what) {
  if (status != cudaSuccess)
    throw Error(std::string(what) + ": " + cudaGetErrorString(static_cast<cudaError_t>(status)));
}

CudaDevices query_cuda_devices() {
  CudaDevices out;
  const cudaError_t status = cudaGetDeviceCount(&out.count);
  if (status != cudaSuccess) {
    out.count = 0;
    out.problem = cudaGetErrorString(status);
  }
  return out;
}

}  // namespace sfc::gpu
