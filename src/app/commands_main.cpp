// The commands of `sfc` that need LibTorch, MPI or HDF5, in libsfc_commands.so: src/app/main.cpp
// loads it when a command has work to do. This is the one place where their errors are caught and
// printed ("sfc: error: <message>", one line; exit 1, or 2 for a command line that cannot be
// understood).

#include <boost/program_options/errors.hpp>
#include <boost/program_options.hpp>
#include <exception>
#include <iostream>
#include <string>
#include <vector>

#include "sfc/app/builtin_command.h"
#include "sfc/app/cache_command.h"
#include "sfc/app/command.h"
#include "sfc/app/commands_entry.h"
#include "sfc/app/reduce_command.h"
#include "sfc/app/run_command.h"
#include "sfc/core/cpu_blas.h"
#include "sfc/core/error.h"
#include "sfc/text/tokenizer.h"

namespace po = boost::program_options;

namespace {


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

}  // namespace

int sfc_commands_main(int argc, char** argv) {
  try {
    const std::string command = argc > 1 ? argv[1] : "";
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
    return sfc::app::report_error(e.what(), 2);
  } catch (const po::error& e) {
    return sfc::app::report_error(e.what(), 2);
  } catch (const sfc::Error& e) {
    return sfc::app::report_error(e.what(), 1);
  } catch (const std::exception& e) {
    // LibTorch's what() carries a C++ backtrace; error_message keeps what a user can act on.
    return sfc::app::report_error(sfc::error_message(e), 1);
  }
}
