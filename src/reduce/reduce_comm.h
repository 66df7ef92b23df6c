// The MPI calls of the reduction pass, each return code checked in one place (STYLE.md §7): a private
// duplicate of the caller's communicator (the pass's messages never meet the caller's), the few
// collectives it needs, and ordered point-to-point transfers of partial moments. Private to src/reduce.
#pragma once

#include <mpi.h>

#include <memory>

#include <string>
#include <vector>

#include "sfc/dist/comm.h"

namespace sfc::reduce::detail {

using dist::check_mpi;

class ReduceComm {
 public:
  // Collective: duplicates `comm` (errors on the duplicate are returned, not fatal).
  explicit ReduceComm(MPI_Comm comm);
  ~ReduceComm();
  ReduceComm(const ReduceComm&) = delete;
  ReduceComm& operator=(const ReduceComm&) = delete;

  // The generic collectives (dist::Comm) on the same private communicator.
  const dist::Comm& collectives() const { return *collectives_; }
  int rank() const { return rank_; }
  int size() const { return size_; }

  void barrier() const;
  // Lowest rank whose flag is set, or -1.
  int first_rank_with(bool flag) const;
  std::string broadcast(const std::string& text, int root) const;
  // Point to point, fp64. Messages from one rank with one tag arrive in the order they were sent.
  std::vector<double> receive(int source, int tag) const;
  // Every rank's values in rank order on `root` (empty elsewhere); lengths may differ.
  std::vector<float> gather(const std::vector<float>& values, int root) const;
  // Every rank's values in rank order on rank 0 (empty elsewhere); the same length on every rank.
  std::vector<double> gather_same_length(const std::vector<double>& values) const;
  // Ends every rank of the job now: a rank that failed alone must not leave the others hung.
  [[noreturn]] void abort(int code) const;

  // Non-blocking sends whose buffers live until wait_all(), so a rank can compute its next partial
  // while rank 0 is still busy.
  void send_later(std::vector<double> values, int dest, int tag);
  void wait_all();

 private:
  MPI_Comm comm_ = MPI_COMM_NULL;
  int rank_ = 0, size_ = 1;
  std::unique_ptr<dist::Comm> collectives_;  // barrier, votes, broadcasts on comm_
  std::vector<std::vector<double>> send_buffers_;
  std::vector<MPI_Request> send_requests_;
};

}  // namespace sfc::reduce::detail
