// Wall time per phase of a job on this rank (docs/style.md §10): a client names its phases, the
// driver times load, comm and io itself, and /timing gets every rank's totals.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace sfc::job {

using Clock = std::chrono::steady_clock;

inline double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

class PhaseTimes {
 public:
  // `names` in the order of /timing/seconds' columns; must include "load", "comm" and "io".
  explicit PhaseTimes(std::vector<std::string> names);

  int index(const std::string& name) const;  // throws for a name not in the list
  const std::vector<std::string>& names() const { return names_; }
  // Phases that are neither load, comm nor io: the work the load imbalance is measured on.
  bool is_compute(int phase) const { return phase != load_ && phase != comm_ && phase != io_; }
  int load() const { return load_; }
  int comm() const { return comm_; }
  int io() const { return io_; }

  void add(int phase, double seconds) { seconds_[static_cast<size_t>(phase)] += seconds; }
  const std::vector<double>& seconds() const { return seconds_; }

  // Runs f and adds its wall time to `phase`; returns what f returns.
  template <typename F>
  auto time(int phase, F&& f) {
    const auto start = Clock::now();
    if constexpr (std::is_void_v<decltype(f())>) {
      f();
      add(phase, seconds_since(start));
    } else {
      auto result = f();
      add(phase, seconds_since(start));
      return result;
    }
  }

  int64_t batches = 0;  // batches this rank computed (not resumed ones)
  int64_t items = 0;    // their items (pairs, prompts)

 private:
  std::vector<std::string> names_;
  std::vector<double> seconds_;
  int load_ = -1, comm_ = -1, io_ = -1;
};

// This process's peak resident memory in bytes.
int64_t peak_rss_bytes();

}  // namespace sfc::job
