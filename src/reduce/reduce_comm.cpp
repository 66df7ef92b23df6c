// MPI for the reduction pass: every call checked here and nowhere else.
#include "reduce_comm.h"

#include <climits>
#include <cstdint>
#include <cstdio>
#include <cstdlib>

#include "sfc/core/error.h"

namespace sfc::reduce::detail {

ReduceComm::ReduceComm(MPI_Comm comm) {
  check_mpi(MPI_Comm_dup(comm, &comm_), "MPI_Comm_dup");
  check_mpi(MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN), "MPI_Comm_set_errhandler");
  check_mpi(MPI_Comm_rank(comm_, &rank_), "MPI_Comm_rank");
  check_mpi(MPI_Comm_size(comm_, &size_), "MPI_Comm_size");
  collectives_ = std::make_unique<dist::Comm>(comm_);
}

ReduceComm::~ReduceComm() {
  collectives_.reset();  // before the communicator it works on
  // Pending sends are only left behind by an exception, which aborts a multi-rank job anyway.
  if (comm_ != MPI_COMM_NULL) MPI_Comm_free(&comm_);
}

void ReduceComm::barrier() const { collectives_->barrier(); }

int ReduceComm::first_rank_with(bool flag) const { return collectives_->first_rank_with(flag); }

std::string ReduceComm::broadcast(const std::string& text, int root) const {
  return collectives_->broadcast(text, root);
}

std::vector<double> ReduceComm::receive(int source, int tag) const {
  MPI_Status status;
  check_mpi(MPI_Probe(source, tag, comm_, &status), "MPI_Probe");
  int count = 0;
  check_mpi(MPI_Get_count(&status, MPI_DOUBLE, &count), "MPI_Get_count");
  std::vector<double> out(static_cast<size_t>(count));
  check_mpi(MPI_Recv(out.data(), count, MPI_DOUBLE, source, tag, comm_, MPI_STATUS_IGNORE), "MPI_Recv");
  return out;
}

std::vector<float> ReduceComm::gather(const std::vector<float>& values, int root) const {
  if (values.size() > static_cast<size_t>(INT_MAX))
    throw Error("MPI_Gatherv: " + std::to_string(values.size()) + " values on one rank (more than INT_MAX)");
  const int count = static_cast<int>(values.size());
  std::vector<int> counts(rank_ == root ? size_ : 0), offsets(counts.size());
  check_mpi(MPI_Gather(&count, 1, MPI_INT, counts.data(), 1, MPI_INT, root, comm_), "MPI_Gather(counts)");
  std::vector<float> out;
  if (rank_ == root) {
    int64_t total = 0;
    for (int r = 0; r < size_; ++r) {
      if (total > INT_MAX) break;
      offsets[r] = static_cast<int>(total);
      total += counts[r];
    }
    // The root checks alone, so it must not throw here: the others are already in MPI_Gatherv.
    if (total > INT_MAX) {
      std::fprintf(stderr, "sfc: error: MPI_Gatherv of %lld values (more than INT_MAX)\n",
                   static_cast<long long>(total));
      abort(1);
    }
    out.resize(static_cast<size_t>(total));
  }
  check_mpi(
      MPI_Gatherv(values.data(), count, MPI_FLOAT, out.data(), counts.data(), offsets.data(), MPI_FLOAT, root, comm_),
      "MPI_Gatherv");
  return out;
}

std::vector<double> ReduceComm::gather_same_length(const std::vector<double>& values) const {
  return collectives_->gather_to_root(values);
}

void ReduceComm::abort(int code) const { collectives_->abort(code); }

void ReduceComm::send_later(std::vector<double> values, int dest, int tag) {
  if (values.size() > static_cast<size_t>(INT_MAX))
    throw Error("MPI_Isend: " + std::to_string(values.size()) + " values (more than INT_MAX)");
  send_buffers_.push_back(std::move(values));
  const auto& buffer = send_buffers_.back();
  MPI_Request request;
  check_mpi(MPI_Isend(buffer.data(), static_cast<int>(buffer.size()), MPI_DOUBLE, dest, tag, comm_, &request),
            "MPI_Isend");
  send_requests_.push_back(request);
}

void ReduceComm::wait_all() {
  check_mpi(MPI_Waitall(static_cast<int>(send_requests_.size()), send_requests_.data(), MPI_STATUSES_IGNORE),
            "MPI_Waitall");
  send_requests_.clear();
  send_buffers_.clear();
}

}  // namespace sfc::reduce::detail
