// Progress text and when to print it (see progress.h). The rate counts only pairs this process
// computed: pairs resumed from shards took no time here, and counting them would promise a finish
// far sooner than the run can deliver.
#include "sfc/job/progress.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <ostream>

namespace sfc::job {
namespace {

std::string printf_string(const char* format, double value) {
  char buf[64];
  std::snprintf(buf, sizeof buf, format, value);
  return buf;
}

double percent(const ProgressState& s) {
  if (s.pairs_total <= 0) return 100.0;
  return 100.0 * static_cast<double>(s.pairs_done) / static_cast<double>(s.pairs_total);
}

bool finished(const ProgressState& s) { return s.pairs_done >= s.pairs_total; }

std::string rate_text(const ProgressState& s) {
  const auto rate = progress_rate(s);
  return (rate ? format_rate(*rate) : std::string("-")) + " " + s.unit + "/s";
}

std::string eta_text(const ProgressState& s) {
  const auto eta = progress_eta(s);
  return "ETA " + (eta ? format_duration(*eta) : std::string("unknown"));
}

}  // namespace

std::optional<double> progress_rate(const ProgressState& s) {
  const int64_t computed = s.pairs_done - s.pairs_at_start;
  if (computed <= 0 || s.elapsed_s <= 0) return std::nullopt;
  return static_cast<double>(computed) / s.elapsed_s;
}

std::optional<double> progress_eta(const ProgressState& s) {
  if (finished(s)) return 0.0;
  const auto rate = progress_rate(s);
  if (!rate) return std::nullopt;
  return static_cast<double>(s.pairs_total - s.pairs_done) / *rate;
}

std::string format_duration(double seconds) {
  // Beyond a year an ETA means "never" in practice; keep the arithmetic in range.
  const double clamped = std::isfinite(seconds) ? std::clamp(seconds, 0.0, 3.2e7) : 3.2e7;
  const long long t = std::llround(clamped);
  char buf[64];
  if (t < 60)
    std::snprintf(buf, sizeof buf, "%lld s", t);
  else if (t < 3600)
    std::snprintf(buf, sizeof buf, "%lld min %lld s", t / 60, t % 60);
  else if (t < 86400)
    std::snprintf(buf, sizeof buf, "%lld h %02lld min", t / 3600, t % 3600 / 60);
  else
    std::snprintf(buf, sizeof buf, "%lld d %02lld h", t / 86400, t % 86400 / 3600);
  return buf;
}

std::string format_rate(double per_second) {
  if (!(per_second >= 0) || !std::isfinite(per_second)) return "-";
  // %.2g would print 99.7 as "1e+02".
  if (per_second >= 99.5) return printf_string("%.0f", per_second);
  return printf_string("%.2g", per_second);
}

std::string progress_line(const ProgressState& s) {
  char head[160];
  std::snprintf(head, sizeof head, "%s: %lld/%lld %s (%.1f%%), %lld/%lld batches, ", s.label.c_str(),
                static_cast<long long>(s.pairs_done), static_cast<long long>(s.pairs_total), s.unit.c_str(), percent(s),
                static_cast<long long>(s.batches_done), static_cast<long long>(s.batches_total));
  std::string line = head + rate_text(s) + ", elapsed " + format_duration(s.elapsed_s);
  if (!finished(s)) line += ", " + eta_text(s);
  return line;
}

std::string progress_bar(const ProgressState& s, int bar_width) {
  const int width = std::max(bar_width, 1);
  const int filled = std::clamp(static_cast<int>(percent(s) / 100.0 * width), 0, width);
  char counts[160];
  std::snprintf(counts, sizeof counts, "]  %lld/%lld %s  %5.1f%%  ", static_cast<long long>(s.pairs_done),
                static_cast<long long>(s.pairs_total), s.unit.c_str(), percent(s));
  std::string bar = s.label + " [" + std::string(filled, '#') + std::string(width - filled, '-') + counts + rate_text(s);
  bar += finished(s) ? "  elapsed " + format_duration(s.elapsed_s) : "  " + eta_text(s);
  return bar;
}

ProgressReporter::ProgressReporter(std::ostream& out, bool terminal, double interval_s, ProgressState start)
    : out_(out), terminal_(terminal), interval_s_(interval_s), state_(start), last_print_s_(start.elapsed_s) {}

ProgressReporter::~ProgressReporter() {
  if (bar_drawn_ && !finished_) out_ << '\n' << std::flush;
}

void ProgressReporter::update(int64_t pairs_done, int64_t batches_done, double elapsed_s) {
  state_.pairs_done = pairs_done;
  state_.batches_done = batches_done;
  state_.elapsed_s = elapsed_s;
  if (interval_s_ <= 0 || finished_) return;
  const double since = elapsed_s - last_print_s_;
  // A log gets its last line from finish(), so that it is printed exactly once.
  const bool due = terminal_ ? since >= kRedrawSeconds || finished(state_) : since >= interval_s_ && !finished(state_);
  if (due) print();
}

void ProgressReporter::finish() {
  if (interval_s_ <= 0 || finished_) return;
  finished_ = true;
  print();
  if (terminal_) out_ << '\n' << std::flush;
}

void ProgressReporter::print() {
  last_print_s_ = state_.elapsed_s;
  if (terminal_) {
    // \r back to the start of the line, \033[K clears what a longer previous line left behind.
    out_ << '\r' << progress_bar(state_) << "\033[K" << std::flush;
    bar_drawn_ = true;
  } else {
    out_ << progress_line(state_) << '\n' << std::flush;
  }
}

bool is_terminal(int fd) { return ::isatty(fd) == 1; }

}  // namespace sfc::job
