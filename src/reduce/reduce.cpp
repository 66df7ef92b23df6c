// The reduction pass over a results file (docs/design.md §2 "Reduce", docs/results-schema.md "/summary").
//
//   1. every rank opens the file read-only (serial HDF5 driver) and checks it is a results file;
//   2. moments: the pairs are cut into leaves of leaf_rows pairs, the leaves into one contiguous block
//      per rank; each rank computes the partial moments of the largest summation-tree nodes inside
//      its block and sends them to rank 0, which merges the whole tree in its fixed order (so the
//      numbers do not depend on the rank count, nor on MPI's reduction algorithm);
//   3. Spearman needs every value of a group at once: one (site, layer), (site, position) or
//      (site, answer position) group at a time, the ranks send their complete (AtP, IG, patch)
//      triples in rank (= pair) order to the group's owner (groups dealt round-robin), which ranks
//      them; the r values go to rank 0 at the end;
//   4. every rank closes the file; rank 0 alone reopens it read-write and writes /summary, the
//      latent means and top latents (from /latents, which has no pair dimension), and the CSV.
//
// The steps live in their own files, sharing reduce_pass.h: results_file.cpp (step 1's checks),
// moments.cpp (2), spearman.cpp (3), summary_writer.cpp (4: /summary and the CSV). This file runs them.
#include "sfc/reduce/reduce.h"

#include <chrono>
#include <optional>
#include <string>
#include <utility>

#include "reduce_pass.h"
#include "sfc/core/error.h"
#include "sfc/h5/h5_file.h"
#include "sfc/mpi/comm.h"
#include "sfc/schema/results_schema.h"

namespace sfc::reduce {
using namespace detail;  // the pass's steps (reduce_pass.h)

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) { return std::chrono::duration<double>(Clock::now() - start).count(); }

}  // namespace

void ReduceOptions::validate() const {
  if (topk < 1) throw ConfigError("--topk = " + std::to_string(topk) + ": must be at least 1");
  if (leaf_rows < 1) throw ConfigError("--leaf-rows = " + std::to_string(leaf_rows) + ": must be at least 1");
}

fs::path summary_csv_path(const fs::path& file) {
  return file.parent_path() / (file.stem().string() + sc::kSummaryCsvSuffix);
}

ReduceReport summarize(const fs::path& file, const mpi::Comm& caller, const ReduceOptions& options) {
  const auto t_start = Clock::now();
  options.validate();
  Comm comm = caller.duplicate();  // the pass's messages never meet the caller's
  ReduceReport report;
  report.n_ranks = comm.size();

  // 1. open and check, on every rank; a bad file fails every rank with the same message.
  std::optional<h5::File> f;
  FileLayout layout;
  mpi::vote(comm, [&] {
    f.emplace(open_results_file(file));
    layout = check_results_file(*f);
  });
  report.n_pairs = layout.n_pairs;
  report.n_layer = layout.n_layer;
  report.n_tokens = layout.n_tokens;
  const Split split(layout.n_pairs, options.leaf_rows, comm.size());

  // 2-3. moments and Spearman groups.
  std::optional<Summary> summary;
  mpi::or_abort(comm, [&] {
    auto t = Clock::now();
    Partial moments = reduce_moments(*f, layout, split, comm);
    report.moments_s = seconds_since(t);
    t = Clock::now();
    const SpearmanResults spear = gather_spearman(*f, layout, split, comm);
    report.spearman_s = seconds_since(t);
    if (comm.rank() == 0) summary.emplace(finish_summary(std::move(moments), spear, layout.n_layer, layout.n_tokens));
    f->close();
    return 0;
  });
  f.reset();
  comm.barrier();  // every rank has closed the file before rank 0 opens it for writing

  // 4. rank 0 writes; every rank learns whether it worked.
  const auto t_write = Clock::now();
  mpi::vote(comm, [&] {
    if (comm.rank() != 0) return;
    write_summary(file, layout, *summary, options);
    if (options.write_csv) write_csv(summary_csv_path(file), *summary, layout.n_layer);
  });
  report.write_s = seconds_since(t_write);
  if (options.write_csv) report.csv = summary_csv_path(file);
  report.total_s = seconds_since(t_start);
  return report;
}

}  // namespace sfc::reduce
