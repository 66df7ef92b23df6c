// The job driver: load → compute → combine → reduce for any Client (see driver.h), with the
// shards, signals, progress, phase timers and /timing that every batch command shares.
#include "sfc/job/driver.h"

#include <torch/torch.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <sstream>

#include "sfc/core/cpu_blas.h"
#include "sfc/core/error.h"
#include "sfc/h5/h5_file.h"
#include "sfc/job/progress.h"
#include "sfc/mpi/comm.h"
#include "sfc/schema/results_schema.h"

namespace sfc::job {
namespace {

namespace fs = std::filesystem;
namespace sc = schema;

// ---- signals: SLURM sends SIGTERM or the --signal of the job (SIGUSR1 here) before the limit ----
volatile std::sig_atomic_t g_stop_signal = 0;
extern "C" void on_stop_signal(int signal) { g_stop_signal = signal; }

// Also forgets a signal of an earlier job in this process (tests run several).
void install_stop_handlers() {
  g_stop_signal = 0;
  struct sigaction action {};
  action.sa_handler = on_stop_signal;
  sigemptyset(&action.sa_mask);
  for (int signal : {SIGTERM, SIGUSR1, SIGINT}) sigaction(signal, &action, nullptr);
}

void check_output_path(const fs::path& out) {
  if (fs::is_directory(out)) throw ConfigError("output.path = '" + out.string() + "' is a folder, not a file");
  const auto dir = fs::absolute(out).parent_path();
  if (!fs::is_directory(dir))
    throw ConfigError("output.path = '" + out.string() + "': folder " + dir.string() + " does not exist");
}

// ---- compute ----

struct ComputeOutcome {
  bool stopped = false;
  int signal = 0;
  int64_t batches_done = 0;  // over all ranks, including resumed ones
};

ComputeOutcome compute_phase(Client& client, const JobSpec& spec, const JobShape& shape, const WorkPlan& plan,
                             const mpi::Comm& comm, ShardWriter& shard, PhaseTimes& times) {
  const auto& work = plan.ranks[comm.rank()];
  const int64_t N = shape.n_items;
  const int64_t rounds = comm.max(static_cast<int64_t>(work.batches.size()));
  int64_t done = times.time(times.comm(), [&] { return comm.sum(static_cast<int64_t>(shard.completed().size())); });
  // With G site groups, every batch is done when all G ranks of its data group finished it.
  const int64_t G = plan.n_site_groups;
  const auto t_start = Clock::now();
  if (comm.rank() == 0 && done > 0)
    std::cerr << spec.name << ": resuming: " << done / G << "/" << plan.n_batches << " batches already in the shards\n";
  // Progress of the whole job, on rank 0 only, from the per-round sum below (no collective of its
  // own). Every batch but the dataset's last holds batch_size items, and the last one finishes in
  // the last round, so the item count is exact (after a resume, within one batch until the end).
  const auto items_in = [&](int64_t batches) { return std::min(N, batches * shape.batch_size); };
  ProgressReporter progress(std::cerr, is_terminal(STDERR_FILENO), comm.rank() == 0 ? spec.progress_seconds : 0,
                            ProgressState{items_in(done / G), N, done / G, plan.n_batches, items_in(done / G), 0.0,
                                          spec.name, spec.item_noun});

  ComputeOutcome outcome;
  for (int64_t round = 0; round < rounds; ++round) {
    bool did = false;
    if (round < static_cast<int64_t>(work.batches.size()) && !shard.has(work.batches[round])) {
      const int64_t b = work.batches[round];
      mpi::or_abort(comm, [&] {
        const auto record = client.compute(b, work, times);
        times.time(times.io(), [&] { shard.append(record); });
        times.batches += 1;
        times.items += std::min(shape.batch_size, N - b * shape.batch_size);
      });
      did = true;
    }
    // One vote per round: a signal on any rank stops all of them at the same batch boundary.
    const bool stop = times.time(times.comm(), [&] { return comm.any(g_stop_signal != 0); });
    const int64_t finished_now = times.time(times.comm(), [&] { return comm.sum(did ? 1 : 0); });
    done += finished_now;
    if (finished_now > 0) progress.update(items_in(done / G), done / G, seconds_since(t_start));
    if (stop && round + 1 < rounds) {
      outcome.stopped = true;
      outcome.signal = static_cast<int>(g_stop_signal);
      break;
    }
  }
  progress.finish();
  outcome.batches_done = done / G;
  return outcome;
}

// ---- combine ----

// Batch b is written by rank b mod W in round b / W; a rank without a batch in a round takes part
// with nothing, so every collective write lines up.
void combine_phase(Client& client, const JobSpec& spec, const WorkPlan& plan, const mpi::Comm& comm,
                   PhaseTimes& times) {
  const int64_t W = comm.size(), G = plan.n_site_groups;
  std::map<int, std::unique_ptr<ShardReader>> readers;
  auto reader = [&](int rank) -> ShardReader& {
    auto& r = readers[rank];
    if (!r) r = std::make_unique<ShardReader>(shard_path(spec.shard_dir, rank), spec.fingerprint);
    return *r;
  };
  const int64_t rounds = (plan.n_batches + W - 1) / W;
  for (int64_t round = 0; round < rounds; ++round) {
    const int64_t b = round * W + comm.rank();
    std::vector<ShardRecord> records;
    if (b < plan.n_batches) {
      records = times.time(times.io(), [&] {
        return mpi::or_abort(comm, [&] {
          std::vector<ShardRecord> of_batch;
          const int d = plan.data_group_of_batch(b);
          for (int g = 0; g < G; ++g) of_batch.push_back(reader(plan.rank_of(d, g)).read(b));
          return of_batch;
        });
      });
    }
    times.time(times.io(), [&] { mpi::or_abort(comm, [&] { client.write_batch(records); }); });
  }
  client.finish_output(comm, times);
}

// /timing: every rank's seconds per phase (`seconds`, rank-major, gathered on rank 0), batches,
// items and peak memory; attributes every rank writes with the same value.
void write_timing(h5::File& file, const mpi::Comm& comm, const WorkPlan& plan, const PhaseTimes& times,
                  const std::vector<double>& seconds, double wall_s, const std::string& device) {
  const int64_t W = comm.size(), P = static_cast<int64_t>(times.names().size());
  const auto counts = comm.gather_to_root({static_cast<double>(times.batches), static_cast<double>(times.items),
                                           static_cast<double>(peak_rss_bytes())});
  auto group = file.create_group(sc::kTiming);
  std::string phases;
  for (const auto& p : times.names()) phases += (phases.empty() ? "" : ",") + p;
  group.set_attribute(sc::kAttrPhases, phases);
  group.set_attribute(sc::kAttrWorldSize, std::to_string(W));
  group.set_attribute(sc::kAttrDataGroups, std::to_string(plan.n_data_groups));
  group.set_attribute(sc::kAttrSiteGroups, std::to_string(plan.n_site_groups));
  // Every rank must write the same attribute value: rank 0's wall time is the job's.
  group.set_attribute(sc::kAttrWallSeconds, comm.broadcast(std::to_string(wall_s), 0));
  group.set_attribute(sc::kAttrDevice, device);
  group.set_attribute(sc::kAttrThreads, std::to_string(torch::get_num_threads()));
  group.set_attribute(sc::kAttrCpuBlas, comm.broadcast(detect_cpu_blas().describe(), 0));  // rank 0's, as above
  auto ds_seconds =
      file.create_dataset(sc::path(sc::kTiming, sc::kTimingSeconds), h5::DatasetSpec(h5::Dtype::kFloat64, {W, P}));
  const bool root = comm.rank() == 0;
  ds_seconds.set_attribute(sc::kAttrDims, sc::kTimingSeconds.dims);
  ds_seconds.write(std::vector<int64_t>{0, 0}, root ? std::vector<int64_t>{W, P} : std::vector<int64_t>{0, 0},
                   seconds.data(), h5::Dtype::kFloat64);
  const std::vector<std::pair<const sc::Entry*, int>> per_rank = {
      {&sc::kTimingBatches, 0}, {&sc::kTimingPairs, 1}, {&sc::kTimingPeakRss, 2}};
  for (const auto& [entry, column] : per_rank) {
    auto ds = file.create_dataset(sc::path(sc::kTiming, *entry), h5::DatasetSpec(h5::Dtype::kInt64, {W}));
    ds.set_attribute(sc::kAttrDims, entry->dims);
    std::vector<int64_t> values;
    if (root)
      for (int64_t r = 0; r < W; ++r) values.push_back(static_cast<int64_t>(counts[r * 3 + column]));
    ds.write(std::vector<int64_t>{0}, std::vector<int64_t>{root ? W : 0}, values.data(), h5::Dtype::kInt64);
  }
}

void print_timing_summary(const JobSpec& spec, const mpi::Comm& comm, const WorkPlan& plan, const PhaseTimes& times,
                          const std::vector<double>& seconds, double wall_s, int64_t n_items) {
  if (comm.rank() != 0) return;
  const int64_t W = comm.size(), P = static_cast<int64_t>(times.names().size());
  std::ostringstream s;
  char line[200];
  std::snprintf(line, sizeof line, "%s: %lld %s on %s in %.2f s: %.3g %s/s\n", spec.name.c_str(),
                static_cast<long long>(n_items), spec.item_noun.c_str(), plan.describe().c_str(), wall_s,
                n_items / std::max(wall_s, 1e-9), spec.item_noun.c_str());
  s << line << "  phase        mean s     max s   (over ranks)\n";
  std::vector<double> compute(W, 0.0);
  for (int64_t p = 0; p < P; ++p) {
    double sum = 0, max = 0;
    for (int64_t r = 0; r < W; ++r) {
      const double x = seconds[r * P + p];
      sum += x;
      max = std::max(max, x);
      if (times.is_compute(static_cast<int>(p))) compute[r] += x;
    }
    std::snprintf(line, sizeof line, "  %-10s %8.2f  %8.2f\n", times.names()[p].c_str(), sum / W, max);
    s << line;
  }
  double mean = 0, max = 0;
  for (double c : compute) mean += c / W, max = std::max(max, c);
  std::snprintf(line, sizeof line, "  load imbalance (compute max/mean over ranks): %.2f\n", mean > 0 ? max / mean : 1.0);
  s << line;
  std::cerr << s.str();
}

}  // namespace

int run_job(Client& client, const JobSpec& spec, const mpi::Comm& comm) {
  const auto t_start = Clock::now();
  PhaseTimes times(client.phases());
  const fs::path& out = spec.output;

  // ---- load: every input checked on every rank before anything is written ----
  bool already_complete = false;
  mpi::vote(comm, [&] {
    check_output_path(out);
    if (comm.rank() == 0) {
      if (!spec.resume && fs::exists(spec.shard_dir))
        throw ConfigError("shards of an earlier, unfinished run are in " + spec.shard_dir.string() +
                          ": add --resume to continue it, or delete that folder to start over");
      already_complete = spec.resume && !fs::exists(spec.shard_dir) && fs::exists(out);
    }
  });
  if (comm.broadcast(already_complete ? "1" : "0", 0) == "1") {
    if (comm.rank() == 0) std::cout << spec.name << ": " << out.string() << " is complete; nothing to resume\n";
    return 0;
  }
  JobShape shape;
  WorkPlan plan;
  times.time(times.load(), [&] {
    mpi::vote(comm, [&] {
      shape = client.load();
      WorkPlanInput input;
      input.n_batches = (shape.n_items + shape.batch_size - 1) / shape.batch_size;
      input.nodes = shape.nodes;
      input.n_layer = shape.n_layer;
      input.world_size = comm.size();
      input.site_groups = shape.site_groups;
      plan = make_work_plan(input);
      client.load_own_work(plan, plan.ranks[comm.rank()]);
    });
  });
  client.after_load(comm, plan);

  // ---- compute: into this rank's shard ----
  std::unique_ptr<ShardWriter> shard;
  mpi::vote(comm, [&] {
    if (comm.rank() == 0) fs::create_directories(spec.shard_dir);
  });
  mpi::vote(comm, [&] {
    shard = std::make_unique<ShardWriter>(shard_path(spec.shard_dir, comm.rank()), spec.fingerprint, spec.resume);
  });
  install_stop_handlers();
  const auto outcome = compute_phase(client, spec, shape, plan, comm, *shard, times);
  shard.reset();
  if (outcome.stopped) {
    if (comm.rank() == 0)
      std::cerr << spec.name << ": stopped by signal " << outcome.signal << " after " << outcome.batches_done << "/"
                << plan.n_batches << " batches; the shards in " << spec.shard_dir.string()
                << " are complete: rerun with --resume to continue (exit " << kExitInterrupted << ")\n";
    return kExitInterrupted;
  }
  const double compute_wall_s = seconds_since(t_start);

  // ---- combine: one results file, written collectively ----
  std::vector<double> all_seconds;  // every rank's seconds per phase, on rank 0
  {
    h5::FileOptions options;
    options.comm = &comm;
    std::optional<h5::H5Output> output;
    times.time(times.io(), [&] { output.emplace(out, options); });
    client.begin_output(output->file(), comm);
    combine_phase(client, spec, plan, comm, times);
    all_seconds = comm.gather_to_root(times.seconds());
    write_timing(output->file(), comm, plan, times, all_seconds, compute_wall_s, client.device());
    // docs/style.md §9: collective on paper is not enough; the transfers must have been collective.
    mpi::or_abort(comm, [&] { output->file().require_collective("results file combine"); });
    if (comm.rank() == 0) {
      const auto& stats = output->file().io_stats();
      std::cerr << spec.name << ": combined with " << stats.collective << " collective transfer(s), "
                << stats.independent << " independent on rank 0\n";
    }
    output->commit();
  }
  print_timing_summary(spec, comm, plan, times, all_seconds, seconds_since(t_start), shape.n_items);

  // ---- the shards are now redundant ----
  comm.barrier();
  if (!spec.keep_shards) {
    fs::remove(shard_path(spec.shard_dir, comm.rank()));
    comm.barrier();
    if (comm.rank() == 0) fs::remove_all(spec.shard_dir);
  }

  // ---- reduce ----
  client.reduce(out, comm);
  if (comm.rank() == 0) std::cout << client.done_line() << "\n";
  return 0;
}

}  // namespace sfc::job
