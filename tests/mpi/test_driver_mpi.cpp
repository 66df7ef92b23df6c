// The job driver (sfc/job/driver.h) with a toy client — no model: item i of node k is worth
// i·10 + k + 0.25 — under real mpirun (ctest runs it with 1 and 3 ranks). Checks what every batch
// command relies on: each (batch, node) computed by exactly one rank and combined into one
// collective HDF5 file whatever the rank count and site groups; shards removed after; a signal
// stopping every rank after the batch in flight with exit 75 and `--resume` finishing the same
// file without redoing finished batches; a bad input on one rank reported once, before any output.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <csignal>
#include <filesystem>
#include <string>
#include <vector>

#include "sfc/core/error.h"
#include "sfc/h5/h5_file.h"
#include "sfc/job/driver.h"
#include "sfc/mpi/comm.h"
#include "support/mpi_test_support.h"

namespace {

namespace fs = std::filesystem;
using sfc::test::mpi_rank;
using sfc::test::SharedTempDir;
using sfc::test::world;

constexpr int64_t kLayers = 3;
const std::vector<sfc::Site> kSites = {sfc::Site::kResid, sfc::Site::kAttn};

double toy_value(int64_t item, int64_t node) { return static_cast<double>(item * 10 + node) + 0.25; }

struct ToyOptions {
  int64_t n_items = 23, batch_size = 4;
  int site_groups = 1;
  int fail_load_on_rank = -1;      // this rank's load throws a LoadError
  int64_t signal_at_batch = -1;    // SIGUSR1 to this process while computing this batch
};

class ToyClient : public sfc::job::Client {
 public:
  explicit ToyClient(ToyOptions o) : o_(o) {}

  std::vector<std::string> phases() const override { return {"load", "toy", "comm", "io"}; }
  std::string device() const override { return "cpu"; }

  sfc::job::JobShape load() override {
    if (world().rank() == o_.fail_load_on_rank) throw sfc::LoadError("toy.jsonl", "line 2: not a toy");
    sfc::job::JobShape shape;
    shape.n_items = o_.n_items;
    shape.batch_size = o_.batch_size;
    for (auto site : kSites)
      for (int64_t l = 0; l < kLayers; ++l) shape.nodes.push_back({site, l});
    nodes_ = shape.nodes;
    shape.n_layer = kLayers;
    shape.site_groups = o_.site_groups;
    return shape;
  }
  void load_own_work(const sfc::job::WorkPlan& plan, const sfc::job::RankWork&) override { plan_ = &plan; }
  void after_load(const sfc::mpi::Comm&, const sfc::job::WorkPlan&) override {}

  sfc::job::ShardRecord compute(int64_t b, const sfc::job::RankWork& mine, sfc::job::PhaseTimes& times) override {
    if (b == o_.signal_at_batch) std::raise(SIGUSR1);
    computed_batches.push_back(b);
    sfc::job::ShardRecord record;
    record.batch = b;
    const int64_t first = b * o_.batch_size, count = std::min(o_.batch_size, o_.n_items - first);
    times.time(times.index("toy"), [&] {
      for (const auto& node : mine.nodes) {
        const int64_t k = node_index(node);
        auto values = torch::empty({count}, torch::kDouble);
        for (int64_t i = 0; i < count; ++i) values[i] = toy_value(first + i, k);
        record.tensors.emplace_back("node" + std::to_string(k), values);
      }
    });
    return record;
  }

