// `sfc run` as a client of the job driver (sfc/job/driver.h): what a batch of prompt pairs is
// (the engines on this rank's nodes), how it becomes a shard record, and how records become the
// results file. Private to src/app; run_command.cpp is its main.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "sfc/app/config.h"
#include "sfc/app/device.h"
#include "sfc/data/pairs.h"
#include "sfc/engines/engines.h"
#include "sfc/job/driver.h"
#include "sfc/model/gemma2.h"
#include "sfc/output/results_writer.h"

namespace sfc::app {

class RunClient : public job::Client {
 public:
  RunClient(RunConfig config, std::string command_line);
  ~RunClient() override;

  std::vector<std::string> phases() const override;
  std::string device() const override { return runtime_.resolved_device.str(); }

  job::JobShape load() override;
  void load_own_work(const job::WorkPlan& plan, const job::RankWork& mine) override;
  void after_load(const mpi::Comm& comm, const job::WorkPlan& plan) override;

  job::ShardRecord compute(int64_t batch, const job::RankWork& mine, job::PhaseTimes& times) override;

  void begin_output(h5::File& file, const mpi::Comm& comm) override;
  void write_batch(const std::vector<job::ShardRecord>& records) override;
  void finish_output(const mpi::Comm& comm, job::PhaseTimes& times) override;

  void reduce(const std::filesystem::path& output, const mpi::Comm& comm) override;
  std::string done_line() const override;

 private:
  RunConfig config_;
  std::string command_line_;
  // Identical on every rank except saes_ (own nodes only).
  RuntimeOptions runtime_;
  model::Gemma2 model_{nullptr};
  data::PairDataset dataset_;
  std::vector<int64_t> layers_;
  engines::SaeSet saes_;
  engines::EngineOptions options_;
  output::ResultsLayout layout_;
  const job::WorkPlan* plan_ = nullptr;  // the driver's, valid from load_own_work on
  std::unique_ptr<output::ResultsWriter> writer_;  // during the combine
};

// The job's description for the driver, from the run's configuration.
job::JobSpec run_job_spec(const RunConfig& config, bool resume);

}  // namespace sfc::app
