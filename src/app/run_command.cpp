// `sfc run` on W MPI ranks (W = 1 without mpirun), in four phases (DESIGN.md §2 "Distribution"):
//   load     every rank loads the model, the pairs and the SAEs of its own nodes; any rank's bad
//            input stops all of them before anything is written, reported once.
//   compute  each rank runs the engines on its batches for its nodes and appends every finished
//            batch to its shard; a signal ends the phase after the batch in flight (exit 75).
//   combine  all ranks open the results file with MPI-IO; batch b is merged from its data group's
//            shards and written by rank b mod W, collectively; latent sums are added in rank order.
//   reduce   the summary pass over the finished file.
// The numbers never depend on W: batches are the same whatever the rank count, and every node of a
// batch is computed by exactly one rank with the same code as in a single process.
#include "sfc/app/run_command.h"

#include <sys/resource.h>
#include <torch/torch.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <functional>
#include <iostream>
#include <memory>
#include <optional>
#include <sstream>

#include "sfc/app/device.h"
#include "sfc/app/progress.h"
#include "sfc/app/shard_rows.h"
#include "sfc/core/cpu_blas.h"
#include "sfc/core/error.h"
#include "sfc/data/pairs.h"
#include "sfc/dist/comm.h"
#include "sfc/dist/shard.h"
#include "sfc/dist/work_plan.h"
#include "sfc/engines/engines.h"
#include "sfc/h5/h5_file.h"
#include "sfc/model/gemma2.h"
#include "sfc/output/results_schema.h"
#include "sfc/output/results_writer.h"
#include "sfc/reduce/reduce.h"
#include "sfc/sae/sae.h"
#include "sfc/text/tokenizer.h"
#if SFC_WITH_NCCL
#include "sfc/gpu/nccl_reduce.h"
#endif

