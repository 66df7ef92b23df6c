// NCCL all-reduce of fp64 sums. The only file that includes <nccl.h>; every ncclResult_t is checked
// in check_nccl; its one MPI step (sharing the NCCL id) goes through sfc::mpi::Comm.
#include "sfc/gpu/nccl_reduce.h"

#include <cuda_runtime_api.h>
#include <nccl.h>

#include <string>
#include <utility>

#include "sfc/core/error.h"
#include "sfc/gpu/cuda_devices.h"
#include "sfc/mpi/comm.h"

namespace sfc::gpu {
namespace {

void check_nccl(ncclResult_t status, const char* what) {
  if (status != ncclSuccess) throw Error(std::string(what) + ": " + ncclGetErrorString(status));
}

}  // namespace

NcclReducer::NcclReducer(const mpi::Comm& comm, int cuda_device) {
  const int rank = comm.rank(), size = comm.size();
  check_cuda(cudaSetDevice(cuda_device), "cudaSetDevice");
  ncclUniqueId id;
  if (rank == 0) check_nccl(ncclGetUniqueId(&id), "ncclGetUniqueId");
  comm.broadcast_bytes(&id, sizeof(id), 0);  // the id travels through the project's MPI layer
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
