// `sfc reduce FILE`: the reduction pass over a results file (sfc/reduce/reduce.h) as a command:
// writes /summary into the file and <stem>.summary.csv next to it. Runs on one rank or under mpirun.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "sfc/app/command.h"
#include "sfc/reduce/reduce.h"

namespace sfc::app {

struct ReduceCommandLine {
  bool help = false;
  std::string help_text;
  std::filesystem::path file;
  reduce::ReduceOptions options;
};

// Throws UsageError (exit 2) for flags it cannot understand or a missing FILE.
ReduceCommandLine parse_reduce_command_line(const std::vector<std::string>& args);

// Parses the command's flags and runs it; returns the exit status (0 also after --help).
int reduce_main(const CommandArgs& args);

}  // namespace sfc::app
