// The `sfc` executable: a front that needs neither LibTorch nor MPI. It prints the usage, and
// answers `sfc run --help` and `sfc run --print-config` by parsing the config alone (loading
// LibTorch and starting MPI took ~1.5 s, which --print-config and --help never needed). Every
// command with work to do is handed to libsfc_commands.so, loaded from the executable's own folder.
#include <dlfcn.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <string>
#include <vector>

#include "sfc/app/commands_entry.h"
#include "sfc/app/config.h"
#include "sfc/core/error.h"

namespace {

constexpr const char* kUsage =
    "Usage: sfc <command> [options]   (sfc <command> --help for its options)\n"
    "\n"
    "Commands:\n"
    "  run      attribution of SAE error nodes (AtP, IG, exact patching) over prompt pairs (HDF5)\n"
    "  reduce   summarise a results file: means, AtP/IG/patching correlations, top latents (/summary, CSV)\n"
    "  cache    run the model on prompts; store tokens, logits and all site activations (HDF5)\n"
    "  builtin  regenerate the built-in small Gemma-2 that does subject-verb agreement, with data and SAEs\n"
    "\n"
    "Options:\n"
    "  -h, --help     show this help\n"
    "  --version      print the version, and which BLAS runs CPU matmuls (with a hint when OpenBLAS\n"
    "                 picked kernels below what the CPU supports)\n";

// This process's rank as the launcher tells it (Open MPI, MPICH/PMI, SLURM), without starting MPI:
// under mpirun only rank 0 prints a help text or a config, as the MPI commands do.
int launcher_rank() {
  for (const char* name : {"OMPI_COMM_WORLD_RANK", "PMI_RANK", "PMIX_RANK", "SLURM_PROCID"})
    if (const char* value = std::getenv(name)) return std::atoi(value);
  return 0;
}

bool has_flag(const std::vector<std::string>& args, std::initializer_list<const char*> flags) {
  return std::any_of(args.begin(), args.end(), [&](const std::string& a) {
    return std::any_of(flags.begin(), flags.end(), [&](const char* f) { return a == f; });
  });
}

// `sfc run --help` / `--print-config`: the config parsed and printed, nothing loaded.
int print_run_config(const std::vector<std::string>& args) {
  const bool speaks = launcher_rank() == 0;
  try {
    const auto parsed = sfc::app::parse_run_command_line(args);
    if (speaks) std::cout << (parsed.help ? parsed.help_text + "\n" : parsed.config.to_string());
    return 0;
  } catch (const sfc::UsageError& e) {
    return speaks ? sfc::app::report_error(e.what(), 2) : 2;
  } catch (const std::exception& e) {
    return speaks ? sfc::app::report_error(e.what(), 1) : 1;
  }
}

// libsfc_commands.so next to this executable. RTLD_GLOBAL: `sfc --version` finds the BLAS that
// LibTorch brought by looking its symbols up in the whole process.
int run_command(int argc, char** argv) {
  std::error_code ec;
  const auto self = std::filesystem::read_symlink("/proc/self/exe", ec);
  const auto library = (ec ? std::filesystem::path(argv[0]) : self).parent_path() / sfc::app::kCommandsLibrary;
  void* handle = dlopen(library.c_str(), RTLD_NOW | RTLD_GLOBAL);
  if (!handle) return sfc::app::report_error(std::string("cannot load the commands: ") + dlerror(), 1);
  auto entry = reinterpret_cast<int (*)(int, char**)>(dlsym(handle, "sfc_commands_main"));
  if (!entry) return sfc::app::report_error(library.string() + ": no sfc_commands_main (a mismatched build?)", 1);
  return entry(argc, argv);  // not dlclose'd: LibTorch's static objects die with the process
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::cerr << kUsage;
    return 2;
  }
  const std::string command = argv[1];
  if (command == "--help" || command == "-h" || command == "help") {
    std::cout << kUsage;
    return 0;
  }
  const std::vector<std::string> args(argv + 2, argv + argc);
  if (command == "run" && has_flag(args, {"--help", "-h", "--print-config"})) return print_run_config(args);
  return run_command(argc, argv);
}
