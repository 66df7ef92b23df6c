// `sfc run`, single process: everything that can fail on bad input (config, model, tokenizer, pairs,
// SAEs, output folder) is loaded and checked before the results file is created; then batches go
// through the engines into the writer, and the file is committed under its final name at the end.
#include "sfc/app/run_command.h"

#include <torch/torch.h>

#include <chrono>
#include <cstdio>
#include <iostream>
#include <optional>

#include "sfc/app/device.h"
#include "sfc/core/error.h"
#include "sfc/data/pairs.h"
#include "sfc/engines/engines.h"
#include "sfc/h5/h5_file.h"
#include "sfc/model/gemma2.h"
#include "sfc/output/results_writer.h"
#include "sfc/sae/sae.h"
#include "sfc/text/tokenizer.h"

namespace sfc::app {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
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

// The SAEs of the requested sites and layers, in the model's dtype on its device.
engines::SaeSet load_saes(const RunConfig& config, const model::Gemma2Impl& model,
                          const std::vector<int64_t>& layers) {
  const auto& mc = model.config();
  const sae::SaeLocator locator(config.sae.path, sae::SaeSelection{config.sae.release, config.sae.width, config.sae.l0});
  engines::SaeSet saes;
  for (auto& per_site : saes.sae) per_site.resize(mc.n_layer);
  for (Site site : config.sae.site_list())
    for (int64_t layer : layers)
      saes.sae[static_cast<int>(site)][layer] =
          sae::load_sae(locator.locate(site, layer), mc.site_width(site), model.dtype(), model.device());
  return saes;
}

}  // namespace

void run_attribution(const RunConfig& config, const std::string& command_line) {
  const auto t_start = Clock::now();
  config.validate();
  const fs::path out = config.output.path;
  check_output_path(out);
  const auto runtime = resolve_runtime(config);

  // ---- load and check every input ----
  model::Gemma2 model = model::load_gemma2(
      config.model.path, model::ModelOptions{runtime.resolved_dtype, runtime.resolved_device});
  const auto& mc = model->config();
  std::vector<int64_t> layers = config.sae.layer_list();
  for (int64_t layer : layers)
    if (layer >= mc.n_layer)
      throw ConfigError("sae.layers = '" + config.sae.layers + "': layer " + std::to_string(layer) +
                        " does not exist (the model has " + std::to_string(mc.n_layer) + " layers, 0.." +
                        std::to_string(mc.n_layer - 1) + ")");
  if (layers.empty())
    for (int64_t l = 0; l < mc.n_layer; ++l) layers.push_back(l);

  const auto tokenizer = load_tokenizer(config, mc.vocab_size);
  data::LoadPairsOptions pair_options;
  pair_options.on_bad_record = config.data.on_bad_record == "skip" ? data::OnBadRecord::kSkip : data::OnBadRecord::kError;
  pair_options.vocab_size = mc.vocab_size;
  pair_options.bos_id = mc.bos_id;
  const auto dataset = data::load_pairs(config.data.pairs, tokenizer ? &*tokenizer : nullptr, pair_options);
  const engines::SaeSet saes = load_saes(config, *model, layers);

  engines::EngineOptions options = config.engine_options();
  options.layers = layers;
  const bool run_atp = config.run.has_engine("atp"), run_ig = config.run.has_engine("ig"),
             run_patch = config.run.has_engine("patch");

  const int64_t N = static_cast<int64_t>(dataset.pairs.size()), L = mc.n_layer;
  const auto layout = output::ResultsLayout::make(dataset, L, saes, config.output.latent_output(), config.output.topk);
  const double load_s = seconds_since(t_start);
  std::cerr << "sfc run: loaded model (" << L << " layers), " << N << " pairs (T = " << layout.n_tokens << ", "
            << dataset.n_skipped << " skipped), SAEs for " << config.sae.sites << " in " << load_s << " s\n";

  // ---- run ----
  h5::H5Output output(out);
  double engine_s = 0, write_s = 0;
  {
    output::ResultsWriter writer(
        output.file(), layout,
        output::Provenance{config.to_string(), fs::absolute(config.model.path).string(),
                           fs::absolute(config.sae.path).string(), command_line});
    writer.write_dataset_info(dataset);
    const int64_t n_batches = (N + config.data.batch_size - 1) / config.data.batch_size;
    const auto t_run = Clock::now();
    for (int64_t first = 0, index = 0; first < N; first += config.data.batch_size, ++index) {
      const int64_t count = std::min(config.data.batch_size, N - first);
      auto t = Clock::now();
      const auto batch = data::make_batch(dataset, first, count, mc.pad_id, model->device());
      auto result = engines::empty_result(count, L, batch.n_tokens(), saes, options);
      const auto cache = engines::run_clean_and_patch(*model, batch, saes, options);
      if (cache.ld_clean.defined()) result.ld_clean = cache.ld_clean;
      if (cache.ld_patch.defined()) result.ld_patch = cache.ld_patch;
      if (run_atp) engines::run_atp(*model, batch, saes, options, cache, result);
      if (run_ig) engines::run_ig(*model, batch, saes, options, cache, result);
      if (run_patch) engines::run_patch(*model, batch, saes, options, cache, result);
      engine_s += seconds_since(t);
      t = Clock::now();
      writer.write(batch, result);
      write_s += seconds_since(t);
      const int64_t done = first + count;
      char line[160];
      std::snprintf(line, sizeof line, "sfc run: batch %lld/%lld: %lld/%lld pairs, %.2f pairs/s\n",
                    static_cast<long long>(index + 1), static_cast<long long>(n_batches),
                    static_cast<long long>(done), static_cast<long long>(N),
                    done / std::max(seconds_since(t_run), 1e-9));
      std::cerr << line << std::flush;
    }
    const auto t = Clock::now();
    writer.finish();
    write_s += seconds_since(t);
  }  // every dataset closed before commit
  output.commit();
  char summary[200];
  std::snprintf(summary, sizeof summary, "sfc run: load %.2f s, engines %.2f s, write %.2f s, total %.2f s\n",
                load_s, engine_s, write_s, seconds_since(t_start));
  std::cerr << summary;
  std::cout << "sfc run: wrote " << N << " pairs (L = " << L << ", T = " << layout.n_tokens << ") to "
            << out.string() << "\n";
}

int run_main(const CommandArgs& args) {
  const RunCommandLine parsed = parse_run_command_line(args.args);
  if (parsed.help) {
    std::cout << parsed.help_text << "\n";
    return 0;
  }
  if (parsed.print_config) {
    std::cout << parsed.config.to_string();
    return 0;
  }
  run_attribution(parsed.config, args.command_line);
  return 0;
}

}  // namespace sfc::app
