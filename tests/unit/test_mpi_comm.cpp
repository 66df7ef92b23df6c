// The MPI layer in a world of one (no mpirun: MPI's singleton mode), and the error text of
// sfc::error_message. The multi-rank behaviour is tested under mpirun (tests/mpi).
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <string>
#include <vector>

#include "sfc/core/error.h"
#include "sfc/mpi/comm.h"

namespace sfc::mpi {
namespace {

const Comm& world() {
  static const Session session;
  static const Comm comm;
  return comm;
}

TEST(MpiComm, AWorldOfOneKeepsEveryValue) {
  const Comm& comm = world();
  EXPECT_EQ(comm.rank(), 0);
  EXPECT_EQ(comm.size(), 1);
  EXPECT_EQ(comm.sum(41), 41);
  EXPECT_EQ(comm.max(-3), -3);
  EXPECT_TRUE(comm.any(true));
  EXPECT_FALSE(comm.any(false));
  EXPECT_EQ(comm.first_rank_with(true), 0);
  EXPECT_EQ(comm.first_rank_with(false), -1);
  EXPECT_EQ(comm.broadcast("text with\0 a nul byte", 0), std::string("text with\0 a nul byte"));
  EXPECT_EQ(comm.gather_to_root({1.5, 2.5}), (std::vector<double>{1.5, 2.5}));
  EXPECT_EQ(comm.gather({3.f}, 0), (std::vector<float>{3.f}));
  std::vector<double> sums = {1.0, -2.0};
  comm.sum_to_root_in_rank_order(sums.data(), 2);
  EXPECT_EQ(sums, (std::vector<double>{1.0, -2.0}));
}

TEST(MpiComm, ADuplicateIsAPrivateCommunicatorOfTheSameRanks) {
  const Comm dup = world().duplicate();
  EXPECT_NE(dup.native(), world().native());
  EXPECT_EQ(dup.size(), world().size());
  Comm moved(world().duplicate());
  moved.send_later({1.0, 2.0, 3.0}, 0, 5);
  EXPECT_EQ(moved.receive(0, 5), (std::vector<double>{1.0, 2.0, 3.0}));
  moved.wait_all();
}

TEST(MpiComm, CheckMpiNamesTheCallAndMpisReason) {
  world();  // MPI_Error_string needs MPI initialised
  EXPECT_NO_THROW(check_mpi(MPI_SUCCESS, "MPI_Barrier"));
  try {
    check_mpi(MPI_ERR_COMM, "MPI_Barrier");
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()).rfind("MPI_Barrier: ", 0), 0u) << e.what();
    EXPECT_GT(std::string(e.what()).size(), std::string("MPI_Barrier: ").size()) << e.what();
  }
}

// Alone, rank 0 is the failing rank: its error comes back with its kind (usage errors exit 2).
TEST(MpiVote, AloneTheErrorComesBackWithItsKind) {
  EXPECT_NO_THROW(vote(world(), [] {}));
  EXPECT_THROW(vote(world(), [] { throw UsageError("--foo: unknown"); }), UsageError);
  try {
    vote(world(), [] { throw LoadError("pairs.jsonl", "line 3: no answer"); });
    ADD_FAILURE() << "no error";
  } catch (const UsageError&) {
    ADD_FAILURE() << "a load error became a usage error";
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "pairs.jsonl: line 3: no answer");  // no "rank 0: " for the only rank
  }
  EXPECT_EQ(or_abort(world(), [] { return 7; }), 7);
  EXPECT_THROW(or_abort(world(), [] { throw Error("alone it propagates"); }), Error);
}

// LibTorch's errors carry a C++ backtrace after the message; a user gets the message.
TEST(ErrorMessage, CutsLibTorchsBacktraceAndKeepsOtherTexts) {
  try {
    TORCH_CHECK(false, "shapes [2, 3] and [4] do not match");
  } catch (const std::exception& e) {
    ASSERT_NE(std::string(e.what()).find("Exception raised from"), std::string::npos)
        << "LibTorch's what() no longer has a backtrace: " << e.what();
    EXPECT_EQ(error_message(e), "shapes [2, 3] and [4] do not match");
  }
  EXPECT_EQ(error_message(Error("a: b\nc")), "a: b\nc");
}

}  // namespace
}  // namespace sfc::mpi
