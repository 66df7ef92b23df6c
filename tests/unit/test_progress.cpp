// Progress text of a job (src/job/progress.cpp), as `sfc run` prints it: rate and ETA from this
// process's own work, durations, the log line and the bar, and when the reporter prints (no clock).
#include <gtest/gtest.h>

#include <algorithm>
#include <sstream>
#include <string>

#include "sfc/job/progress.h"

namespace {

using sfc::job::format_duration;
using sfc::job::format_rate;
using sfc::job::progress_bar;
using sfc::job::progress_eta;
using sfc::job::progress_line;
using sfc::job::progress_rate;
using sfc::job::ProgressReporter;
using sfc::job::ProgressState;

ProgressState state(int64_t done, int64_t total, double elapsed, int64_t at_start = 0) {
  ProgressState s;
  s.pairs_done = done;
  s.pairs_total = total;
  s.batches_done = (done + 7) / 8;
  s.batches_total = (total + 7) / 8;
  s.pairs_at_start = at_start;
  s.elapsed_s = elapsed;
  s.label = "sfc run";  // as the job driver sets them for `sfc run`
  s.unit = "pairs";
  return s;
}

TEST(Progress, Durations) {
  EXPECT_EQ(format_duration(0), "0 s");
  EXPECT_EQ(format_duration(37.4), "37 s");
  EXPECT_EQ(format_duration(59.6), "1 min 0 s");
  EXPECT_EQ(format_duration(160), "2 min 40 s");
  EXPECT_EQ(format_duration(3600 + 5 * 60 + 10), "1 h 05 min");
  EXPECT_EQ(format_duration(2 * 86400 + 3 * 3600), "2 d 03 h");
  EXPECT_EQ(format_duration(-5), "0 s");
  EXPECT_EQ(format_duration(1e300), format_duration(3.2e7));  // "never", in range
}

TEST(Progress, Rates) {
  EXPECT_EQ(format_rate(3.24), "3.2");
  EXPECT_EQ(format_rate(0.0523), "0.052");
  EXPECT_EQ(format_rate(19.6), "20");
  EXPECT_EQ(format_rate(99.7), "100");
  EXPECT_EQ(format_rate(187.4), "187");
}

TEST(Progress, ExampleLine) {
  // 120 of 612 pairs in 37 s: 3.24 pairs/s, 492 left: 152 s.
  EXPECT_EQ(progress_line(state(120, 612, 37)),
            "sfc run: 120/612 pairs (19.6%), 15/77 batches, 3.2 pairs/s, elapsed 37 s, ETA 2 min 32 s");
}

TEST(Progress, NothingDoneYetHasNoRateAndNoEta) {
  const auto s = state(0, 612, 5);
  EXPECT_FALSE(progress_rate(s).has_value());
  EXPECT_FALSE(progress_eta(s).has_value());
  EXPECT_EQ(progress_line(s), "sfc run: 0/612 pairs (0.0%), 0/77 batches, - pairs/s, elapsed 5 s, ETA unknown");
  EXPECT_FALSE(progress_rate(state(8, 612, 0)).has_value());  // no time has passed
}

TEST(Progress, FinishedHasNoEta) {
  const auto s = state(612, 612, 191);
  EXPECT_EQ(progress_eta(s), 0.0);
  EXPECT_EQ(progress_line(s), "sfc run: 612/612 pairs (100.0%), 77/77 batches, 3.2 pairs/s, elapsed 3 min 11 s");
}

TEST(Progress, ResumedPairsDoNotCountInTheRate) {
  // 500 pairs were in the shards; this process did 16 in 10 s. Counting the 500 would claim
  // 51.6 pairs/s and an ETA of 2 s.
  const auto s = state(516, 612, 10, 500);
  ASSERT_TRUE(progress_rate(s).has_value());
  EXPECT_DOUBLE_EQ(*progress_rate(s), 1.6);
  EXPECT_DOUBLE_EQ(*progress_eta(s), 96 / 1.6);
  // Right after resuming, before the first new batch: unknown, not infinite.
  EXPECT_FALSE(progress_rate(state(500, 612, 3, 500)).has_value());
  EXPECT_NE(progress_line(state(500, 612, 3, 500)).find("ETA unknown"), std::string::npos);
  // Everything was already done: finished, no rate.
  EXPECT_EQ(progress_line(state(612, 612, 0, 612)),
            "sfc run: 612/612 pairs (100.0%), 77/77 batches, - pairs/s, elapsed 0 s");
}

TEST(Progress, EmptyRunIsFinished) {
  EXPECT_EQ(progress_eta(state(0, 0, 1)), 0.0);
  EXPECT_NE(progress_line(state(0, 0, 1)).find("(100.0%)"), std::string::npos);
}

TEST(Progress, Bar) {
  EXPECT_EQ(progress_bar(state(306, 612, 100), 10),
            "sfc run [#####-----]  306/612 pairs   50.0%  3.1 pairs/s  ETA 1 min 40 s");
  EXPECT_EQ(progress_bar(state(0, 612, 1), 4), "sfc run [----]  0/612 pairs    0.0%  - pairs/s  ETA unknown");
  EXPECT_EQ(progress_bar(state(612, 612, 200), 4),
            "sfc run [####]  612/612 pairs  100.0%  3.1 pairs/s  elapsed 3 min 20 s");
}

TEST(Progress, LogPrintsAtMostEveryIntervalAndOnceAtTheEnd) {
  std::ostringstream out;
  {
    ProgressReporter r(out, /*terminal=*/false, /*interval_s=*/30, state(0, 64, 0));
    r.update(8, 1, 10);   // too soon
    r.update(16, 2, 31);  // printed
    r.update(24, 3, 45);  // 14 s after the last line: not yet
    r.update(32, 4, 62);  // printed
    r.update(64, 8, 70);  // finished: left to finish()
    r.finish();
    r.finish();  // once
  }
  const std::string text = out.str();
  EXPECT_EQ(text,
            "sfc run: 16/64 pairs (25.0%), 2/8 batches, 0.52 pairs/s, elapsed 31 s, ETA 1 min 33 s\n"
            "sfc run: 32/64 pairs (50.0%), 4/8 batches, 0.52 pairs/s, elapsed 1 min 2 s, ETA 1 min 2 s\n"
            "sfc run: 64/64 pairs (100.0%), 8/8 batches, 0.91 pairs/s, elapsed 1 min 10 s\n")
      << text;
  EXPECT_EQ(text.find('\r'), std::string::npos);
}

TEST(Progress, ZeroIntervalPrintsNothing) {
  std::ostringstream out;
  for (bool terminal : {false, true}) {
    ProgressReporter r(out, terminal, 0, state(0, 64, 0));
    r.update(64, 8, 100);
    r.finish();
  }
  EXPECT_EQ(out.str(), "");
}

TEST(Progress, TerminalRedrawsOneLineAndEndsIt) {
  std::ostringstream out;
  {
    ProgressReporter r(out, /*terminal=*/true, 30, state(0, 64, 0));
    r.update(8, 1, 0.05);  // within the redraw interval: skipped
    r.update(16, 2, 1);
    r.update(24, 3, 2);
    r.finish();
  }
  const std::string text = out.str();
  EXPECT_EQ(std::count(text.begin(), text.end(), '\r'), 3) << text;  // two updates and the final redraw
  EXPECT_EQ(std::count(text.begin(), text.end(), '\n'), 1) << text;  // one line, ended once
  EXPECT_EQ(text.back(), '\n');
  EXPECT_NE(text.find("24/64 pairs"), std::string::npos) << text;
  EXPECT_EQ(text.find("8/64 pairs"), std::string::npos) << text;
}

TEST(Progress, TerminalBarIsEndedWhenTheRunFails) {
  std::ostringstream out;
  {
    ProgressReporter r(out, /*terminal=*/true, 30, state(0, 64, 0));
    r.update(16, 2, 1);
    // an exception leaves the scope without finish()
  }
  EXPECT_EQ(out.str().back(), '\n');
}

}  // namespace
