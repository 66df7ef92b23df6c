// The distributed-job driver (docs/design.md §2 "Distribution"): what every batch command of sfc
// shares, so that a command only says what a batch is. On W MPI ranks (W = 1 without mpirun):
//
//   load     every rank loads its inputs (Client::load), the driver makes the work plan, and every
//            rank loads what its own nodes need (Client::load_own_work); any rank's bad input stops
//            all of them before anything is written, reported once (mpi::vote).
//   compute  each rank runs its batches (Client::compute) and appends every finished one to its
//            crash-safe shard; a signal (SIGTERM, SIGUSR1, SIGINT) ends the phase after the batch in
//            flight on every rank (exit kExitInterrupted, `--resume` continues); progress on rank 0.
//   combine  all ranks open the results file with MPI-IO (written as <out>.partial); batch b is read
//            back from its data group's shards and written by rank b mod W, collectively
//            (Client::write_batch); then Client::finish_output and the driver's /timing.
//   reduce   the shards go, and the client's summary pass runs over the finished file.
//
// The numbers never depend on W: batches are the same whatever the rank count, and every node of a
// batch is computed by exactly one rank with the same code as in a single process.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "sfc/job/phase_times.h"
#include "sfc/job/shard.h"
#include "sfc/job/work_plan.h"

namespace sfc::mpi {
class Comm;
}
namespace sfc::h5 {
class File;
}

namespace sfc::job {

// Exit status of a run stopped by SIGTERM/SIGUSR1/SIGINT after finishing its batch: its shards are
// complete and `--resume` continues it. 75 is EX_TEMPFAIL ("try again later") of sysexits.h.
inline constexpr int kExitInterrupted = 75;

// How a job runs, from the command's configuration.
struct JobSpec {
  std::string name = "sfc";                 // prefix of every log line ("sfc run")
  std::string item_noun = "items";          // what a batch holds, for the summary line ("pairs")
  std::filesystem::path output;             // the results file
  std::filesystem::path shard_dir;          // one shard file per rank
  std::string fingerprint;                  // what shard records depend on (resume refuses others)
  bool resume = false;                      // keep the batches the shards already hold
  bool keep_shards = false;                 // keep the shards after a successful combine
  int progress_seconds = 30;                // rank 0 log line this often (0: none)
};

// What Client::load found: the size of the job and the nodes its work plan splits.
struct JobShape {
  int64_t n_items = 0;     // N: pairs (or prompts) of the dataset
  int64_t batch_size = 1;  // items per batch; batch b holds items [b·batch_size, …)
  std::vector<SiteLayer> nodes;
  int64_t n_layer = 0;     // model depth, for the plan's cost model
  int site_groups = 1;     // G
};

// A batch command, as the driver sees it. Every method runs on every rank; "collective" ones are
// reached by all ranks together and may communicate.
class Client {
 public:
  virtual ~Client() = default;

  // Phase names in /timing's column order; must include "load", "comm" and "io".
  virtual std::vector<std::string> phases() const = 0;
  // Device the ranks compute on, for /timing ("cpu", "cuda:0").
  virtual std::string device() const = 0;

  // ---- load (inside one vote; no collectives) ----
  virtual JobShape load() = 0;
  virtual void load_own_work(const WorkPlan& plan, const RankWork& mine) = 0;
  // Collective, after a successful load: what ranks must agree on; rank 0 may log what it loaded.
  virtual void after_load(const mpi::Comm& comm, const WorkPlan& plan) = 0;

  // ---- compute: batch `batch` for this rank's nodes, as one shard record ----
  virtual ShardRecord compute(int64_t batch, const RankWork& mine, PhaseTimes& times) = 0;

  // ---- combine (collective) ----
  // Creates what the file holds; every rank with identical calls.
  virtual void begin_output(h5::File& file, const mpi::Comm& comm) = 0;
  // records[g] = site group g's record of one batch; empty: this rank has no batch this round and
  // takes part in the collective writes with nothing.
  virtual void write_batch(const std::vector<ShardRecord>& records) = 0;
  // After the last batch: dataset-level sums across ranks, closing datasets.
  virtual void finish_output(const mpi::Comm& comm, PhaseTimes& times) = 0;

  // ---- after the file is complete (collective) ----
  virtual void reduce(const std::filesystem::path& output, const mpi::Comm& comm) = 0;
  // Rank 0's last line on stdout.
  virtual std::string done_line() const = 0;
};

// Runs `client` as described at the top of this file on the ranks of `comm`. Returns 0, or
// kExitInterrupted after a signal. Bad input throws (mpi::vote: rank 0 the error, the others
// ExitStatus) before any output exists; a failure after that removes `<output>.partial`.
int run_job(Client& client, const JobSpec& spec, const mpi::Comm& comm);

}  // namespace sfc::job
