// `sfc run`: the main of the attribution job. Parses the command line on every rank, then hands the
// run to the job driver (sfc/job/driver.h: load → compute into shards → collective combine →
// reduce → /timing) with RunClient (run_client.h) saying what a batch of prompt pairs is.
#include "sfc/app/run_command.h"

#include <iostream>

#include "run_client.h"
#include "sfc/job/driver.h"
#include "sfc/mpi/comm.h"

namespace sfc::app {

int run_attribution(const RunConfig& config, bool resume, const std::string& command_line) {
  const mpi::Comm comm;
  config.validate();
  RunClient client(config, command_line);
  return job::run_job(client, run_job_spec(config, resume), comm);
}

int run_main(const CommandArgs& args) {
  const mpi::Session mpi;  // finalised after every file of the run is closed
  const mpi::Comm comm;
  // Every rank parses the same command line: rank 0 alone speaks for all of them.
  RunCommandLine parsed;
  mpi::vote(comm, [&] { parsed = parse_run_command_line(args.args); });
  if (parsed.help || parsed.print_config) {
    if (comm.rank() == 0) std::cout << (parsed.help ? parsed.help_text + "\n" : parsed.config.to_string());
    return 0;
  }
  return run_attribution(parsed.config, parsed.resume, args.command_line);
}

}  // namespace sfc::app
