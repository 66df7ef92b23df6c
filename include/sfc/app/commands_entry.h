// How the `sfc` front (src/app/main.cpp, no LibTorch, no MPI) and the commands library
// libsfc_commands.so (src/app/commands_main.cpp, everything else) meet: one C entry point looked up
// by name, and the one-line error format both print.
#pragma once

#include <iostream>
#include <string>

// argc/argv exactly as `sfc` got them (argv[1] is the command). Returns the exit status; prints
// its own errors.
extern "C" int sfc_commands_main(int argc, char** argv);

namespace sfc::app {

inline constexpr const char* kCommandsLibrary = "libsfc_commands.so";

// "sfc: error: <message>" on one line, whatever produced the message; returns `status`.
inline int report_error(std::string message, int status) {
  for (char& c : message)
    if (c == '\n' || c == '\r') c = ' ';
  while (!message.empty() && message.back() == ' ') message.pop_back();
  std::cerr << "sfc: error: " << message << std::endl;
  return status;
}

}  // namespace sfc::app
