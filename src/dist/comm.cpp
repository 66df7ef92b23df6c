#include "sfc/dist/comm.h"

#include <torch/torch.h>

#include "sfc/core/error.h"

namespace sfc::dist {

void check_mpi(int status, const char* what) {
  if (status == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING];
  int length = 0;
  MPI_Error_string(status, text, &length);
  throw Error(std::string(what) + ": " + std::string(text, length));
}

MpiSession::MpiSession() {
  int initialized = 0;
  check_mpi(MPI_Initialized(&initialized), "MPI_Initialized");
  if (initialized) return;
  int provided = 0;
  // FUNNELED: only the main thread calls MPI; torch's own threads never do.
  check_mpi(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided), "MPI_Init_thread");
  owns_ = true;
}

MpiSession::~MpiSession() {
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (owns_ && !finalized) MPI_Finalize();
}

Comm::Comm(MPI_Comm comm) : comm_(comm) {
  check_mpi(MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN), "MPI_Comm_set_errhandler");
  check_mpi(MPI_Comm_rank(comm_, &rank_), "MPI_Comm_rank");
  check_mpi(MPI_Comm_size(comm_, &size_), "MPI_Comm_size");
  MPI_Comm node = MPI_COMM_NULL;
  check_mpi(MPI_Comm_split_type(comm_, MPI_COMM_TYPE_SHARED, rank_, MPI_INFO_NULL, &node), "MPI_Comm_split_type");
  const int status = MPI_Comm_rank(node, &local_rank_);
  MPI_Comm_free(&node);
  check_mpi(status, "MPI_Comm_rank(node)");
}

void Comm::barrier() const { check_mpi(MPI_Barrier(comm_), "MPI_Barrier"); }

bool Comm::any(bool flag) const {
  int in = flag ? 1 : 0, out = 0;
  check_mpi(MPI_Allreduce(&in, &out, 1, MPI_INT, MPI_LOR, comm_), "MPI_Allreduce(or)");
  return out != 0;
}

int64_t Comm::max(int64_t value) const {
  int64_t out = 0;
  check_mpi(MPI_Allreduce(&value, &out, 1, MPI_INT64_T, MPI_MAX, comm_), "MPI_Allreduce(max)");
  return out;
}

int64_t Comm::sum(int64_t value) const {
  int64_t out = 0;
  check_mpi(MPI_Allreduce(&value, &out, 1, MPI_INT64_T, MPI_SUM, comm_), "MPI_Allreduce(sum)");
  return out;
}

void Comm::max_in_place(std::vector<int64_t>& values) const {
  check_mpi(MPI_Allreduce(MPI_IN_PLACE, values.data(), static_cast<int>(values.size()), MPI_INT64_T, MPI_MAX, comm_),
            "MPI_Allreduce(max, vector)");
}

int Comm::first_rank_with(bool flag) const {
  int in = flag ? rank_ : size_, out = size_;
  check_mpi(MPI_Allreduce(&in, &out, 1, MPI_INT, MPI_MIN, comm_), "MPI_Allreduce(min)");
  return out == size_ ? -1 : out;
}

std::string Comm::broadcast(const std::string& text, int root) const {
  int64_t n = static_cast<int64_t>(text.size());
  check_mpi(MPI_Bcast(&n, 1, MPI_INT64_T, root, comm_), "MPI_Bcast(length)");
  if (n > INT32_MAX) throw Error("MPI_Bcast: a text of " + std::to_string(n) + " bytes");
  std::string out = rank_ == root ? text : std::string(static_cast<size_t>(n), '\0');
  if (n > 0) check_mpi(MPI_Bcast(out.data(), static_cast<int>(n), MPI_CHAR, root, comm_), "MPI_Bcast(text)");
  return out;
}

void Comm::sum_to_root_in_rank_order(torch::Tensor& x) const {
  TORCH_CHECK(x.scalar_type() == torch::kDouble && x.is_contiguous() && x.device().is_cpu(),
              "sum_to_root_in_rank_order: needs a contiguous CPU fp64 tensor");
  const int64_t n = x.numel();
  // Large buffers go in pieces: MPI counts are int.
  constexpr int64_t kPiece = int64_t{1} << 26;
  if (rank_ != 0) {
    for (int64_t at = 0; at < n; at += kPiece)
      check_mpi(MPI_Send(x.data_ptr<double>() + at, static_cast<int>(std::min(kPiece, n - at)), MPI_DOUBLE, 0, 7,
                         comm_),
                "MPI_Send(partial sum)");
    return;
  }
  auto partial = torch::empty_like(x);
  for (int r = 1; r < size_; ++r) {
    for (int64_t at = 0; at < n; at += kPiece)
      check_mpi(MPI_Recv(partial.data_ptr<double>() + at, static_cast<int>(std::min(kPiece, n - at)), MPI_DOUBLE, r,
                         7, comm_, MPI_STATUS_IGNORE),
                "MPI_Recv(partial sum)");
    x.add_(partial);
  }
}

std::vector<double> Comm::gather_to_root(const std::vector<double>& values) const {
  if (values.size() > static_cast<size_t>(INT32_MAX / size_))
    throw Error("MPI_Gather: " + std::to_string(values.size()) + " values per rank (too many)");
  std::vector<double> out(rank_ == 0 ? values.size() * static_cast<size_t>(size_) : 0);
  check_mpi(MPI_Gather(values.data(), static_cast<int>(values.size()), MPI_DOUBLE, out.data(),
                       static_cast<int>(values.size()), MPI_DOUBLE, 0, comm_),
            "MPI_Gather");
  return out;
}

std::string error_message(const std::exception& e) {
  if (const auto* c10 = dynamic_cast<const c10::Error*>(&e)) return c10->what_without_backtrace();
  return e.what();
}

void Comm::abort(int code) const {
  MPI_Abort(comm_, code);
  std::_Exit(code);  // MPI_Abort does not return; this keeps [[noreturn]] honest
}

}  // namespace sfc::dist
