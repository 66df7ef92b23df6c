// `sfc cache`: prompts -> model forward with every site recorded -> one HDF5 file, batch by batch,
// so memory grows with --batch-size, never with the number of prompts.
#include "sfc/app/cache_command.h"

#include <torch/torch.h>

#include <boost/program_options.hpp>
#include <iostream>
#include <limits>
#include <sstream>

#include "sfc/core/error.h"
#include "sfc/core/shapes.h"
#include "sfc/core/site.h"
#include "sfc/h5/h5_file.h"
#include "sfc/model/gemma2.h"
#include "sfc/model/sites.h"
#include "sfc/text/tokenizer.h"

namespace po = boost::program_options;

namespace sfc::app {
namespace {

using TokenLists = std::vector<std::vector<int64_t>>;  // N lists of (T_i) ids

int64_t parse_id(const std::string& text, size_t prompt) {
  size_t used = 0;
  long long value = 0;
  try {
    value = std::stoll(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used == 0 || used != text.size())
    throw UsageError("--ids: prompt " + std::to_string(prompt) + ": '" + text + "' is not an integer token id");
  return value;
}

std::string trim(const std::string& s) {
  const size_t b = s.find_first_not_of(" \t\n");
  if (b == std::string::npos) return "";
  return s.substr(b, s.find_last_not_of(" \t\n") - b + 1);
}

// Every prompt non-empty and every id inside the model's vocabulary; messages name the prompt index.
void validate_tokens(const TokenLists& prompts, int64_t vocab_size) {
  if (prompts.empty()) throw UsageError("no prompts given (use --ids or --prompt)");
  for (size_t i = 0; i < prompts.size(); ++i) {
    if (prompts[i].empty()) throw UsageError("prompt " + std::to_string(i) + " is empty");
    for (size_t p = 0; p < prompts[i].size(); ++p) {
      const int64_t id = prompts[i][p];
      if (id < 0 || id >= vocab_size)
        throw ConfigError("prompt " + std::to_string(i) + ", position " + std::to_string(p) + ": token id " +
                          std::to_string(id) + " is outside the model's vocabulary [0, " +
                          std::to_string(vocab_size) + ")");
    }
  }
}

// The datasets of the cache file, created up front with their final shape and NaN / -1 fill, so a
// row that was never written reads as "not computed".
struct CacheDatasets {
  h5::Dataset tokens, lengths, logits;
  std::vector<h5::Dataset> sites;  // indexed by Site
};

CacheDatasets create_datasets(h5::File& file, int64_t n_prompts, int64_t n_tokens,
                              const model::Gemma2Config& config) {
  const int64_t N = n_prompts, T = n_tokens, V = config.vocab_size, L = config.n_layer;
  auto with_dims = [](h5::Dataset ds, const char* dims) {
    ds.set_attribute("dims", dims);
    return ds;
  };
  const double nan = std::numeric_limits<double>::quiet_NaN();
  CacheDatasets out{
      with_dims(file.create_dataset(cache_schema::kTokens, {h5::Dtype::kInt32, {N, T}, -1}), "N,T"),
      with_dims(file.create_dataset(cache_schema::kLengths, {h5::Dtype::kInt32, {N}, -1}), "N"),
      with_dims(file.create_dataset(cache_schema::kLogits, {h5::Dtype::kFloat32, {N, T, V}, nan}), "N,T,V"),
      {}};
  for (Site site : kAllSites) {
    const std::string path = std::string(cache_schema::kSites) + "/" + site_name(site);
    out.sites.push_back(with_dims(
        file.create_dataset(path, {h5::Dtype::kFloat32, {N, L, T, config.site_width(site)}, nan}), "N,L,T,W"));
  }
  return out;
}

// (B, Tb, ...) on any device/dtype -> contiguous fp32 on the CPU with NaN where `pad` (B, Tb).
torch::Tensor to_host_nan_padded(const torch::Tensor& x, const torch::Tensor& pad, int64_t token_dim) {
  auto mask = pad;  // (B, Tb) -> broadcastable to x
  for (int64_t d = 1; d < token_dim; ++d) mask = mask.unsqueeze(1);
  while (mask.dim() < x.dim()) mask = mask.unsqueeze(-1);
  return x.detach().to(torch::kCPU, torch::kFloat).masked_fill(mask, std::numeric_limits<float>::quiet_NaN())
      .contiguous();
}

void write_batch(CacheDatasets& ds, const model::Gemma2& model, const TokenLists& prompts, int64_t first,
                 int64_t count) {
  const auto& config = model->config();
  const int64_t B = count, L = config.n_layer;
  int64_t T = 0;
  for (int64_t b = 0; b < B; ++b) T = std::max<int64_t>(T, prompts[first + b].size());

  // Right padding: the model is causal, so real positions never see the pads.
  auto tokens = torch::full({B, T}, config.pad_id, torch::kLong);  // (B, T)
  auto stored = torch::full({B, T}, -1, torch::kInt);              // (B, T) what the file keeps
  auto lengths = torch::empty({B}, torch::kInt);                    // (B)
  for (int64_t b = 0; b < B; ++b) {
    const auto& ids = prompts[first + b];
    const int64_t n = ids.size();
    tokens[b].narrow(0, 0, n).copy_(torch::tensor(ids, torch::kLong));
    stored[b].narrow(0, 0, n).copy_(torch::tensor(ids, torch::kLong).to(torch::kInt));
    lengths[b] = static_cast<int>(n);
  }
  const auto pad = torch::arange(T).unsqueeze(0) >= lengths.to(torch::kLong).unsqueeze(1);  // (B, T) bool

  model::SiteCalls sites(L);
  sites.record_all(/*grad=*/false);
  torch::Tensor logits;  // (B, T, V)
  {
    torch::NoGradGuard no_grad;
    const auto h = model->forward(tokens.to(model->device()), &sites);  // (B, T, D)
    logits = model->logits(h);                                            // (B, T, V)
  }

  ds.tokens.write<int32_t>({first, 0}, {B, T}, stored.data_ptr<int32_t>());
  ds.lengths.write<int32_t>({first}, {B}, lengths.data_ptr<int32_t>());
  const auto host_logits = to_host_nan_padded(logits, pad, 1);  // (B, T, V)
  logits = torch::Tensor();
  ds.logits.write<float>({first, 0, 0}, {B, T, config.vocab_size}, host_logits.data_ptr<float>());
  for (Site site : kAllSites) {
    const int64_t W = config.site_width(site);
    std::vector<torch::Tensor> layers;
    for (int64_t l = 0; l < L; ++l) layers.push_back(sites.recorded(site, l));  // (B, T, W) each
    const auto x = torch::stack(layers, 1);                                       // (B, L, T, W)
    if (x.sizes() != torch::IntArrayRef({B, L, T, W}))
      throw Error(std::string("site ") + site_name(site) + " recorded with shape " + shape_str(x.sizes().vec()) +
                  ", expected " + shape_str({B, L, T, W}));
    const auto host = to_host_nan_padded(x, pad, 2);
    ds.sites[static_cast<int>(site)].write<float>({first, 0, 0, 0}, {B, L, T, W}, host.data_ptr<float>());
  }
}

}  // namespace

std::vector<std::vector<int64_t>> parse_id_lists(const std::string& text) {
  TokenLists prompts;
  size_t begin = 0;
  while (true) {
    const size_t end = text.find(';', begin);
    const std::string item = text.substr(begin, end == std::string::npos ? std::string::npos : end - begin);
    const size_t index = prompts.size();
    std::vector<int64_t> ids;
    if (trim(item).empty()) throw UsageError("--ids: prompt " + std::to_string(index) + " is empty");
    size_t b = 0;
    while (true) {
      const size_t e = item.find(',', b);
      ids.push_back(parse_id(trim(item.substr(b, e == std::string::npos ? std::string::npos : e - b)), index));
      if (e == std::string::npos) break;
      b = e + 1;
    }
    prompts.push_back(std::move(ids));
    if (end == std::string::npos) break;
    begin = end + 1;
  }
  return prompts;
}

void CacheOptions::validate() const {
  if (model_dir.empty()) throw UsageError("sfc cache: --model is required");
  if (out.empty()) throw UsageError("sfc cache: --out is required");
  if (ids.empty() == prompts.empty()) throw UsageError("sfc cache: give either --ids or --prompt (exactly one of them)");
  if (!tokenizer.empty() && prompts.empty()) throw UsageError("sfc cache: --tokenizer is only used with --prompt");
  if (batch_size < 1) throw UsageError("sfc cache: --batch-size must be >= 1, got " + std::to_string(batch_size));
}

void run_cache(const CacheOptions& options, const std::string& command_line) {
  // Everything that can fail on bad input is checked before the output file exists.
  TokenLists prompts;
  if (!options.ids.empty()) prompts = parse_id_lists(options.ids);
  const auto out_dir = std::filesystem::absolute(options.out).parent_path();
  if (!std::filesystem::is_directory(out_dir))
    throw ConfigError("--out " + options.out.string() + ": folder " + out_dir.string() + " does not exist");
  for (size_t i = 0; i < options.prompts.size(); ++i)
    if (options.prompts[i].empty()) throw UsageError("--prompt " + std::to_string(i) + " is empty");

  model::Gemma2 model = model::load_gemma2(
      options.model_dir, model::ModelOptions{options.runtime.resolved_dtype, options.runtime.resolved_device});
  const auto& config = model->config();

  std::filesystem::path tokenizer_file;
  if (!options.prompts.empty()) {
    tokenizer_file = options.tokenizer.empty() ? options.model_dir / "tokenizer.model" : options.tokenizer;
    text::Tokenizer tokenizer(tokenizer_file);
    if (tokenizer.vocab_size() > config.vocab_size)
      throw LoadError(tokenizer_file, "tokenizer has " + std::to_string(tokenizer.vocab_size()) +
                                          " pieces but the model's vocabulary is " +
                                          std::to_string(config.vocab_size) + " (wrong tokenizer for " +
                                          options.model_dir.string() + "?)");
    for (const auto& text : options.prompts) prompts.push_back(tokenizer.encode(text, /*add_bos=*/true));
  }
  validate_tokens(prompts, config.vocab_size);

  const int64_t N = prompts.size();
  int64_t T = 0;
  for (const auto& p : prompts) T = std::max<int64_t>(T, p.size());

  h5::H5Output output(options.out);
  auto& file = output.file();
  file.set_attribute("sfc_version", version());
  file.set_attribute("command_line", command_line);
  file.set_attribute("model", std::filesystem::absolute(options.model_dir).string());
  if (!tokenizer_file.empty()) file.set_attribute("tokenizer", std::filesystem::absolute(tokenizer_file).string());
  file.set_attribute("dtype", dtype_name(options.runtime.resolved_dtype));
  file.set_attribute("device", options.runtime.resolved_device.str());
  file.set_attribute("runtime", options.runtime.to_string());
  file.set_attribute("batch_size", std::to_string(options.batch_size));
  {
    CacheDatasets datasets = create_datasets(file, N, T, config);
    for (int64_t first = 0; first < N; first += options.batch_size)
      write_batch(datasets, model, prompts, first, std::min(options.batch_size, N - first));
  }  // datasets closed before commit
  output.commit();
  std::cout << "sfc cache: wrote " << N << " prompts (T = " << T << ") to " << options.out.string() << "\n";
}

int cache_main(const CommandArgs& args) {
  CacheOptions options;
  std::string model_dir, tokenizer, out;
  po::options_description desc(
      "sfc cache: run the model on prompts and store tokens, logits and every site's activation\n"
      "Usage: sfc cache --model DIR (--ids \"2,17,5;2,9,4\" | --prompt TEXT ...) --out FILE.h5 [options]");
  desc.add_options()
      ("help,h", "show this help")
      ("model", po::value(&model_dir), "Hugging Face Gemma-2 folder (config.json, model.safetensors)")
      ("ids", po::value(&options.ids), "prompts as token ids: comma-separated ids, ';' between prompts")
      ("prompt", po::value(&options.prompts)->composing(), "a prompt text (repeatable); BOS is prepended")
      ("tokenizer", po::value(&tokenizer), "sentencepiece model (default: <model>/tokenizer.model)")
      ("out", po::value(&out), "output HDF5 file (written as <out>.partial, renamed when complete)")
      ("batch-size", po::value(&options.batch_size)->default_value(options.batch_size), "prompts per forward");
  options.runtime.add_options(desc);

  po::variables_map vm;
  try {
    po::store(po::command_line_parser(args.args).options(desc).run(), vm);
    po::notify(vm);
  } catch (const po::error& e) {
    throw UsageError(std::string("sfc cache: ") + e.what());
  }
  if (vm.count("help")) {
    std::cout << desc << "\n";
    return 0;
  }
  options.model_dir = model_dir;
  options.tokenizer = tokenizer;
  options.out = out;
  options.validate();
  options.runtime.validate_and_apply();
  run_cache(options, args.command_line);
  return 0;
}

}  // namespace sfc::app
