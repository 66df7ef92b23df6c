// H5Output: a results file written as `<out>.partial` and renamed to `<out>` on commit (collectively
// in MPI-IO mode), removed when the output is abandoned.
#include <filesystem>
#include <string>
#include <system_error>

#include "sfc/core/error.h"
#include "sfc/h5/h5_file.h"
#include "sfc/mpi/comm.h"

namespace sfc::h5 {

// --- H5Output -----------------------------------------------------------------------------------

std::filesystem::path H5Output::partial_name(const std::filesystem::path& out) {
  return std::filesystem::path(out.string() + ".partial");
}

H5Output::H5Output(const std::filesystem::path& out, const FileOptions& options)
    : final_(out), partial_(partial_name(out)), comm_(options.comm) {
  file_.emplace(File::create(partial_, options));  // collective in MPI-IO mode
}

void H5Output::commit() {
  if (committed_) return;
  file_->close();
  const int rank = comm_ ? comm_->rank() : 0;
  // MPI-IO: every rank's data is in the file only once all ranks have closed it.
  if (comm_) comm_->barrier();
  std::error_code ec;
  if (rank == 0) std::filesystem::rename(partial_, final_, ec);
  // A broadcast of rank 0's result instead of a second barrier: it holds every rank back until the
  // rename is done just the same, and makes a failed rename an error on all ranks, not only on 0.
  int failed = ec ? 1 : 0;
  if (comm_) comm_->broadcast_bytes(&failed, sizeof failed, 0);
  if (failed)
    throw Error("cannot rename " + partial_.string() + " to " + final_.string() +
                (rank == 0 ? ": " + ec.message() : std::string(" (on rank 0)")));
  committed_ = true;
}

H5Output::~H5Output() {
  if (committed_) return;
  // Unfinished: close what we can (collectively in MPI-IO mode) and remove the partial file so
  // nothing looks like a result; one rank removes it, the others would race it.
  file_.reset();
  if (comm_ && comm_->rank() != 0) return;
  std::error_code ec;
  std::filesystem::remove(partial_, ec);
}

}  // namespace sfc::h5
