// Progress of a long job (`sfc run`) on rank 0: a redrawn bar on a terminal, one plain line every few
// seconds in a batch log. The text is a pure function of the counts and times (unit-tested); the
// reporter only decides when to print. Not for other ranks, and not a timer (phases are timed by
// the job driver, phase_times.h).
#pragma once

#include <cstdint>
#include <iosfwd>
#include <optional>
#include <string>

namespace sfc::job {

// Where a run stands. Counts are of the whole run (all ranks), including work that earlier,
// interrupted runs left in the shards; `*_at_start` is that resumed part, which this process did
// not compute and which therefore never enters the rate.
struct ProgressState {
  int64_t pairs_done = 0, pairs_total = 0;
  int64_t batches_done = 0, batches_total = 0;
  int64_t pairs_at_start = 0;  // already done when this process started computing (--resume)
  double elapsed_s = 0;        // since this process started computing
  std::string label = "sfc";   // the command, first on every line ("sfc run")
  std::string unit = "items";  // what is counted ("pairs")
};

// Pairs per second computed by this process; nullopt before its first pair (or at elapsed 0).
std::optional<double> progress_rate(const ProgressState& s);
// Seconds left at the current rate: 0 when finished, nullopt while the rate is unknown.
std::optional<double> progress_eta(const ProgressState& s);

// "37 s", "2 min 40 s", "1 h 05 min", "2 d 03 h" (rounded to whole seconds).
std::string format_duration(double seconds);
// "3.2", "0.052", "187": two significant digits below 10, whole numbers from 100.
std::string format_rate(double per_second);

// One line for logs, no newline:
//   "sfc run: 120/612 pairs (19.6%), batch 15/77, 3.2 pairs/s, elapsed 37 s, ETA 2 min 40 s"
// Before the first computed pair the rate reads "-" and the ETA "unknown"; when finished the ETA is
// left out.
std::string progress_line(const ProgressState& s);

// The same for a terminal, `bar_width` cells of bar, no \r and no newline:
//   "sfc run [######------]  120/612 pairs  19.6%  3.2 pairs/s  ETA 2 min 40 s"
std::string progress_bar(const ProgressState& s, int bar_width = 24);

// Prints progress to `out` as a run goes. terminal: redraws one line in place (at most every
// kRedrawSeconds, and always at the end); otherwise one line at most every `interval_s` plus one at
// the end. interval_s <= 0 turns all of it off. Times are passed in, so tests need no clock.
class ProgressReporter {
 public:
  static constexpr double kRedrawSeconds = 0.2;

  ProgressReporter(std::ostream& out, bool terminal, double interval_s, ProgressState start);
  ~ProgressReporter();  // ends a drawn bar with a newline, so later messages start on their own line
  ProgressReporter(const ProgressReporter&) = delete;
  ProgressReporter& operator=(const ProgressReporter&) = delete;

  // New totals so far, at `elapsed_s` since computing started. Prints if due.
  void update(int64_t pairs_done, int64_t batches_done, double elapsed_s);
  // The last line (the state of the last update), then a newline for a bar. Idempotent.
  void finish();

  const ProgressState& state() const { return state_; }

 private:
  void print();

  std::ostream& out_;
  bool terminal_;
  double interval_s_;
  ProgressState state_;
  double last_print_s_ = 0;
  bool bar_drawn_ = false, finished_ = false;
};

// True when file descriptor `fd` is a terminal (isatty), e.g. stderr of `sfc run` typed at a
// shell; false for a batch log, a pipe, or a rank's output forwarded by mpirun.
bool is_terminal(int fd);

}  // namespace sfc::job
