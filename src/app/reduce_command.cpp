// `sfc reduce FILE`: parses the flags, starts MPI (mpi::Session), runs sfc::reduce::summarize on
// the world communicator and prints what it wrote (rank 0).
#include "sfc/app/reduce_command.h"

#include <boost/program_options.hpp>
#include <cstdio>
#include <iostream>
#include <sstream>

#include "sfc/core/error.h"
#include "sfc/mpi/comm.h"
#include "sfc/reduce/reduce.h"

namespace sfc::app {

namespace po = boost::program_options;

ReduceCommandLine parse_reduce_command_line(const std::vector<std::string>& args) {
  ReduceCommandLine out;
  std::string file;
  po::options_description options(
      "sfc reduce: summarise a results file of `sfc run` into its /summary group and <stem>.summary.csv\n"
      "Usage: sfc reduce FILE [--topk K]\n"
      "       mpirun -np W sfc reduce FILE   (pairs split over W ranks; same numbers for any W)\n"
      "Options");
  options.add_options()("help,h", "show this help")(
      "topk", po::value(&out.options.topk)->default_value(out.options.topk),
      "latents kept per (site, layer), ranked by the sum over positions of |mean AtP|")(
      "leaf-rows", po::value(&out.options.leaf_rows)->default_value(out.options.leaf_rows),
      "pairs per leaf of the fixed summation tree (results change in the last bits only; for tests)")(
      "no-csv", "do not write <stem>.summary.csv");
  po::options_description hidden;
  hidden.add_options()("file", po::value(&file), "results file");
  po::options_description all;
  all.add(options).add(hidden);
  po::positional_options_description positional;
  positional.add("file", 1);

  po::variables_map vm;
  try {
    const int style = po::command_line_style::default_style & ~po::command_line_style::allow_guessing;
    po::store(po::command_line_parser(args).options(all).positional(positional).style(style).run(), vm);
    po::notify(vm);
  } catch (const po::error& e) {
    throw UsageError(std::string("sfc reduce: ") + e.what());
  }
  if (vm.count("help")) {
    std::ostringstream text;
    text << options;
    out.help = true;
    out.help_text = text.str();
    return out;
  }
  if (file.empty()) throw UsageError("sfc reduce: which results file? (sfc reduce FILE; see sfc reduce --help)");
  out.file = file;
  out.options.write_csv = vm.count("no-csv") == 0;
  try {
    out.options.validate();
  } catch (const ConfigError& e) {
    throw UsageError(std::string("sfc reduce: ") + e.what());
  }
  return out;
}

int reduce_main(const CommandArgs& args) {
  const ReduceCommandLine parsed = parse_reduce_command_line(args.args);
  if (parsed.help) {
    std::cout << parsed.help_text << "\n";
    return 0;
  }
  const mpi::Session mpi;
  const mpi::Comm comm;
  const auto report = reduce::summarize(parsed.file, comm, parsed.options);
  if (comm.rank() == 0) {
    char line[200];
    std::snprintf(line, sizeof line,
                  "sfc reduce: %d rank(s): moments %.2f s, spearman %.2f s, write %.2f s, total %.2f s\n",
                  report.n_ranks, report.moments_s, report.spearman_s, report.write_s, report.total_s);
    std::cerr << line;
    std::cout << "sfc reduce: wrote /summary (" << report.n_pairs << " pairs, L = " << report.n_layer
              << ", T = " << report.n_tokens << ") to " << parsed.file.string();
    if (!report.csv.empty()) std::cout << " and " << report.csv.string();
    std::cout << "\n";
  }
  return 0;
}

}  // namespace sfc::app
