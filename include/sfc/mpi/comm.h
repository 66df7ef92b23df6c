// The project's one MPI layer (docs/style.md §7-8): a session that owns MPI_Init/MPI_Finalize, a
// communicator with the buffer verbs the jobs need (no LibTorch: the reduction pass links this
// without it), every return code checked in check_mpi, and the two ways a step can fail on a rank:
// vote() for steps every rank reaches together, or_abort() for steps a rank does alone. This is the
// only public header that includes <mpi.h>; everything else takes a `const mpi::Comm&`.
#pragma once

#include <mpi.h>  // C API only: cmake/SfcDependencies.cmake defines OMPI_SKIP_MPICXX

#include <cstdint>
#include <cstdio>
#include <exception>
#include <string>
#include <vector>

#include "sfc/core/error.h"

namespace sfc::mpi {

// Throws sfc::Error("<what>: <MPI error string>") unless status is MPI_SUCCESS.
void check_mpi(int status, const char* what);

// MPI_Init_thread on construction unless MPI is already initialised (then it owns nothing),
// MPI_Finalize on destruction. A program started without mpirun is a world of one (singleton).
class Session {
 public:
  Session();
  ~Session();
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

 private:
  bool owns_ = false;
};

class Comm {
 public:
  // A view of `comm` (not owned). Errors on it are returned (and turned into sfc::Error), not fatal.
  explicit Comm(MPI_Comm comm = MPI_COMM_WORLD);
  // Collective: a private duplicate, owned and freed by the result, so a pass's messages never meet
  // its caller's.
  Comm duplicate() const;
  ~Comm();
  Comm(Comm&& other) noexcept;
  Comm& operator=(Comm&&) = delete;
  Comm(const Comm&) = delete;
  Comm& operator=(const Comm&) = delete;

  MPI_Comm native() const { return comm_; }
  int rank() const { return rank_; }
  int size() const { return size_; }
  // Rank among the ranks of this node (picks the GPU).
  int local_rank() const { return local_rank_; }

  // ---- collectives: every rank calls them in the same order ----
  void barrier() const;
  bool any(bool flag) const;  // logical or over ranks
  int64_t max(int64_t value) const;
  int64_t sum(int64_t value) const;
  void max_in_place(std::vector<int64_t>& values) const;  // element-wise max over ranks
  int first_rank_with(bool flag) const;                   // lowest rank whose flag is set, or -1
  std::string broadcast(const std::string& text, int root) const;
  void broadcast_bytes(void* data, int64_t n_bytes, int root) const;
  // Every rank's values, rank-major, on rank 0 (empty elsewhere). Same length on every rank.
  std::vector<double> gather_to_root(const std::vector<double>& values) const;
  // Every rank's values in rank order on `root` (empty elsewhere); lengths may differ.
  std::vector<float> gather(const std::vector<float>& values, int root) const;
  // Sums `n` fp64 values over ranks onto rank 0 in rank order (0 + 1 + 2 ...), one partial at a
  // time, so the result does not depend on MPI's reduction tree. Other ranks' data is left as it was.
  void sum_to_root_in_rank_order(double* data, int64_t n) const;

  // ---- point to point, fp64: messages from one rank with one tag arrive in sending order ----
  std::vector<double> receive(int source, int tag) const;
  // A non-blocking send whose buffer lives until wait_all(), so a rank can compute its next
  // partial while the receiver is still busy.
  void send_later(std::vector<double> values, int dest, int tag);
  void wait_all();

  // Ends every rank of the job now: a rank that failed alone must not leave the others hung in a
  // collective.
  [[noreturn]] void abort(int code) const;

 private:
  MPI_Comm comm_ = MPI_COMM_NULL;
  bool owned_ = false;
  int rank_ = 0, size_ = 1, local_rank_ = 0;
  std::vector<std::vector<double>> send_buffers_;
  std::vector<MPI_Request> send_requests_;
};

namespace detail {
// Rank 0 of a failed vote: rethrows the lowest failing rank's error (its kind kept); other ranks
// throw ExitStatus, so a user reads the message once.
[[noreturn]] void report_vote(const Comm& comm, int who, const std::string& message, bool usage);
}  // namespace detail

// Runs `step` on every rank; if it failed anywhere, every rank throws: rank 0 the lowest failing
// rank's error ("rank R: ..." when R ≠ 0), the others ExitStatus{1 or 2}. For steps every rank
// reaches together (one collective vote after the step).
template <typename F>
void vote(const Comm& comm, F&& step) {
  std::string failure;
  bool usage = false;
  try {
    step();
  } catch (const UsageError& e) {
    failure = e.what();
    usage = true;
  } catch (const std::exception& e) {
    failure = error_message(e);
    if (failure.empty()) failure = "unknown error";
  }
  const int who = comm.first_rank_with(!failure.empty());
  if (who >= 0) detail::report_vote(comm, who, failure, usage);
}

// Runs a step that a rank does on its own (no collective inside may wait on a failed rank). With
// several ranks a failure prints "sfc: error: rank R: ..." and ends the whole job instead of leaving
// the others hung in the next collective; alone, it simply propagates.
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

}  // namespace sfc::mpi
