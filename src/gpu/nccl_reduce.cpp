// NCCL all-reduce of fp64 sums. The only file that includes <nccl.h>; every ncclResult_t is checked
// in check_nccl, every MPI call's return in check_mpi.
#include "sfc/gpu/nccl_reduce.h"

#include <cuda_runtime_api.h>
#include <nccl.h>

#include <string>
#include <utility>

#include "sfc/core/error.h"
#include "sfc/gpu/cuda_devices.h"

namespace sfc::gpu {
namespace {

void check_nccl(ncclResult_t status, const char* what) {
  if (status != ncclSuccess) throw Error(std::string(what) + ": " + ncclGetErrorString(status));
}

void check_mpi(int status, const char* what) {
  if (status != MPI_SUCCESS) throw Error(std::string(what) + " failed with MPI error " + std::to_string(status));
}

}  // namespace

NcclReducer::NcclReducer(MPI_Comm comm, int cuda_device) {
  int rank = 0, size = 1;
  check_mpi(MPI_Comm_rank(comm, &rank), "MPI_Comm_rank");
  check_mpi(MPI_Comm_size(comm, &size), "MPI_Comm_size");
  check_cuda(cudaSetDevice(cuda_device), "cudaSetDevice");
  ncclUniqueId id;
  if (rank == 0) check_nccl(ncclGetUniqueId(&id), "ncclGetUniqueId");
  check_mpi(MPI_Bcast(&id, sizeof(id), MPI_BYTE, 0, comm), "MPI_Bcast(ncclUniqueId)");
  cudaStream_t stream = nullptr;
  check_cuda(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), "cudaStreamCreate");
  stream_ = stream;
  ncclComm_t nccl = nullptr;
  check_nccl(ncclCommInitRank(&nccl, size, id, rank), "ncclCommInitRank");
  comm_ = nccl;
}

NcclReducer::~NcclReducer() {
  if (comm_) ncclCommDestroy(static_cast<ncclComm_t>(comm_));
  if (stream_) cudaStreamDestroy(static_cast<cudaStream_t>(stream_));
}

NcclReducer::NcclReducer(NcclReducer&& other) noexcept
    : comm_(std::exchange(other.comm_, nullptr)), stream_(std::exchange(other.stream_, nullptr)) {}

void NcclReducer::sum_in_place(double* device_buffer, std::size_t count) {
  auto stream = static_cast<cudaStream_t>(stream_);
  check_nccl(ncclAllReduce(device_buffer, device_buffer, count, ncclDouble, ncclSum,
                           static_cast<ncclComm_t>(comm_), stream),
             "ncclAllReduce");
  check_cuda(cudaStreamSynchronize(stream), "cudaStreamSynchronize");
}

}  // namespace sfc::gpu
