// The `sfc` executable: picks the command, and is the one place where errors are caught and printed
// ("sfc: error: <message>", one line; exit 1, or 2 for a command line that cannot be understood).

#include <boost/program_options/errors.hpp>
#include <boost/program_options.hpp>
#include <exception>
#include <iostream>
#include <string>
#include <vector>

#include "sfc/app/builtin_command.h"
#include "sfc/app/cache_command.h"
#include "sfc/app/command.h"
#include "sfc/app/reduce_command.h"
#include "sfc/app/run_command.h"
#include "sfc/core/cpu_blas.h"
#include "sfc/core/error.h"
#include "sfc/text/tokenizer.h"

namespace po = boost::program_options;

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

// `sfc tokenizer-train`: hidden (not in --help) — trains a small sentencepiece model with Gemma's
// special ids, for tests and toy models. Real runs use the model's own tokenizer.model.
int tokenizer_train_main(const sfc::app::CommandArgs& args) {
  std::string corpus, prefix;
  int vocab = 0;
  po::options_description desc("sfc tokenizer-train: train a sentencepiece model (pad 0, eos 1, bos 2, unk 3)");
  desc.add_options()
      ("help,h", "show this help")
      ("corpus", po::value(&corpus)->required(), "UTF-8 text, one sentence per line")
      ("prefix", po::value(&prefix)->required(), "writes <prefix>.model")
      ("vocab", po::value(&vocab)->required(), "vocabulary size (an upper bound on a small corpus)");
  po::variables_map vm;
  try {
    po::store(po::command_line_parser(args.args).options(desc).run(), vm);
    if (vm.count("help")) {
      std::cout << desc << "\n";
      return 0;
    }
    po::notify(vm);
  } catch (const po::error& e) {
    throw sfc::UsageError(std::string("sfc tokenizer-train: ") + e.what());
  }
  if (vocab < 5) throw sfc::UsageError("sfc tokenizer-train: --vocab must be >= 5");
  sfc::text::train_sentencepiece(corpus, prefix, vocab);
  return 0;
}

// The command line as typed, shell-quoted where needed, for the output files' provenance.
std::string join_command_line(int argc, char** argv) {
  std::string line;
  for (int i = 0; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg.empty() || arg.find_first_of(" \t\n'\"\\$;&|<>*?") != std::string::npos) {
      std::string quoted = "'";
      for (char c : arg) quoted += c == '\'' ? std::string("'\\''") : std::string(1, c);
      arg = quoted + "'";
    }
    line += (i ? " " : "") + arg;
  }
  return line;
}

// Messages are printed on one line, whatever produced them.
std::string one_line(std::string message) {
  for (char& c : message)
    if (c == '\n' || c == '\r') c = ' ';
  while (!message.empty() && message.back() == ' ') message.pop_back();
  return message;
}

int report(const std::string& message, int status) {
  std::cerr << "sfc: error: " << one_line(message) << std::endl;
  return status;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    if (argc < 2) {
      std::cerr << kUsage;
      return 2;
    }
    const std::string command = argv[1];
    if (command == "--help" || command == "-h" || command == "help") {
      std::cout << kUsage;
      return 0;
    }
    if (command == "--version") {
      std::cout << "sfc " << sfc::version() << "\n";
      const auto blas = sfc::detect_cpu_blas();
      std::cout << "blas: " << blas.describe() << "\n";
      if (!blas.hint().empty()) std::cout << "hint: " << blas.hint() << "\n";
      return 0;
    }
    const sfc::app::CommandArgs args{std::vector<std::string>(argv + 2, argv + argc), join_command_line(argc, argv)};
    if (command == "run") return sfc::app::run_main(args);
    if (command == "cache") return sfc::app::cache_main(args);
    if (command == "reduce") return sfc::app::reduce_main(args);
    if (command == "builtin") return sfc::app::builtin_main(args);
    if (command == "tokenizer-train") return tokenizer_train_main(args);
    throw sfc::UsageError("unknown command '" + command + "' (see sfc --help)");
  } catch (const sfc::ExitStatus& e) {
    return e.status;
  } catch (const sfc::UsageError& e) {
    return report(e.what(), 2);
  } catch (const po::error& e) {
    return report(e.what(), 2);
  } catch (const sfc::Error& e) {
    return report(e.what(), 1);
  } catch (const std::exception& e) {
    // LibTorch's what() carries a C++ backtrace; error_message keeps what a user can act on.
    return report(sfc::error_message(e), 1);
  }
}
