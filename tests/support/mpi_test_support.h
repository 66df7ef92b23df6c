// What GoogleTest programs that run under mpirun (tests/mpi) share: their main() (MPI around the
// tests, one full report from rank 0, only failures tagged with their rank from the others, and a
// non-zero status from every rank when any rank failed) and a temporary folder all ranks see.
#pragma once

#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <optional>
#include <string>

#include "sfc/mpi/comm.h"
#include "support/test_support.h"

namespace sfc::test {

// The world, through the project's MPI layer (valid inside run_mpi_tests).
inline const mpi::Comm& world() {
  static const mpi::Comm comm;
  return comm;
}

inline int mpi_rank() { return world().rank(); }

// One folder for all ranks: rank 0 makes it and sends its name; removed after every rank is done.
class SharedTempDir {
 public:
  SharedTempDir() {
    std::string name;
    if (mpi_rank() == 0) name = dir_.emplace().path().string();
    path_ = world().broadcast(name, 0);
  }
  ~SharedTempDir() { world().barrier(); }  // then rank 0's TempDir removes it
  SharedTempDir(const SharedTempDir&) = delete;
  SharedTempDir& operator=(const SharedTempDir&) = delete;
  std::filesystem::path operator/(const std::string& name) const { return path_ / name; }

 private:
  std::optional<TempDir> dir_;
  std::filesystem::path path_;
};

class RankFailurePrinter : public testing::EmptyTestEventListener {
 public:
  explicit RankFailurePrinter(int rank) : rank_(rank) {}
  void OnTestPartResult(const testing::TestPartResult& result) override {
    if (result.failed())
      std::fprintf(stderr, "[rank %d] %s:%d: %s\n", rank_, result.file_name() ? result.file_name() : "?",
                   result.line_number(), result.summary());
  }

 private:
  int rank_;
};

inline int run_mpi_tests(int argc, char** argv) {
  const mpi::Session session;
  testing::InitGoogleTest(&argc, argv);
  const int rank = mpi_rank();
  if (rank != 0) {
    auto& listeners = testing::UnitTest::GetInstance()->listeners();
    delete listeners.Release(listeners.default_result_printer());
    listeners.Append(new RankFailurePrinter(rank));
  }
  const int failed = RUN_ALL_TESTS();
  return world().any(failed != 0) ? 1 : 0;
}

}  // namespace sfc::test
