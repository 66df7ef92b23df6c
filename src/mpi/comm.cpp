// Every MPI call of the project, each return code checked here and nowhere else.
#include "sfc/mpi/comm.h"

#include <algorithm>
#include <climits>
#include <cstdlib>
#include <string>
#include <utility>

namespace sfc::mpi {

namespace {
// MPI counts are int: large buffers travel in pieces of this many values.
constexpr int64_t kPiece = int64_t{1} << 26;
constexpr int kTagRankOrderSum = 7;
}  // namespace

void check_mpi(int status, const char* what) {
  if (status == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING];
  int length = 0;
  MPI_Error_string(status, text, &length);
  throw Error(std::string(what) + ": " + std::string(text, length));
}

// ---- Session ----

Session::Session() {
  int initialized = 0;
  check_mpi(MPI_Initialized(&initialized), "MPI_Initialized");
  if (initialized) return;
  int provided = 0;
  // FUNNELED: only the main thread calls MPI; torch's own threads never do.
  check_mpi(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided), "MPI_Init_thread");
  owns_ = true;
}

Session::~Session() {
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (owns_ && !finalized) MPI_Finalize();
}

// ---- Comm: lifetime ----

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

Comm Comm::duplicate() const {
  MPI_Comm dup = MPI_COMM_NULL;
  check_mpi(MPI_Comm_dup(comm_, &dup), "MPI_Comm_dup");
  Comm out(dup);
  out.owned_ = true;
  return out;
}

Comm::Comm(Comm&& other) noexcept
    : comm_(std::exchange(other.comm_, MPI_COMM_NULL)),
      owned_(std::exchange(other.owned_, false)),
      rank_(other.rank_),
      size_(other.size_),
      local_rank_(other.local_rank_),
      send_buffers_(std::move(other.send_buffers_)),
      send_requests_(std::move(other.send_requests_)) {}

Comm::~Comm() {
  // Pending sends are only left behind by an exception, which aborts a multi-rank job anyway.
  if (owned_ && comm_ != MPI_COMM_NULL) MPI_Comm_free(&comm_);
}

// ---- collectives ----

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

void Comm::broadcast_bytes(void* data, int64_t n_bytes, int root) const {
  char* bytes = static_cast<char*>(data);
  for (int64_t at = 0; at < n_bytes; at += kPiece)
    check_mpi(MPI_Bcast(bytes + at, static_cast<int>(std::min(kPiece, n_bytes - at)), MPI_BYTE, root, comm_),
              "MPI_Bcast");
}

std::string Comm::broadcast(const std::string& text, int root) const {
  int64_t n = static_cast<int64_t>(text.size());
  check_mpi(MPI_Bcast(&n, 1, MPI_INT64_T, root, comm_), "MPI_Bcast(length)");
  std::string out = rank_ == root ? text : std::string(static_cast<size_t>(n), '\0');
  broadcast_bytes(out.data(), n, root);
  return out;
}

std::vector<double> Comm::gather_to_root(const std::vector<double>& values) const {
  if (values.size() > static_cast<size_t>(INT_MAX / size_))
    throw Error("MPI_Gather: " + std::to_string(values.size()) + " values per rank (too many)");
  std::vector<double> out(rank_ == 0 ? values.size() * static_cast<size_t>(size_) : 0);
  check_mpi(MPI_Gather(values.data(), static_cast<int>(values.size()), MPI_DOUBLE, out.data(),
                       static_cast<int>(values.size()), MPI_DOUBLE, 0, comm_),
            "MPI_Gather");
  return out;
}

std::vector<float> Comm::gather(const std::vector<float>& values, int root) const {
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

void Comm::sum_to_root_in_rank_order(double* data, int64_t n) const {
  if (rank_ != 0) {
    for (int64_t at = 0; at < n; at += kPiece)
      check_mpi(MPI_Send(data + at, static_cast<int>(std::min(kPiece, n - at)), MPI_DOUBLE, 0, kTagRankOrderSum,
                         comm_),
                "MPI_Send(partial sum)");
    return;
  }
  std::vector<double> partial(static_cast<size_t>(n));
  for (int r = 1; r < size_; ++r) {
    for (int64_t at = 0; at < n; at += kPiece)
      check_mpi(MPI_Recv(partial.data() + at, static_cast<int>(std::min(kPiece, n - at)), MPI_DOUBLE, r,
                         kTagRankOrderSum, comm_, MPI_STATUS_IGNORE),
                "MPI_Recv(partial sum)");
    for (int64_t i = 0; i < n; ++i) data[i] += partial[static_cast<size_t>(i)];
  }
}

// ---- point to point ----

std::vector<double> Comm::receive(int source, int tag) const {
  MPI_Status status;
  check_mpi(MPI_Probe(source, tag, comm_, &status), "MPI_Probe");
  int count = 0;
  check_mpi(MPI_Get_count(&status, MPI_DOUBLE, &count), "MPI_Get_count");
  std::vector<double> out(static_cast<size_t>(count));
  check_mpi(MPI_Recv(out.data(), count, MPI_DOUBLE, source, tag, comm_, MPI_STATUS_IGNORE), "MPI_Recv");
  return out;
}

void Comm::send_later(std::vector<double> values, int dest, int tag) {
  if (values.size() > static_cast<size_t>(INT_MAX))
    throw Error("MPI_Isend: " + std::to_string(values.size()) + " values (more than INT_MAX)");
  send_buffers_.push_back(std::move(values));
  const auto& buffer = send_buffers_.back();
  MPI_Request request;
  check_mpi(MPI_Isend(buffer.data(), static_cast<int>(buffer.size()), MPI_DOUBLE, dest, tag, comm_, &request),
            "MPI_Isend");
  send_requests_.push_back(request);
}

void Comm::wait_all() {
  check_mpi(MPI_Waitall(static_cast<int>(send_requests_.size()), send_requests_.data(), MPI_STATUSES_IGNORE),
            "MPI_Waitall");
  send_requests_.clear();
  send_buffers_.clear();
}

void Comm::abort(int code) const {
  MPI_Abort(comm_, code);
  std::_Exit(code);  // MPI_Abort does not return; this keeps [[noreturn]] honest
}

// ---- the vote ----

void detail::report_vote(const Comm& comm, int who, const std::string& message, bool usage) {
  const std::string text = comm.broadcast(message, who);
  int is_usage = usage ? 1 : 0;
  comm.broadcast_bytes(&is_usage, sizeof is_usage, who);
  if (comm.rank() != 0) throw ExitStatus{is_usage ? 2 : 1};
  const std::string where = comm.size() > 1 && who != 0 ? "rank " + std::to_string(who) + ": " : "";
  if (is_usage) throw UsageError(where + text);
  throw Error(where + text);
}

}  // namespace sfc::mpi
