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

// Arguments after the command name, and the whole command line as typed (kept in output files).
struct CommandArgs {
  std::vector<std::string> args;
  std::string command_line;
};

}  // namespace sfc::app