  void begin_output(sfc::h5::File& file, const sfc::mpi::Comm&) override {
    values_ = file.create_dataset("/toy/values", sfc::h5::DatasetSpec(sfc::h5::Dtype::kFloat64,
                                                                       {o_.n_items, node_count()}, NAN));
  }
  void write_batch(const std::vector<sfc::job::ShardRecord>& records) override {
    const int64_t K = node_count();
    if (records.empty()) {
      values_->write(std::vector<int64_t>{0, 0}, std::vector<int64_t>{0, 0}, static_cast<const double*>(nullptr));
      return;
    }
    const int64_t b = records[0].batch, first = b * o_.batch_size, count = std::min(o_.batch_size, o_.n_items - first);
    std::vector<double> rows(static_cast<size_t>(count * K), NAN);
    ASSERT_EQ(static_cast<int>(records.size()), plan_->n_site_groups);
    for (size_t g = 0; g < records.size(); ++g) {
      EXPECT_EQ(records[g].batch, b);
      for (int64_t k = 0; k < K; ++k) {
        const auto* t = records[g].find("node" + std::to_string(k));
        // Exactly the owner of a node has it in its record.
        EXPECT_EQ(t != nullptr, plan_->owner_of(nodes_[k].site, nodes_[k].layer) == static_cast<int>(g));
        if (t)
          for (int64_t i = 0; i < count; ++i) rows[i * K + k] = (*t)[i].item<double>();
      }
    }
    values_->write(std::vector<int64_t>{first, 0}, std::vector<int64_t>{count, K}, rows.data());
  }
  void finish_output(const sfc::mpi::Comm&, sfc::job::PhaseTimes&) override { values_.reset(); }

  void reduce(const fs::path& output, const sfc::mpi::Comm& comm) override {
    reduced_on = comm.size();
    if (comm.rank() == 0) reduced_file = output;
  }
  std::string done_line() const override { return "toy: done"; }

  std::vector<int64_t> computed_batches;  // by this rank, in order
  int reduced_on = 0;
  fs::path reduced_file;

