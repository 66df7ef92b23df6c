// What every `sfc <command>` shares: its arguments. (Errors, exit statuses and the version are in
// sfc/core: error.h and version.h.)
#pragma once

#include <string>
#include <vector>

#include "sfc/core/error.h"
#include "sfc/core/version.h"

namespace sfc::app {

// Arguments after the command name, and the whole command line as typed (kept in output files).
struct CommandArgs {
  std::vector<std::string> args;
  std::string command_line;
};

}  // namespace sfc::app
