// Sum-reduction of fp64 buffers across ranks with NCCL, for the dataset-level latent sums when the
// job runs on GPUs (docs/design.md §2 "Distribution"). The MPI fallback lives with the communicator.
// Compiled only with SFC_WITH_NCCL; it cannot run on the CI machines (no GPU).
#pragma once

#include <cstddef>

namespace sfc::mpi {
class Comm;
}

namespace sfc::gpu {

// One NCCL communicator over all ranks of `comm`, bootstrapped through the MPI layer (rank 0 makes the id).
// Move-only; destroys the communicator and its stream.
class NcclReducer {
 public:
  NcclReducer(const mpi::Comm& comm, int cuda_device);
  ~NcclReducer();
  NcclReducer(NcclReducer&& other) noexcept;
  NcclReducer& operator=(NcclReducer&&) = delete;
  NcclReducer(const NcclReducer&) = delete;
  NcclReducer& operator=(const NcclReducer&) = delete;

  // In-place sum over ranks of `count` doubles living on this rank's GPU; blocks until done.
  // Summation order is NCCL's ring order, fixed for a fixed rank count.
  void sum_in_place(double* device_buffer, std::size_t count);

 private:
  void* comm_ = nullptr;    // ncclComm_t
  void* stream_ = nullptr;  // cudaStream_t
};

}  // namespace sfc::gpu