 private:
  int64_t node_count() const { return static_cast<int64_t>(nodes_.size()); }
  int64_t node_index(const sfc::job::SiteLayer& node) const {
    for (size_t k = 0; k < nodes_.size(); ++k)
      if (nodes_[k] == node) return static_cast<int64_t>(k);
    return -1;
  }
  ToyOptions o_;
  std::vector<sfc::job::SiteLayer> nodes_;
  const sfc::job::WorkPlan* plan_ = nullptr;
  std::optional<sfc::h5::Dataset> values_;
};

sfc::job::JobSpec spec_for(const fs::path& out, bool resume = false) {
  sfc::job::JobSpec spec;
  spec.name = "toy";
  spec.item_noun = "items";
  spec.output = out;
  spec.shard_dir = out.string() + ".shards";
  spec.fingerprint = "toy v1";
  spec.resume = resume;
  spec.progress_seconds = 0;
  return spec;
}

// Rank 0 reads the file back: every value where it belongs, no NaN left.
void expect_toy_file(const fs::path& out, const ToyOptions& o) {
  if (mpi_rank() != 0) return;
  auto f = sfc::h5::File::open_read_only(out);
  const auto ds = f.open_dataset("/toy/values");
  const int64_t K = static_cast<int64_t>(kSites.size()) * kLayers;
  ASSERT_EQ(ds.shape(), (std::vector<int64_t>{o.n_items, K}));
  const auto values = ds.read<double>({0, 0}, {o.n_items, K});
  for (int64_t i = 0; i < o.n_items; ++i)
    for (int64_t k = 0; k < K; ++k) ASSERT_EQ(values[i * K + k], toy_value(i, k)) << "item " << i << " node " << k;
  EXPECT_EQ(f.open_group("/timing").attribute("world_size"), std::to_string(world().size()));
  EXPECT_EQ(f.open_group("/timing").attribute("phases"), "load,toy,comm,io");
}

// Batches computed over all ranks, each counted once per site group that computed it.
int64_t batches_computed_everywhere(const ToyClient& client) {
  return world().sum(static_cast<int64_t>(client.computed_batches.size()));
}

TEST(JobDriver, EveryRankCountAndSiteGroupingWritesTheSameFile) {
  SharedTempDir dir;
  std::vector<int> groupings = {1};
  if (world().size() == 3) groupings.push_back(3);  // one data group of three site groups
  for (int G : groupings) {
    ToyOptions o;
    o.site_groups = G;
    const auto out = dir / ("toy-G" + std::to_string(G) + ".h5");
    ToyClient client(o);
    ASSERT_EQ(sfc::job::run_job(client, spec_for(out), world()), 0);
    expect_toy_file(out, o);
    const int64_t n_batches = (o.n_items + o.batch_size - 1) / o.batch_size;
    EXPECT_EQ(batches_computed_everywhere(client), n_batches * G);  // each (batch, site group) once
    EXPECT_EQ(client.reduced_on, world().size());
    if (mpi_rank() == 0) {
      EXPECT_EQ(client.reduced_file, out);
      EXPECT_FALSE(fs::exists(out.string() + ".shards"));
      EXPECT_FALSE(fs::exists(out.string() + ".partial"));
    }
    world().barrier();
  }
}

TEST(JobDriver, ASignalStopsEveryRankAfterItsBatchAndResumeFinishesTheSameFile) {
  SharedTempDir dir;
  const auto out = dir / "toy.h5";
  ToyOptions o;
  o.signal_at_batch = 1;  // computed by rank 1 of 3 (data group 1), or by rank 0 alone
  ToyClient first(o);
  EXPECT_EQ(sfc::job::run_job(first, spec_for(out), world()), sfc::job::kExitInterrupted);
  const int64_t done_first = batches_computed_everywhere(first);
  const int64_t n_batches = (o.n_items + o.batch_size - 1) / o.batch_size;
  EXPECT_LT(done_first, n_batches);
  if (mpi_rank() == 0) {
    EXPECT_FALSE(fs::exists(out));
    EXPECT_FALSE(fs::exists(out.string() + ".partial"));
    EXPECT_TRUE(fs::exists(out.string() + ".shards"));
  }
  world().barrier();

  // Without --resume the shards block a new run, naming the folder.
  ToyClient blocked(ToyOptions{});
  try {
    sfc::job::run_job(blocked, spec_for(out), world());
    ADD_FAILURE() << "ran over an unfinished run's shards";
  } catch (const sfc::Error& e) {
    EXPECT_EQ(mpi_rank(), 0);
    EXPECT_NE(std::string(e.what()).find("add --resume"), std::string::npos) << e.what();
  } catch (const sfc::ExitStatus& e) {
    EXPECT_NE(mpi_rank(), 0);
  }

  ToyClient second(ToyOptions{});
  ASSERT_EQ(sfc::job::run_job(second, spec_for(out, /*resume=*/true), world()), 0);
  EXPECT_EQ(batches_computed_everywhere(second), n_batches - done_first);  // nothing done twice
  expect_toy_file(out, o);

  // Resuming a complete run does nothing.
  ToyClient third(ToyOptions{});
  EXPECT_EQ(sfc::job::run_job(third, spec_for(out, /*resume=*/true), world()), 0);
  EXPECT_EQ(batches_computed_everywhere(third), 0);
}

TEST(JobDriver, ABadInputOnOneRankIsReportedOnceBeforeAnyOutput) {
  SharedTempDir dir;
  const auto out = dir / "toy.h5";
  ToyOptions o;
  o.fail_load_on_rank = world().size() - 1;
  ToyClient client(o);
  try {
    sfc::job::run_job(client, spec_for(out), world());
    ADD_FAILURE() << "no error";
  } catch (const sfc::Error& e) {
    EXPECT_EQ(mpi_rank(), 0);
    const std::string where = world().size() > 1 ? "rank " + std::to_string(world().size() - 1) + ": " : "";
    EXPECT_EQ(std::string(e.what()), where + "toy.jsonl: line 2: not a toy");
  } catch (const sfc::ExitStatus& e) {
    EXPECT_NE(mpi_rank(), 0);
    EXPECT_EQ(e.status, 1);
  }
  EXPECT_TRUE(client.computed_batches.empty());
  if (mpi_rank() == 0) {
    EXPECT_FALSE(fs::exists(out));
    EXPECT_FALSE(fs::exists(out.string() + ".shards"));
  }
  world().barrier();
}

}  // namespace

int main(int argc, char** argv) { return sfc::test::run_mpi_tests(argc, argv); }
