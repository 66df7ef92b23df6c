// The configuration of `sfc run`: an INI file (`--config FILE`) whose sections mirror dotted flags,
// plus `--section.key=value` overrides on the command line (docs/style.md §6: one struct per section,
// each with add_options / validate / to_string). Parsing only: nothing here loads a model or a file
// other than the INI itself. Relative paths in the file are relative to the working directory.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "sfc/app/command.h"
#include "sfc/core/site.h"

namespace boost::program_options {
class options_description;
}  // namespace boost::program_options

// The engines' option types (sfc/engines/engine_types.h). The few methods that return them are
// compiled with the commands (src/app/config_engines.cpp), so that parsing a config, which is all
// `sfc run --print-config` does, needs no LibTorch (src/app/main.cpp never loads it for that).
namespace sfc::engines {
struct PatchPositions;
struct EngineOptions;
enum class LatentOutput;
}  // namespace sfc::engines

namespace sfc::app {

// [model]
struct ModelSection {
  std::string path;       // Hugging Face Gemma-2 folder
  std::string dtype = "fp32";    // fp32 | bf16
  std::string device = "cpu";    // cpu | cuda | cuda:N | auto
  std::string tokenizer;  // empty = <path>/tokenizer.model, loaded only when it exists or is named

  void add_options(boost::program_options::options_description& desc);
  void validate(bool require_paths) const;
  std::string to_string() const;
};

// [sae]
struct SaeSection {
  std::string path;      // Gemma Scope layout, optionally with canonical.json
  std::string release;   // see sae::SaeSelection
  std::string width;
  std::string l0;
  std::string sites = "resid,mlp,attn";
  std::string layers = "all";  // "all" or a comma list

  void add_options(boost::program_options::options_description& desc);
  void validate(bool require_paths) const;
  std::string to_string() const;

  std::vector<Site> site_list() const;        // in the order given, no repeats
  std::vector<int64_t> layer_list() const;    // empty = all layers
};

// [data]
struct DataSection {
  std::string pairs;  // JSON-lines file of prompt pairs
  int64_t batch_size = 8;
  std::string on_bad_record = "error";  // error | skip

  void add_options(boost::program_options::options_description& desc);
  void validate(bool require_paths) const;
  std::string to_string() const;
};

// [run]
struct RunSection {
  std::string engines = "atp,ig,patch";
  int threads = 0;  // 0 = OMP_NUM_THREADS, or 1 when unset
  int progress_seconds = 30;  // rank 0, stderr not a terminal: a progress line this often (0 = none)

  void add_options(boost::program_options::options_description& desc);
  void validate() const;
  std::string to_string() const;

  bool has_engine(const std::string& name) const;
};

// [ig]
struct IgSection {
  int64_t steps = 10;

  void add_options(boost::program_options::options_description& desc);
  void validate() const;
  std::string to_string() const;
};

// [patch]
struct PatchSection {
  std::string positions = "all";       // "all" or a comma list, negatives counted from the end
  std::string mode = "both";           // per_position | global | both
  int64_t max_rows = 64;               // interventions / IG steps stacked into one forward

  void add_options(boost::program_options::options_description& desc);
  void validate() const;
  std::string to_string() const;

  // The positions as numbers; empty = all. Throws ConfigError for a bad list.
  std::vector<int64_t> position_numbers() const;
  engines::PatchPositions position_list() const;  // config_engines.cpp
};

// [output]
struct OutputSection {
  std::string path;              // the HDF5 results file (written as <path>.partial first)
  std::string latents = "sum";   // sum | full | none
  int64_t topk = 32;

  void add_options(boost::program_options::options_description& desc);
  void validate(bool require_paths) const;
  std::string to_string() const;

  engines::LatentOutput latent_output() const;  // config_engines.cpp
};

// [dist]: how `sfc run` splits work over MPI ranks and keeps it safe on disk (docs/design.md §2).
struct DistSection {
  int site_groups = 1;      // G: ranks that share a data group's batches, each with part of the sites
  std::string shards;       // folder of per-rank shard files; empty = <output.path>.shards
  bool keep_shards = false; // keep the shards after a successful combine

  void add_options(boost::program_options::options_description& desc);
  void validate() const;
  std::string to_string() const;
};

struct RunConfig {
  ModelSection model;
  SaeSection sae;
  DataSection data;
  RunSection run;
  IgSection ig;
  PatchSection patch;
  OutputSection output;
  DistSection dist;

  // Every key of every section, named "<section>.<key>".
  void add_options(boost::program_options::options_description& desc);
  // Throws ConfigError naming the key and the bad value. `require_paths`: model.path, sae.path,
  // data.pairs and output.path must be set (not needed to print a config).
  void validate(bool require_paths = true) const;
  // The resolved configuration as INI text; parsing it back gives the same RunConfig.
  std::string to_string() const;

  // What the engines take from it (layers: empty = all); config_engines.cpp.
  engines::EngineOptions engine_options() const;
  std::filesystem::path tokenizer_path() const;  // model.tokenizer or its default
  std::filesystem::path shard_dir() const;       // dist.shards or <output.path>.shards
  // The keys that decide what a shard holds (not where it runs: device, threads, progress and the
  // output path are left out), for refusing to resume another run's shards.
  std::string shard_fingerprint() const;
};

// What the command line asked for besides the keys.
struct RunCommandLine {
  RunConfig config;
  std::string config_file;  // --config, empty if none
  bool print_config = false;
  bool resume = false;      // --resume: keep the finished batches of an interrupted run
  bool help = false;
  std::string help_text;
};

// Parses `sfc run` arguments: `--config FILE`, `--section.key=value` overrides (which win over the
// file), `--print-config`, `--help`. Unknown keys in the file or on the command line, and values
// that do not parse, are UsageErrors naming the key (and the file); a value that parses but is not
// allowed is a ConfigError naming key and value (and the file, when the value came from it).
// Validates unless help was asked for.
RunCommandLine parse_run_command_line(const std::vector<std::string>& args);

}  // namespace sfc::app
