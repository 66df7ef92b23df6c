// What every `sfc <command>` shares: the usage-error type (exit status 2) and the software version.
#pragma once

#include <string>
#include <vector>

#include "sfc/core/error.h"

// The build passes PROJECT_VERSION; the fallback keeps a lone compile working.
#ifndef SFC_VERSION
#define SFC_VERSION "0.1.0-unknown"
#endif

namespace sfc::app {

inline const char* version() { return SFC_VERSION; }

// A command line that cannot be understood (missing or conflicting flags). main exits with 2.
class UsageError : public ConfigError {
 public:
  using ConfigError::ConfigError;
};

// Exit status of a run stopped by SIGTERM/SIGUSR1/SIGINT after finishing its batch: its shards are
// complete and `--resume` continues it. 75 is EX_TEMPFAIL ("try again later") of sysexits.h.
inline constexpr int kExitInterrupted = 75;

// Ends a command with a status and no message of its own: thrown on the ranks of an MPI job whose
// error rank 0 already reports, so a user reads it once.
struct ExitStatus {
  int status = 1;
};

// Arguments after the command name, and the whole command line as typed (kept in output files).
struct CommandArgs {
  std::vector<std::string> args;
  std::string command_line;
};

}  // namespace sfc::app
