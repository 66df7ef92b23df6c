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

}  // namespace sfc