namespace sfc::app {
namespace {

namespace fs = std::filesystem;
namespace sc = output::schema;
using dist::or_abort;
using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// ---- signals: SLURM sends SIGTERM or the --signal of the job (SIGUSR1 here) before the limit ----
volatile std::sig_atomic_t g_stop_signal = 0;
extern "C" void on_stop_signal(int signal) { g_stop_signal = signal; }

void install_stop_handlers() {
  struct sigaction action {};
  action.sa_handler = on_stop_signal;
  sigemptyset(&action.sa_mask);
  for (int signal : {SIGTERM, SIGUSR1, SIGINT}) sigaction(signal, &action, nullptr);
}

// ---- time per phase (schema kTimingPhases) ----
enum Phase { kLoad, kForward, kBackward, kSae, kIg, kPatch, kComm, kIo, kNumPhases };
static_assert(kNumPhases == sc::kTimingPhases.size());

struct PhaseTimes {
  std::vector<double> seconds = std::vector<double>(kNumPhases, 0.0);
  int64_t batches = 0, pairs = 0;
  // Runs f and adds its wall time to `phase`.
  template <typename F>
  auto time(Phase phase, F&& f) {
    const auto t = Clock::now();
    if constexpr (std::is_void_v<decltype(f())>) {
      f();
      seconds[phase] += seconds_since(t);
    } else {
      auto r = f();
      seconds[phase] += seconds_since(t);
      return r;
    }
  }
};

int64_t peak_rss_bytes() {
  struct rusage usage {};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<int64_t>(usage.ru_maxrss) * 1024;  // Linux reports KiB
}

// Runs `step` on every rank. If any rank fails, all of them stop: rank 0 reports the lowest failing
// rank's message (once), the others exit quietly. For steps every rank reaches together.
template <typename F>
void on_all_ranks(const dist::Comm& comm, F&& step) {
  std::string failure;
  bool usage = false;
  try {
    step();
  } catch (const UsageError& e) {
    failure = e.what();
    usage = true;
  } catch (const std::exception& e) {
    failure = dist::error_message(e);
  }
  const int who = comm.first_rank_with(!failure.empty());
  if (who < 0) return;
  const std::string message = comm.broadcast(failure, who);
  const bool is_usage = comm.broadcast(usage ? "1" : "0", who) == "1";
  if (comm.rank() != 0) throw ExitStatus{is_usage ? 2 : 1};
  const std::string where = comm.size() > 1 && who != 0 ? "rank " + std::to_string(who) + ": " : "";
  if (is_usage) throw UsageError(where + message);
  throw Error(where + message);
}

// RuntimeOptions speaks of flags (--device); here they are config keys.
RuntimeOptions resolve_runtime(const RunConfig& config) {
  RuntimeOptions runtime;
  runtime.device = config.model.device;
  runtime.dtype = config.model.dtype;
  runtime.threads = config.run.threads;
  try {
    runtime.validate_and_apply();
  } catch (const ConfigError& e) {
    std::string message = e.what();
    for (const auto& [flag, key] : {std::pair<std::string, std::string>{"--device", "model.device"},
                                    {"--dtype", "model.dtype"},
                                    {"--threads", "run.threads"}}) {
      const size_t at = message.find(flag);
      if (at != std::string::npos) message.replace(at, flag.size(), key);
    }
    throw ConfigError(message);
  }
  return runtime;
}

void check_output_path(const fs::path& out) {
  if (fs::is_directory(out)) throw ConfigError("output.path = '" + out.string() + "' is a folder, not a file");
  const auto dir = fs::absolute(out).parent_path();
  if (!fs::is_directory(dir))
    throw ConfigError("output.path = '" + out.string() + "': folder " + dir.string() + " does not exist");
}

// The tokenizer is needed only by text datasets: a named one must load; the default one is used
// when it exists (a pre-tokenised dataset needs none, and a text one then fails naming the need).
std::optional<text::Tokenizer> load_tokenizer(const RunConfig& config, int64_t model_vocab) {
  const fs::path file = config.tokenizer_path();
  if (config.model.tokenizer.empty() && !fs::exists(file)) return std::nullopt;
  text::Tokenizer tokenizer(file);
  if (tokenizer.vocab_size() > model_vocab)
    throw LoadError(file, "tokenizer has " + std::to_string(tokenizer.vocab_size()) +
                              " pieces but the model's vocabulary is " + std::to_string(model_vocab) +
                              " (wrong tokenizer for " + config.model.path + "?)");
  return tokenizer;
}

// Everything the compute phase needs, identical on every rank except `saes` (own nodes only).
struct Loaded {
  RuntimeOptions runtime;
  model::Gemma2 model{nullptr};
  data::PairDataset dataset;
  std::vector<int64_t> layers;
  engines::SaeSet saes;
  dist::WorkPlan plan;
  output::ResultsLayout layout;
  engines::EngineOptions options;
};

Loaded load_everything(const RunConfig& config, const dist::Comm& comm) {
  Loaded in;
  in.runtime = resolve_runtime(config);
  in.model = model::load_gemma2(config.model.path,
                                model::ModelOptions{in.runtime.resolved_dtype, in.runtime.resolved_device});
  const auto& mc = in.model->config();
  in.layers = config.sae.layer_list();
  for (int64_t layer : in.layers)
    if (layer >= mc.n_layer)
      throw ConfigError("sae.layers = '" + config.sae.layers + "': layer " + std::to_string(layer) +
                        " does not exist (the model has " + std::to_string(mc.n_layer) + " layers, 0.." +
                        std::to_string(mc.n_layer - 1) + ")");
  if (in.layers.empty())
    for (int64_t l = 0; l < mc.n_layer; ++l) in.layers.push_back(l);

  const auto tokenizer = load_tokenizer(config, mc.vocab_size);
  data::LoadPairsOptions pair_options;
  pair_options.on_bad_record = config.data.on_bad_record == "skip" ? data::OnBadRecord::kSkip : data::OnBadRecord::kError;
  pair_options.vocab_size = mc.vocab_size;
  pair_options.bos_id = mc.bos_id;
  in.dataset = data::load_pairs(config.data.pairs, tokenizer ? &*tokenizer : nullptr, pair_options);

  dist::WorkPlanInput plan_input;
  const int64_t N = static_cast<int64_t>(in.dataset.pairs.size());
  plan_input.n_batches = (N + config.data.batch_size - 1) / config.data.batch_size;
  for (Site site : config.sae.site_list())
    for (int64_t l : in.layers) plan_input.nodes.push_back({site, l});
  plan_input.n_layer = mc.n_layer;
  plan_input.world_size = comm.size();
  plan_input.site_groups = config.dist.site_groups;
  in.plan = dist::make_work_plan(plan_input);

  // Only this rank's SAEs: with site groups, no rank holds them all (the point for 131k-wide SAEs).
  const sae::SaeLocator locator(config.sae.path, sae::SaeSelection{config.sae.release, config.sae.width, config.sae.l0});
  for (auto& per_site : in.saes.sae) per_site.resize(mc.n_layer);
  for (const auto& node : in.plan.ranks[comm.rank()].nodes)
    in.saes.sae[static_cast<int>(node.site)][node.layer] = sae::load_sae(
        locator.locate(node.site, node.layer), mc.site_width(node.site), in.model->dtype(), in.model->device());

  in.options = config.engine_options();
  in.options.layers = in.layers;
  in.layout = output::ResultsLayout::make(in.dataset, mc.n_layer, in.saes, config.output.latent_output(),
                                          config.output.topk);
  return in;
}

// Every rank's latent widths are those of its own SAEs; the file needs all of them.
void share_latent_widths(output::ResultsLayout& layout, const dist::Comm& comm) {
  std::vector<int64_t> widths;
  for (const auto& w : layout.latent_width) widths.insert(widths.end(), w.begin(), w.end());
  comm.max_in_place(widths);
  auto it = widths.begin();
  for (auto& w : layout.latent_width)
    for (auto& x : w) x = *it++;
}

// ---- compute ----

struct ComputeOutcome {
  bool stopped = false;
  int signal = 0;
  int64_t batches_done = 0;  // over all ranks, including resumed ones
};

ComputeOutcome compute_phase(const RunConfig& config, const Loaded& in, const dist::Comm& comm,
                             dist::ShardWriter& shard, PhaseTimes& times) {
  const auto& work = in.plan.ranks[comm.rank()];
  const auto& mc = in.model->config();
  const bool run_atp = config.run.has_engine("atp"), run_ig = config.run.has_engine("ig"),
             run_patch = config.run.has_engine("patch");
  const int64_t N = static_cast<int64_t>(in.dataset.pairs.size()), L = mc.n_layer;
  const int64_t rounds = comm.max(static_cast<int64_t>(work.batches.size()));
  const int64_t n_batches = in.plan.n_batches;
  int64_t done = times.time(kComm, [&] { return comm.sum(static_cast<int64_t>(shard.completed().size())); });
  // With G site groups, every batch is done when all G ranks of its data group finished it.
  const int64_t G = in.plan.n_site_groups;
  const auto t_start = Clock::now();
  if (comm.rank() == 0 && done > 0)
    std::cerr << "sfc run: resuming: " << done / G << "/" << n_batches << " batches already in the shards\n";
  // Progress of the whole run, on rank 0 only, from the per-round sum below (no collective of its
  // own). Every batch but the dataset's last holds batch_size pairs, and the last one finishes in
  // the last round, so the pair count is exact (after a resume, within one batch until the end).
  const auto pairs_in = [&](int64_t batches) { return std::min(N, batches * config.data.batch_size); };
  ProgressReporter progress(std::cerr, is_terminal(STDERR_FILENO), comm.rank() == 0 ? config.run.progress_seconds : 0,
                            ProgressState{pairs_in(done / G), N, done / G, n_batches, pairs_in(done / G), 0.0});

  ComputeOutcome outcome;
  for (int64_t round = 0; round < rounds; ++round) {
    bool did = false;
    if (round < static_cast<int64_t>(work.batches.size()) && !shard.has(work.batches[round])) {
      const int64_t b = work.batches[round];
      or_abort(comm, [&] {
        const int64_t first = b * config.data.batch_size, count = std::min(config.data.batch_size, N - first);
        const auto batch = data::make_batch(in.dataset, first, count, mc.pad_id, in.model->device());
        auto result = engines::empty_result(count, L, batch.n_tokens(), in.saes, in.options);
        const auto cache = engines::run_clean_and_patch(*in.model, batch, in.saes, in.options);
        times.seconds[kForward] += cache.forward_s;
        times.seconds[kBackward] += cache.backward_s;
        if (cache.ld_clean.defined()) result.ld_clean = cache.ld_clean;
        if (cache.ld_patch.defined()) result.ld_patch = cache.ld_patch;
        if (run_atp) times.time(kSae, [&] { engines::run_atp(*in.model, batch, in.saes, in.options, cache, result); });
        if (run_ig) times.time(kIg, [&] { engines::run_ig(*in.model, batch, in.saes, in.options, cache, result); });
        if (run_patch) times.time(kPatch, [&] { engines::run_patch(*in.model, batch, in.saes, in.options, cache, result); });
        times.time(kIo, [&] {
          const auto rows = output::ResultsWriter::make_rows(in.layout, batch, result);
          shard.append(rows_to_record(b, rows, in.plan, work.site_group));
        });
        times.batches += 1;
        times.pairs += count;
      });
      did = true;
    }
    // One vote per round: a signal on any rank stops all of them at the same batch boundary.
    const bool stop = times.time(kComm, [&] { return comm.any(g_stop_signal != 0); });
    const int64_t finished_now = times.time(kComm, [&] { return comm.sum(did ? 1 : 0); });
    done += finished_now;
    if (finished_now > 0) progress.update(pairs_in(done / G), done / G, seconds_since(t_start));
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

// seconds: every rank's PhaseTimes::seconds, rank-major, on rank 0 (gathered once for this and the
// printed summary).
void write_timing(h5::File& file, const dist::Comm& comm, const dist::WorkPlan& plan, const PhaseTimes& times,
                  const std::vector<double>& seconds, double wall_s, const RuntimeOptions& runtime) {
  const int64_t W = comm.size(), P = kNumPhases;
  const auto counts = comm.gather_to_root({static_cast<double>(times.batches), static_cast<double>(times.pairs),
                                           static_cast<double>(peak_rss_bytes())});
  auto group = file.create_group(sc::kTiming);
  std::string phases;
  for (const char* p : sc::kTimingPhases) phases += std::string(phases.empty() ? "" : ",") + p;
  group.set_attribute(sc::kAttrPhases, phases);
  group.set_attribute(sc::kAttrWorldSize, std::to_string(W));
  group.set_attribute(sc::kAttrDataGroups, std::to_string(plan.n_data_groups));
  group.set_attribute(sc::kAttrSiteGroups, std::to_string(plan.n_site_groups));
  // Every rank must write the same attribute value: rank 0's wall time is the job's.
  group.set_attribute(sc::kAttrWallSeconds, comm.broadcast(std::to_string(wall_s), 0));
  group.set_attribute(sc::kAttrDevice, runtime.resolved_device.str());
  group.set_attribute(sc::kAttrThreads, std::to_string(torch::get_num_threads()));
  group.set_attribute(sc::kAttrCpuBlas, comm.broadcast(detect_cpu_blas().describe(), 0));  // rank 0's, as above
  auto ds_seconds = file.create_dataset(sc::path(sc::kTiming, sc::kTimingSeconds), h5::DatasetSpec(h5::Dtype::kFloat64, {W, P}));
  std::vector<std::pair<const sc::Entry*, int>> per_rank = {{&sc::kTimingBatches, 0}, {&sc::kTimingPairs, 1},
                                                            {&sc::kTimingPeakRss, 2}};
  const bool root = comm.rank() == 0;
  ds_seconds.set_attribute(sc::kAttrDims, sc::kTimingSeconds.dims);
  ds_seconds.write(std::vector<int64_t>{0, 0}, root ? std::vector<int64_t>{W, P} : std::vector<int64_t>{0, 0},
                   seconds.data(), h5::Dtype::kFloat64);
  for (const auto& [entry, column] : per_rank) {
    auto ds = file.create_dataset(sc::path(sc::kTiming, *entry), h5::DatasetSpec(h5::Dtype::kInt64, {W}));
    ds.set_attribute(sc::kAttrDims, entry->dims);
    std::vector<int64_t> values;
    if (root)
      for (int64_t r = 0; r < W; ++r) values.push_back(static_cast<int64_t>(counts[r * 3 + column]));
    ds.write(std::vector<int64_t>{0}, std::vector<int64_t>{root ? W : 0}, values.data(), h5::Dtype::kInt64);
  }
}

void print_timing_summary(const dist::Comm& comm, const dist::WorkPlan& plan, const std::vector<double>& seconds,
                          double wall_s, int64_t n_pairs) {
  if (comm.rank() != 0) return;
  const int64_t W = comm.size();
  std::ostringstream s;
  char line[160];
  std::snprintf(line, sizeof line, "sfc run: %lld pairs on %s in %.2f s: %.3g pairs/s\n",
                static_cast<long long>(n_pairs), plan.describe().c_str(), wall_s, n_pairs / std::max(wall_s, 1e-9));
  s << line << "  phase        mean s     max s   (over ranks)\n";
  std::vector<double> compute(W, 0.0);
  for (int p = 0; p < kNumPhases; ++p) {
    double sum = 0, max = 0;
    for (int64_t r = 0; r < W; ++r) {
      const double x = seconds[r * kNumPhases + p];
      sum += x;
      max = std::max(max, x);
      if (p >= kForward && p <= kPatch) compute[r] += x;
    }
    std::snprintf(line, sizeof line, "  %-10s %8.2f  %8.2f\n", sc::kTimingPhases[p], sum / W, max);
    s << line;
  }
  double mean = 0, max = 0;
  for (double c : compute) mean += c / W, max = std::max(max, c);
  std::snprintf(line, sizeof line, "  load imbalance (compute max/mean over ranks): %.2f\n", mean > 0 ? max / mean : 1.0);
  s << line;
  std::cerr << s.str();
}

// Dataset-level latent sums, in fp64, onto rank 0 (which writes them). On GPUs built with NCCL
// they go through NCCL (summation order: NCCL's ring, fixed for a given rank count); otherwise
// through MPI in rank order (0 + 1 + 2 ...), so the last bits do not depend on MPI's algorithm.
void sum_latent_totals(output::LatentTotals& totals, const dist::Comm& comm, const torch::Device& device) {
  std::vector<torch::Tensor*> sums;
  for (auto& s : totals.sums)
    for (auto* x : {&s.atp, &s.ig})
      if (x->defined()) sums.push_back(x);
  // The counts travel as fp64 too (exact below 2^53).
  std::vector<torch::Tensor> as_double = {totals.count.to(torch::kDouble).contiguous()};
  for (auto& s : totals.sums)
    for (auto* seen : {&s.atp_seen, &s.ig_seen})
      if (seen->defined()) as_double.push_back(seen->to(torch::kDouble).contiguous());
  for (auto& x : as_double) sums.push_back(&x);

#if SFC_WITH_NCCL
  if (device.is_cuda() && comm.size() > 1) {
    gpu::NcclReducer nccl(comm.get(), device.index());
    for (auto* x : sums) {
      auto on_gpu = x->to(device).contiguous();
      nccl.sum_in_place(on_gpu.data_ptr<double>(), static_cast<size_t>(on_gpu.numel()));
      *x = on_gpu.to(torch::kCPU);
    }
  } else
#endif
  {
    (void)device;
    for (auto* x : sums) comm.sum_to_root_in_rank_order(*x);
  }

  size_t i = 0;
  totals.count = as_double[i++].to(torch::kLong);
  for (auto& s : totals.sums)
    for (auto* seen : {&s.atp_seen, &s.ig_seen})
      if (seen->defined()) *seen = as_double[i++] > 0;
}

// Batch b is written by rank b mod W in round b / W; a rank without a batch in a round takes part
// with nothing, so every collective write lines up.
void combine_phase(const RunConfig& config, const Loaded& in, const dist::Comm& comm, h5::File& file,
                   output::ResultsWriter& writer, PhaseTimes& times) {
  const fs::path dir = config.shard_dir();
  const std::string fingerprint_base = config.shard_fingerprint();
  const int64_t W = comm.size(), G = in.plan.n_site_groups;
  std::map<int, std::unique_ptr<dist::ShardReader>> readers;
  auto reader = [&](int rank) -> dist::ShardReader& {
    auto& r = readers[rank];
    if (!r) r = std::make_unique<dist::ShardReader>(dist::shard_path(dir, rank), fingerprint_base);
    return *r;
  };
  const int64_t rounds = (in.plan.n_batches + W - 1) / W;
  for (int64_t round = 0; round < rounds; ++round) {
    const int64_t b = round * W + comm.rank();
    output::BatchRows rows;
    if (b < in.plan.n_batches) {
      rows = times.time(kIo, [&] {
        return or_abort(comm, [&] {
          std::vector<dist::ShardRecord> records;
          const int d = in.plan.data_group_of_batch(b);
          for (int g = 0; g < G; ++g) records.push_back(reader(in.plan.rank_of(d, g)).read(b));
          return merge_records(records, in.plan, in.layout);
        });
      });
    }
    times.time(kIo, [&] { or_abort(comm, [&] { writer.write_rows(rows); }); });
  }
  times.time(kComm, [&] { sum_latent_totals(writer.totals(), comm, in.runtime.resolved_device); });
  times.time(kIo, [&] { writer.finish(/*write_totals=*/comm.rank() == 0); });
}

std::string file_options_note(const h5::File& file) {
  const auto& stats = file.io_stats();
  return std::to_string(stats.collective) + " collective transfer(s), " + std::to_string(stats.independent) +
         " independent";
}

}  // namespace

int run_attribution(const RunConfig& config, bool resume, const std::string& command_line) {
  const auto t_start = Clock::now();
  const dist::Comm comm;
  PhaseTimes times;
  config.validate();
  const fs::path out = config.output.path, shard_dir = config.shard_dir();

  // ---- load: every input checked on every rank before anything is written ----
  Loaded in;
  bool already_complete = false;
  on_all_ranks(comm, [&] {
    check_output_path(out);
    if (comm.rank() == 0) {
      if (!resume && fs::exists(shard_dir))
        throw ConfigError("shards of an earlier, unfinished run are in " + shard_dir.string() +
                          ": add --resume to continue it, or delete that folder to start over");
      already_complete = resume && !fs::exists(shard_dir) && fs::exists(out);
    }
  });
  if (comm.broadcast(already_complete ? "1" : "0", 0) == "1") {
    if (comm.rank() == 0) std::cout << "sfc run: " << out.string() << " is complete; nothing to resume\n";
    return 0;
  }
  times.time(kLoad, [&] { on_all_ranks(comm, [&] { in = load_everything(config, comm); }); });
  share_latent_widths(in.layout, comm);
  const int64_t N = in.layout.n_pairs;
  if (comm.rank() == 0) {
    std::cerr << "sfc run: loaded model (" << in.layout.n_layer << " layers), " << N << " pairs (T = "
              << in.layout.n_tokens << ", " << in.dataset.n_skipped << " skipped); " << in.plan.describe() << "\n";
    const auto blas_hint = detect_cpu_blas().hint();
    if (in.runtime.resolved_device.is_cpu() && !blas_hint.empty()) std::cerr << "sfc run: " << blas_hint << "\n";
  }

  // ---- compute: into this rank's shard ----
  std::unique_ptr<dist::ShardWriter> shard;
  on_all_ranks(comm, [&] {
    if (comm.rank() == 0) fs::create_directories(shard_dir);
  });
  on_all_ranks(comm, [&] {
    shard = std::make_unique<dist::ShardWriter>(dist::shard_path(shard_dir, comm.rank()), config.shard_fingerprint(),
                                                resume);
  });
  install_stop_handlers();
  const auto outcome = compute_phase(config, in, comm, *shard, times);
  shard.reset();
  if (outcome.stopped) {
    if (comm.rank() == 0)
      std::cerr << "sfc run: stopped by signal " << outcome.signal << " after " << outcome.batches_done << "/"
                << in.plan.n_batches << " batches; the shards in " << shard_dir.string()
                << " are complete: rerun with --resume to continue (exit " << kExitInterrupted << ")\n";
    return kExitInterrupted;
  }
  const double compute_wall_s = seconds_since(t_start);

  // ---- combine: one results file, written collectively ----
  std::vector<double> all_seconds;  // every rank's seconds per phase, on rank 0
  {
    h5::FileOptions options;
    options.comm = comm.get();
    std::optional<h5::H5Output> output;
    times.time(kIo, [&] { output.emplace(out, options); });
    {
      output::ResultsWriter writer(
          output->file(), in.layout,
          output::Provenance{config.to_string(), fs::absolute(config.model.path).string(),
                             fs::absolute(config.sae.path).string(), command_line});
      writer.write_dataset_info(in.dataset);
      combine_phase(config, in, comm, output->file(), writer, times);
      all_seconds = comm.gather_to_root(times.seconds);
      write_timing(output->file(), comm, in.plan, times, all_seconds, compute_wall_s, in.runtime);
    }
    // STYLE.md §9: collective on paper is not enough; the transfers must have been collective.
    or_abort(comm, [&] { output->file().require_collective("results file combine"); });
    if (comm.rank() == 0) std::cerr << "sfc run: combined with " << file_options_note(output->file()) << " on rank 0\n";
    output->commit();
  }
  print_timing_summary(comm, in.plan, all_seconds, seconds_since(t_start), N);

  // ---- the shards are now redundant ----
  comm.barrier();
  if (!config.dist.keep_shards) {
    fs::remove(dist::shard_path(shard_dir, comm.rank()));
    comm.barrier();
    if (comm.rank() == 0) fs::remove_all(shard_dir);
  }

  // ---- reduce ----
  const auto report = reduce::summarize(out, comm.get(), reduce::ReduceOptions{});
  (void)report;
  if (comm.rank() == 0)
    std::cout << "sfc run: wrote " << N << " pairs (L = " << in.layout.n_layer << ", T = " << in.layout.n_tokens
              << ") to " << out.string() << "\n";
  return 0;
}

int run_main(const CommandArgs& args) {
  const dist::MpiSession mpi;  // finalised after every file of the run is closed
  const dist::Comm comm;
  // Every rank parses the same command line: rank 0 alone speaks for all of them.
  RunCommandLine parsed;
  on_all_ranks(comm, [&] { parsed = parse_run_command_line(args.args); });
  if (parsed.help || parsed.print_config) {
    if (comm.rank() == 0) std::cout << (parsed.help ? parsed.help_text + "\n" : parsed.config.to_string());
    return 0;
  }
  return run_attribution(parsed.config, parsed.resume, args.command_line);
}

}  // namespace sfc::app
