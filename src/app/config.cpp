// `sfc run` configuration: INI file + `--section.key=value` overrides on Boost.Program_options.
// The command line is stored first: program_options keeps the first value stored for a key, so an
// override always wins over the file, and a file value over the default.
#include "sfc/app/config.h"

#include <algorithm>
#include <boost/program_options.hpp>
#include <fstream>
#include <set>
#include <sstream>

#include "sfc/core/error.h"

namespace po = boost::program_options;

namespace sfc::app {
namespace {

std::string trim(const std::string& s) {
  const size_t b = s.find_first_not_of(" \t\r\n");
  if (b == std::string::npos) return "";
  return s.substr(b, s.find_last_not_of(" \t\r\n") - b + 1);
}

// "a, b,c" -> {"a","b","c"}; an empty item is a ConfigError naming the key.
std::vector<std::string> split_list(const std::string& key, const std::string& value) {
  std::vector<std::string> items;
  size_t begin = 0;
  while (true) {
    const size_t end = value.find(',', begin);
    const std::string item = trim(value.substr(begin, end == std::string::npos ? std::string::npos : end - begin));
    if (item.empty()) throw ConfigError(key + " = '" + value + "': empty item in the comma list");
    items.push_back(item);
    if (end == std::string::npos) break;
    begin = end + 1;
  }
  return items;
}

int64_t parse_int(const std::string& key, const std::string& value, const std::string& item) {
  size_t used = 0;
  long long v = 0;
  try {
    v = std::stoll(item, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used == 0 || used != item.size())
    throw ConfigError(key + " = '" + value + "': '" + item + "' is not an integer");
  return v;
}

void require_one_of(const std::string& key, const std::string& value, std::initializer_list<const char*> allowed) {
  std::string list;
  for (const char* a : allowed) {
    if (value == a) return;
    list += std::string(list.empty() ? "" : ", ") + a;
  }
  throw ConfigError(key + " = '" + value + "': expected one of " + list);
}

void require_set(const std::string& key, const std::string& value) {
  if (value.empty()) throw ConfigError(key + " is required (set it in the config file or with --" + key + "=...)");
}

void require_positive(const std::string& key, int64_t value) {
  if (value < 1) throw ConfigError(key + " = " + std::to_string(value) + ": must be >= 1");
}

// One INI section: "[name]" then "key = value" lines.
class IniWriter {
 public:
  explicit IniWriter(const char* section) { out_ << "[" << section << "]\n"; }
  template <typename T>
  IniWriter& key(const char* name, const T& value) {
    out_ << name << " = " << value << "\n";
    return *this;
  }
  std::string str() const { return out_.str(); }

 private:
  std::ostringstream out_;
};

}  // namespace

// ---- [model] ----

void ModelSection::add_options(po::options_description& desc) {
  desc.add_options()
      ("model.path", po::value(&path)->default_value(path), "Hugging Face Gemma-2 folder (config.json, *.safetensors)")
      ("model.dtype", po::value(&dtype)->default_value(dtype), "compute dtype: fp32 or bf16")
      ("model.device", po::value(&device)->default_value(device), "cpu, cuda, cuda:N or auto")
      ("model.tokenizer", po::value(&tokenizer)->default_value(tokenizer),
       "sentencepiece model (default <model.path>/tokenizer.model; needed only for text datasets)");
}

void ModelSection::validate(bool require_paths) const {
  if (require_paths) require_set("model.path", path);
  require_one_of("model.dtype", dtype, {"fp32", "bf16"});
  const bool cuda_n = device.rfind("cuda:", 0) == 0 && device.size() > 5 &&
                      device.find_first_not_of("0123456789", 5) == std::string::npos;
  if (device != "cpu" && device != "cuda" && device != "auto" && !cuda_n)
    throw ConfigError("model.device = '" + device + "': expected cpu, cuda, cuda:N or auto");
}

std::string ModelSection::to_string() const {
  return IniWriter("model").key("path", path).key("dtype", dtype).key("device", device).key("tokenizer", tokenizer).str();
}

// ---- [sae] ----

void SaeSection::add_options(po::options_description& desc) {
  desc.add_options()
      ("sae.path", po::value(&path)->default_value(path), "SAE folder in the Gemma Scope layout (or with canonical.json)")
      ("sae.release", po::value(&release)->default_value(release), "release prefix, e.g. gemma-scope-2b-pt (empty: the only one)")
      ("sae.width", po::value(&width)->default_value(width), "width folder, e.g. 16k (empty: the only one)")
      ("sae.l0", po::value(&l0)->default_value(l0), "canonical, or a number (nearest average_l0), or empty")
      ("sae.sites", po::value(&sites)->default_value(sites), "comma list of resid, mlp, attn")
      ("sae.layers", po::value(&layers)->default_value(layers), "all, or a comma list of layers");
}

std::vector<Site> SaeSection::site_list() const {
  std::vector<Site> out;
  for (const auto& item : split_list("sae.sites", sites)) {
    Site s;
    try {
      s = parse_site(item);
    } catch (const ConfigError&) {
      throw ConfigError("sae.sites = '" + sites + "': unknown site '" + item + "' (expected resid, mlp or attn)");
    }
    if (std::find(out.begin(), out.end(), s) != out.end())
      throw ConfigError("sae.sites = '" + sites + "': '" + item + "' given twice");
    out.push_back(s);
  }
  return out;
}

std::vector<int64_t> SaeSection::layer_list() const {
  if (trim(layers) == "all") return {};
  std::vector<int64_t> out;
  for (const auto& item : split_list("sae.layers", layers)) {
    const int64_t layer = parse_int("sae.layers", layers, item);
    if (layer < 0) throw ConfigError("sae.layers = '" + layers + "': layer " + item + " is negative");
    if (std::find(out.begin(), out.end(), layer) != out.end())
      throw ConfigError("sae.layers = '" + layers + "': layer " + item + " given twice");
    out.push_back(layer);
  }
  std::sort(out.begin(), out.end());
  return out;
}

void SaeSection::validate(bool require_paths) const {
  if (require_paths) require_set("sae.path", path);
  site_list();
  layer_list();
  if (!l0.empty() && l0 != "canonical" && l0.find_first_not_of("0123456789") != std::string::npos)
    throw ConfigError("sae.l0 = '" + l0 + "': expected canonical, a number, or nothing");
}

std::string SaeSection::to_string() const {
  return IniWriter("sae")
      .key("path", path).key("release", release).key("width", width).key("l0", l0)
      .key("sites", sites).key("layers", layers).str();
}

// ---- [data] ----

void DataSection::add_options(po::options_description& desc) {
  desc.add_options()
      ("data.pairs", po::value(&pairs)->default_value(pairs), "JSON-lines prompt pairs (SFC text format or pre-tokenised)")
      ("data.batch_size", po::value(&batch_size)->default_value(batch_size), "pairs per batch")
      ("data.on_bad_record", po::value(&on_bad_record)->default_value(on_bad_record), "error or skip (counted in the output)");
}

void DataSection::validate(bool require_paths) const {
  if (require_paths) require_set("data.pairs", pairs);
  require_positive("data.batch_size", batch_size);
  require_one_of("data.on_bad_record", on_bad_record, {"error", "skip"});
}

std::string DataSection::to_string() const {
  return IniWriter("data").key("pairs", pairs).key("batch_size", batch_size).key("on_bad_record", on_bad_record).str();
}

// ---- [run] ----

void RunSection::add_options(po::options_description& desc) {
  desc.add_options()
      ("run.engines", po::value(&engines)->default_value(engines), "comma list of atp, ig, patch")
      ("run.threads", po::value(&threads)->default_value(threads), "CPU threads for torch (0: OMP_NUM_THREADS, else 1)")
      ("run.progress_seconds", po::value(&progress_seconds)->default_value(progress_seconds),
       "progress on rank 0: a bar on a terminal, else a line every this many seconds (0: no progress output)");
}

void RunSection::validate() const {
  std::set<std::string> seen;
  for (const auto& item : split_list("run.engines", engines)) {
    if (item != "atp" && item != "ig" && item != "patch")
      throw ConfigError("run.engines = '" + engines + "': unknown engine '" + item + "' (expected atp, ig or patch)");
    if (!seen.insert(item).second) throw ConfigError("run.engines = '" + engines + "': '" + item + "' given twice");
  }
  if (threads < 0) throw ConfigError("run.threads = " + std::to_string(threads) + ": must be >= 0");
  if (progress_seconds < 0)
    throw ConfigError("run.progress_seconds = " + std::to_string(progress_seconds) + ": must be >= 0 (0: no progress)");
}

bool RunSection::has_engine(const std::string& name) const {
  const auto items = split_list("run.engines", engines);
  return std::find(items.begin(), items.end(), name) != items.end();
}

std::string RunSection::to_string() const {
  return IniWriter("run").key("engines", engines).key("threads", threads).key("progress_seconds", progress_seconds).str();
}

// ---- [ig] ----

void IgSection::add_options(po::options_description& desc) {
  desc.add_options()("ig.steps", po::value(&steps)->default_value(steps), "IG steps N (alpha = 0, 1/N, ..., (N-1)/N)");
}

void IgSection::validate() const { require_positive("ig.steps", steps); }

std::string IgSection::to_string() const { return IniWriter("ig").key("steps", steps).str(); }

// ---- [patch] ----

void PatchSection::add_options(po::options_description& desc) {
  desc.add_options()
      ("patch.positions", po::value(&positions)->default_value(positions),
       "all, or a comma list of positions (negative: from the end, -1 = answer position)")
      ("patch.mode", po::value(&mode)->default_value(mode), "per_position, global or both")
      ("patch.max_rows", po::value(&max_rows)->default_value(max_rows), "interventions / IG steps stacked per forward");
}

std::vector<int64_t> PatchSection::position_numbers() const {
  std::vector<int64_t> out;
  if (trim(positions) == "all") return out;
  for (const auto& item : split_list("patch.positions", positions)) {
    const int64_t p = parse_int("patch.positions", positions, item);
    if (std::find(out.begin(), out.end(), p) != out.end())
      throw ConfigError("patch.positions = '" + positions + "': position " + item + " given twice");
    out.push_back(p);
  }
  return out;
}

void PatchSection::validate() const {
  position_numbers();
  require_one_of("patch.mode", mode, {"per_position", "global", "both"});
  require_positive("patch.max_rows", max_rows);
}

std::string PatchSection::to_string() const {
  return IniWriter("patch").key("positions", positions).key("mode", mode).key("max_rows", max_rows).str();
}

// ---- [output] ----

void OutputSection::add_options(po::options_description& desc) {
  desc.add_options()
      ("output.path", po::value(&path)->default_value(path), "results HDF5 file (written as <path>.partial, renamed when complete)")
      ("output.latents", po::value(&latents)->default_value(latents),
       "sum (dataset sums + per-pair top-k), full (every latent score, small models only) or none")
      ("output.topk", po::value(&topk)->default_value(topk), "latents kept per pair and node with output.latents = sum");
}

void OutputSection::validate(bool require_paths) const {
  if (require_paths) require_set("output.path", path);
  require_one_of("output.latents", latents, {"sum", "full", "none"});
  require_positive("output.topk", topk);
}

std::string OutputSection::to_string() const {
  return IniWriter("output").key("path", path).key("latents", latents).key("topk", topk).str();
}

// ---- [dist] ----

void DistSection::add_options(po::options_description& desc) {
  desc.add_options()
      ("dist.site_groups", po::value(&site_groups)->default_value(site_groups),
       "G: MPI ranks sharing each batch, each computing part of the (site, layer) nodes; must divide the rank count")
      ("dist.shards", po::value(&shards)->default_value(shards), "folder for per-rank shard files (default <output.path>.shards)")
      ("dist.keep_shards", po::value(&keep_shards)->default_value(keep_shards), "keep the shards after the results file is written");
}

void DistSection::validate() const { require_positive("dist.site_groups", site_groups); }

std::string DistSection::to_string() const {
  return IniWriter("dist").key("site_groups", site_groups).key("shards", shards).key("keep_shards", keep_shards).str();
}

// ---- RunConfig ----

void RunConfig::add_options(po::options_description& desc) {
  model.add_options(desc);
  sae.add_options(desc);
  data.add_options(desc);
  run.add_options(desc);
  ig.add_options(desc);
  patch.add_options(desc);
  output.add_options(desc);
  dist.add_options(desc);
}

void RunConfig::validate(bool require_paths) const {
  model.validate(require_paths);
  sae.validate(require_paths);
  data.validate(require_paths);
  run.validate();
  ig.validate();
  patch.validate();
  output.validate(require_paths);
  dist.validate();
}

std::string RunConfig::to_string() const {
  return model.to_string() + "\n" + sae.to_string() + "\n" + data.to_string() + "\n" + run.to_string() + "\n" +
         ig.to_string() + "\n" + patch.to_string() + "\n" + output.to_string() + "\n" + dist.to_string();
}

std::filesystem::path RunConfig::shard_dir() const {
  return dist.shards.empty() ? std::filesystem::path(output.path + ".shards") : std::filesystem::path(dist.shards);
}

std::string RunConfig::shard_fingerprint() const {
  ModelSection m = model;
  m.device = "";
  // [run] as it read before run.progress_seconds existed, so that older shards still resume.
  const std::string r = IniWriter("run").key("engines", run.engines).key("threads", 0).str();
  OutputSection o = output;
  o.path = "";
  return m.to_string() + sae.to_string() + data.to_string() + r + ig.to_string() + patch.to_string() +
         o.to_string() + "site_groups = " + std::to_string(dist.site_groups) + "\n";
}

std::filesystem::path RunConfig::tokenizer_path() const {
  if (!model.tokenizer.empty()) return model.tokenizer;
  return std::filesystem::path(model.path) / "tokenizer.model";
}

RunCommandLine parse_run_command_line(const std::vector<std::string>& args) {
  RunCommandLine out;
  po::options_description cli_only("Command line only");
  cli_only.add_options()
      ("help,h", "show this help")
      ("config", po::value(&out.config_file), "INI file with [model], [sae], [data], [run], [ig], [patch], [output], [dist]")
      ("print-config", "print the resolved configuration (INI) and exit")
      ("resume", "continue an interrupted run: keep the batches its shards already hold");
  po::options_description keys("Keys (in the INI file as [section] key = value, or here as --section.key=value)");
  out.config.add_options(keys);
  po::options_description all(
      "sfc run: attribution of SAE error nodes (AtP, integrated gradients, exact patching) into one HDF5 file\n"
      "Usage: sfc run --config FILE [--section.key=value ...] [--resume] [--print-config]\n"
      "       mpirun -np W sfc run ...   (W = data groups x dist.site_groups)");
  all.add(cli_only).add(keys);

  po::variables_map vm;
  std::set<std::string> cli_keys, file_keys;  // where each key was given, for naming the file in errors
  try {
    // No prefix guessing: "--model.dtyp" must be an unknown key, not model.dtype.
    const int style = po::command_line_style::default_style & ~po::command_line_style::allow_guessing;
    const auto parsed = po::command_line_parser(args).options(all).style(style).run();
    for (const auto& option : parsed.options) cli_keys.insert(option.string_key);
    po::store(parsed, vm);
  } catch (const po::error& e) {
    throw UsageError(std::string("sfc run: ") + e.what());
  }
  if (vm.count("help")) {
    std::ostringstream text;
    text << all;
    out.help = true;
    out.help_text = text.str();
    return out;
  }
  if (vm.count("config")) {
    const std::string file = vm["config"].as<std::string>();
    std::ifstream in(file);
    if (!in) throw LoadError(file, "cannot open the config file");
    try {
      const auto parsed = po::parse_config_file(in, keys, /*allow_unregistered=*/false);
      for (const auto& option : parsed.options) file_keys.insert(option.string_key);
      po::store(parsed, vm);
    } catch (const po::error& e) {
      throw UsageError(file + ": " + e.what());
    }
  }
  try {
    po::notify(vm);
  } catch (const po::error& e) {
    throw UsageError(std::string("sfc run: ") + e.what());
  }
  out.print_config = vm.count("print-config") > 0;
  out.resume = vm.count("resume") > 0;
  try {
    out.config.validate(/*require_paths=*/!out.print_config);
  } catch (const ConfigError& e) {
    // Messages start with the key ("ig.steps = 0: ..."); a value that came from the file names it.
    const std::string message = e.what();
    const std::string key = message.substr(0, message.find_first_of(" ="));
    if (file_keys.count(key) && !cli_keys.count(key)) throw ConfigError(out.config_file + ": " + message);
    throw;
  }
  return out;
}

}  // namespace sfc::app
