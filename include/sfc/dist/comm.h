// The MPI calls of a distributed run, each return code checked in one place (STYLE.md §7-8): an RAII
// session, and a communicator with the few collectives the run needs. The engines never see it.
#pragma once

#include <mpi.h>
#include <torch/types.h>

#include <cstdint>
#include <cstdio>
#include <exception>
#include <string>
#include <vector>

namespace sfc::dist {

// Throws sfc::Error("<what>: <MPI error string>") unless status is MPI_SUCCESS.
void check_mpi(int status, const char* what);

// MPI_Init_thread on construction unless MPI is already initialised (then it owns nothing),
// MPI_Finalize on destruction. A program started without mpirun is a world of one (singleton).
class MpiSession {
 public:
  MpiSession();
  ~MpiSession();
  MpiSession(const MpiSession&) = delete;
  MpiSession& operator=(const MpiSession&) = delete;

 private:
  bool owns_ = false;
};

class Comm {
 public:
  // Errors on `comm` are returned (and turned into sfc::Error), not fatal.
  explicit Comm(MPI_Comm comm = MPI_COMM_WORLD);

  MPI_Comm get() const { return comm_; }
  int rank() const { return rank_; }
  int size() const { return size_; }
  // Rank among the ranks of this node (picks the GPU).
  int local_rank() const { return local_rank_; }

  void barrier() const;
  bool any(bool flag) const;            // logical or over ranks
  int64_t max(int64_t value) const;
  int64_t sum(int64_t value) const;
  void max_in_place(std::vector<int64_t>& values) const;  // element-wise max over ranks
  // Lowest rank whose flag is set, or -1.
  int first_rank_with(bool flag) const;
  std::string broadcast(const std::string& text, int root) const;
  // Sums a contiguous CPU fp64 tensor over ranks onto rank 0 in rank order (0 + 1 + 2 ...), one
  // partial at a time, so the result does not depend on MPI's reduction tree. Other ranks' x is left
  // as it was.
  void sum_to_root_in_rank_order(torch::Tensor& x) const;
  // Every rank's values, rank-major, on rank 0 (empty elsewhere). Same length on every rank.
  std::vector<double> gather_to_root(const std::vector<double>& values) const;
  // Ends every rank of the job now (a rank that failed alone must not leave the others hung in a
  // collective).
  [[noreturn]] void abort(int code) const;

 private:
  MPI_Comm comm_;
  int rank_ = 0, size_ = 1, local_rank_ = 0;
};

// An exception's text as a user should read it (LibTorch's without its C++ backtrace).
std::string error_message(const std::exception& e);

// Runs a step that a rank does on its own (no collective inside may wait on a failed rank). With
// several ranks a failure prints "sfc: error: rank R: ..." and ends the whole job (STYLE.md §7)
// instead of leaving the others hung in the next collective; alone, it simply propagates.
template <typename F>
auto or_abort(const Comm& comm, F&& step) {
  if (comm.size() == 1) return step();
  try {
    return step();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "sfc: error: rank %d: %s\n", comm.rank(), error_message(e).c_str());
    std::fflush(stderr);
    comm.abort(1);
  }
}

}  // namespace sfc::dist
