// `sfc run`: config -> model, tokenizer, prompt pairs, SAEs -> engines batch by batch -> per-rank
// shards -> one HDF5 results file (schema/results_schema.h) -> its summary. One process or W MPI
// ranks (mpirun / srun); the phases are those of the job driver (sfc/job/driver.h).
#pragma once

#include "sfc/app/command.h"
#include "sfc/app/config.h"

namespace sfc::app {

// Parses the command's flags and runs it; returns the exit status (0 also after --help or
// --print-config).
int run_main(const CommandArgs& args);
// Runs a validated configuration on the ranks of MPI_COMM_WORLD (MPI must be initialised). Bad
// input throws before the output file exists; a failure later removes `<output.path>.partial`, so
// a results file exists only when the run completed. Returns 0, or job::kExitInterrupted when a signal
// stopped it with resumable shards. `resume`: keep the batches the shards already hold.
int run_attribution(const RunConfig& config, bool resume, const std::string& command_line);

}  // namespace sfc::app
