// `sfc run`: config -> model, tokenizer, prompt pairs, SAEs -> engines batch by batch -> one HDF5
// results file (output/results_schema.h). Single process; the distributed version wires the same
// pieces through the scheduler.
#pragma once

#include "sfc/app/command.h"
#include "sfc/app/config.h"

namespace sfc::app {

// Parses the command's flags and runs it; returns the exit status (0 also after --help or
// --print-config).
int run_main(const CommandArgs& args);
// Runs a validated configuration. Bad input throws before the output file exists; a failure later
// removes `<output.path>.partial`, so a results file exists only when the run completed.
void run_attribution(const RunConfig& config, const std::string& command_line);

}  // namespace sfc::app
