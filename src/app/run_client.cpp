// `sfc run`'s batches, shard records and results file, for the job driver (see run_client.h).
#include "run_client.h"

#include <torch/torch.h>

#include <iostream>
#include <sstream>

#include "sfc/core/cpu_blas.h"
#include "sfc/core/error.h"
#include "sfc/h5/h5_file.h"
#include "sfc/mpi/comm.h"
#include "sfc/output/batch_records.h"
#include "sfc/reduce/reduce.h"
#include "sfc/sae/sae.h"
#include "sfc/schema/results_schema.h"
#include "sfc/text/tokenizer.h"
#if SFC_WITH_NCCL
#include "sfc/gpu/nccl_reduce.h"
#endif

namespace sfc::app {
namespace {

namespace fs = std::filesystem;

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

// Dataset-level latent sums, in fp64, onto rank 0 (which writes them). On GPUs built with NCCL
// they go through NCCL (summation order: NCCL's ring, fixed for a given rank count); otherwise
// through MPI in rank order (0 + 1 + 2 ...), so the last bits do not depend on MPI's algorithm.
void sum_latent_totals(output::LatentTotals& totals, const mpi::Comm& comm, const torch::Device& device) {
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
    gpu::NcclReducer nccl(comm, device.index());
    for (auto* x : sums) {
      auto on_gpu = x->to(device).contiguous();
      nccl.sum_in_place(on_gpu.data_ptr<double>(), static_cast<size_t>(on_gpu.numel()));
      *x = on_gpu.to(torch::kCPU);
    }
  } else
#endif
  {
    (void)device;
    for (auto* x : sums) {
      TORCH_CHECK(x->scalar_type() == torch::kDouble && x->is_contiguous() && x->device().is_cpu(),
                  "latent sums must be contiguous CPU fp64 tensors");
      comm.sum_to_root_in_rank_order(x->data_ptr<double>(), x->numel());
    }
  }

  size_t i = 0;
  totals.count = as_double[i++].to(torch::kLong);
  for (auto& s : totals.sums)
    for (auto* seen : {&s.atp_seen, &s.ig_seen})
      if (seen->defined()) *seen = as_double[i++] > 0;
}

}  // namespace

job::JobSpec run_job_spec(const RunConfig& config, bool resume) {
  job::JobSpec spec;
  spec.name = "sfc run";
  spec.item_noun = "pairs";
  spec.output = config.output.path;
  spec.shard_dir = config.shard_dir();
  spec.fingerprint = config.shard_fingerprint();
  spec.resume = resume;
  spec.keep_shards = config.dist.keep_shards;
  spec.progress_seconds = config.run.progress_seconds;
  return spec;
}

RunClient::RunClient(RunConfig config, std::string command_line)
    : config_(std::move(config)), command_line_(std::move(command_line)) {}

RunClient::~RunClient() = default;

std::vector<std::string> RunClient::phases() const {
  return {schema::kTimingPhases.begin(), schema::kTimingPhases.end()};
}

// ---- load ----

job::JobShape RunClient::load() {
  runtime_ = resolve_runtime(config_);
  model_ = model::load_gemma2(config_.model.path,
                              model::ModelOptions{runtime_.resolved_dtype, runtime_.resolved_device});
  const auto& mc = model_->config();
  layers_ = config_.sae.layer_list();
  for (int64_t layer : layers_)
    if (layer >= mc.n_layer)
      throw ConfigError("sae.layers = '" + config_.sae.layers + "': layer " + std::to_string(layer) +
                        " does not exist (the model has " + std::to_string(mc.n_layer) + " layers, 0.." +
                        std::to_string(mc.n_layer - 1) + ")");
  if (layers_.empty())
    for (int64_t l = 0; l < mc.n_layer; ++l) layers_.push_back(l);

  const auto tokenizer = load_tokenizer(config_, mc.vocab_size);
  data::LoadPairsOptions pair_options;
  pair_options.on_bad_record = config_.data.on_bad_record == "skip" ? data::OnBadRecord::kSkip : data::OnBadRecord::kError;
  pair_options.vocab_size = mc.vocab_size;
  pair_options.bos_id = mc.bos_id;
  dataset_ = data::load_pairs(config_.data.pairs, tokenizer ? &*tokenizer : nullptr, pair_options);

  job::JobShape shape;
  shape.n_items = static_cast<int64_t>(dataset_.pairs.size());
  shape.batch_size = config_.data.batch_size;
  for (Site site : config_.sae.site_list())
    for (int64_t l : layers_) shape.nodes.push_back({site, l});
  shape.n_layer = mc.n_layer;
  shape.site_groups = config_.dist.site_groups;
  return shape;
}

