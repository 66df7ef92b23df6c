// Typed exceptions. Thrown anywhere, caught once in main (src/app/main.cpp), printed as one line.
#pragma once

#include <filesystem>
#include <stdexcept>
#include <string>

namespace sfc {

// Base of every error the program reports to a user.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// A file that cannot be used: message is "<file>: <problem>".
class LoadError : public Error {
 public:
  LoadError(const std::filesystem::path& file, const std::string& problem)
      : Error(file.string() + ": " + problem), file_(file) {}
  const std::filesystem::path& file() const { return file_; }

 private:
  std::filesystem::path file_;
};

// A record inside a file that cannot be used: "<file>:<line>: <problem>".
class RecordError : public Error {
 public:
  RecordError(const std::filesystem::path& file, long line, const std::string& problem)
      : Error(file.string() + ":" + std::to_string(line) + ": " + problem) {}
};

// A bad option or config value: message names the key.
class ConfigError : public Error {
 public:
  using Error::Error;
};

// A command line that cannot be understood (missing or conflicting flags). main exits with 2.
class UsageError : public ConfigError {
 public:
  using ConfigError::ConfigError;
};

// Ends a command with a status and no message of its own: thrown on the ranks of an MPI job whose
// error rank 0 already reports, so a user reads it once.
struct ExitStatus {
  int status = 1;
};

// An exception's text as a user should read it: LibTorch's errors (c10::Error) carry a C++
// backtrace after their message, which is cut here (text-based, so this stage needs no LibTorch).
std::string error_message(const std::exception& e);

}  // namespace sfc