void RunClient::load_own_work(const job::WorkPlan& plan, const job::RankWork& mine) {
  plan_ = &plan;
  const auto& mc = model_->config();
  // Only this rank's SAEs: with site groups, no rank holds them all (the point for 131k-wide SAEs).
  const sae::SaeLocator locator(config_.sae.path, sae::SaeSelection{config_.sae.release, config_.sae.width, config_.sae.l0});
  for (auto& per_site : saes_.sae) per_site.resize(mc.n_layer);
  for (const auto& node : mine.nodes)
    saes_.sae[static_cast<int>(node.site)][node.layer] = sae::load_sae(
        locator.locate(node.site, node.layer), mc.site_width(node.site), torch::kFloat32, model_->device());

  options_ = config_.engine_options();
  options_.layers = layers_;
  layout_ = output::ResultsLayout::make(dataset_, mc.n_layer, saes_, config_.output.latent_output(), config_.output.topk);
}

void RunClient::after_load(const mpi::Comm& comm, const job::WorkPlan& plan) {
  // Every rank's latent widths are those of its own SAEs; the file needs all of them.
  std::vector<int64_t> widths;
  for (const auto& w : layout_.latent_width) widths.insert(widths.end(), w.begin(), w.end());
  comm.max_in_place(widths);
  auto it = widths.begin();
  for (auto& w : layout_.latent_width)
    for (auto& x : w) x = *it++;

  if (comm.rank() != 0) return;
  std::cerr << "sfc run: loaded model (" << layout_.n_layer << " layers), " << layout_.n_pairs << " pairs (T = "
            << layout_.n_tokens << ", " << dataset_.n_skipped << " skipped); " << plan.describe() << "\n";
  const auto blas_hint = detect_cpu_blas().hint();
  if (runtime_.resolved_device.is_cpu() && !blas_hint.empty()) std::cerr << "sfc run: " << blas_hint << "\n";
}

// ---- compute ----

job::ShardRecord RunClient::compute(int64_t b, const job::RankWork& mine, job::PhaseTimes& times) {
  const auto& mc = model_->config();
  const int64_t N = layout_.n_pairs, L = mc.n_layer;
  const int64_t first = b * config_.data.batch_size, count = std::min(config_.data.batch_size, N - first);
  const auto batch = data::make_batch(dataset_, first, count, mc.pad_id, model_->device());
  auto result = engines::empty_result(count, L, batch.n_tokens(), saes_, options_);
  const auto cache = engines::run_clean_and_patch(*model_, batch, saes_, options_);
  times.add(times.index("forward"), cache.forward_s);
  times.add(times.index("backward"), cache.backward_s);
  if (cache.ld_clean.defined()) result.ld_clean = cache.ld_clean;
  if (cache.ld_patch.defined()) result.ld_patch = cache.ld_patch;
  if (config_.run.has_engine("atp"))
    times.time(times.index("sae"), [&] { engines::run_atp(*model_, batch, saes_, options_, cache, result); });
  if (config_.run.has_engine("ig"))
    times.time(times.index("ig"), [&] { engines::run_ig(*model_, batch, saes_, options_, cache, result); });
  if (config_.run.has_engine("patch"))
    times.time(times.index("patch"), [&] { engines::run_patch(*model_, batch, saes_, options_, cache, result); });
  return times.time(times.io(), [&] {
    const auto rows = output::ResultsWriter::make_rows(layout_, batch, result);
    return output::rows_to_record(b, rows, *plan_, mine.site_group);
  });
}

// ---- combine ----

void RunClient::begin_output(h5::File& file, const mpi::Comm& comm) {
  (void)comm;  // every rank creates the same datasets: the file's MPI-IO mode makes it collective
  writer_ = std::make_unique<output::ResultsWriter>(
      file, layout_,
      output::Provenance{config_.to_string(), fs::absolute(config_.model.path).string(),
                         fs::absolute(config_.sae.path).string(), command_line_});
  writer_->write_dataset_info(dataset_);
}

void RunClient::write_batch(const std::vector<job::ShardRecord>& records) {
  output::BatchRows rows;
  if (!records.empty()) rows = output::merge_records(records, *plan_, layout_);
  writer_->write_rows(rows);
}

void RunClient::finish_output(const mpi::Comm& comm, job::PhaseTimes& times) {
  times.time(times.comm(), [&] { sum_latent_totals(writer_->totals(), comm, runtime_.resolved_device); });
  times.time(times.io(), [&] { writer_->finish(/*write_totals=*/comm.rank() == 0); });
  writer_.reset();
}

// ---- after the file is complete ----

void RunClient::reduce(const fs::path& output, const mpi::Comm& comm) {
  reduce::summarize(output, comm, reduce::ReduceOptions{});
}

std::string RunClient::done_line() const {
  std::ostringstream line;
  line << "sfc run: wrote " << layout_.n_pairs << " pairs (L = " << layout_.n_layer << ", T = " << layout_.n_tokens
       << ") to " << config_.output.path;
  return line.str();
}

}  // namespace sfc::app
