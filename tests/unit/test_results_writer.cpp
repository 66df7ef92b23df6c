// The results writer on hand-made BatchResults (no model): every schema dataset created and NaN
// where not written, padding masked, latent sums independent of the batching, top-k by |AtP|,
// narrower SAEs NaN-padded, shape mismatches refused.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>

#include "sfc/core/error.h"
#include "sfc/h5/h5_file.h"
#include "sfc/schema/results_schema.h"
#include "sfc/output/results_writer.h"
#include "support/test_support.h"

namespace sfc::output {
namespace {

namespace sc = schema;
using sfc::test::TempDir;

constexpr int64_t kN = 3, kL = 2, kT = 5, kF = 4;
const std::vector<int64_t> kLengths = {5, 3, 4};

ResultsLayout layout(engines::LatentOutput latents, int64_t topk) {
  ResultsLayout out;
  out.n_pairs = kN;
  out.n_layer = kL;
  out.n_tokens = kT;
  out.latent_width[static_cast<int>(Site::kResid)] = {kF, kF - 1};  // layer 1 narrower
  out.latent_width[static_cast<int>(Site::kMlp)] = {0, 0};          // no SAEs: no latents group
  out.latent_width[static_cast<int>(Site::kAttn)] = {};
  out.latents = latents;
  out.topk = topk;
  return out;
}

// Latent AtP of pair i: deterministic values with varied magnitudes, (L, T, F).
torch::Tensor latent_atp(int64_t i) {
  return torch::sin(torch::arange(kL * kT * kF, torch::kFloat).reshape({kL, kT, kF}) * 0.7 + i) * (1 + i);
}

// Pairs [first, first + count) as a batch of T_b = their longest prompt.
std::pair<data::PairBatch, engines::BatchResult> batch_of(int64_t first, int64_t count) {
  int64_t Tb = 0;
  for (int64_t b = 0; b < count; ++b) Tb = std::max(Tb, kLengths[first + b]);
  data::PairBatch batch;
  batch.first = first;
  batch.clean_ids = torch::full({count, Tb}, 0, torch::kLong);
  batch.patch_ids = torch::full({count, Tb}, 0, torch::kLong);
  batch.length = torch::empty({count}, torch::kLong);
  batch.answers.ids = torch::empty({count, 2}, torch::kLong);
  engines::BatchResult result;
  result.ld_clean = torch::empty({count});
  result.error[0].atp = torch::empty({count, kL, Tb});
  result.error[0].patch_effect_global = torch::empty({count, kL});
  result.latents[0].atp = torch::full({count, kL, Tb, kF}, NAN);
  for (int64_t b = 0; b < count; ++b) {
    const int64_t i = first + b, n = kLengths[i];
    batch.clean_ids[b].narrow(0, 0, n).copy_(torch::arange(n) + 10 * i + 2);
    batch.patch_ids[b].narrow(0, 0, n).copy_(torch::arange(n) + 10 * i + 3);
    batch.length[b] = n;
    batch.answers.ids[b][0] = 100 + i;
    batch.answers.ids[b][1] = 200 + i;
    result.ld_clean[b] = -1.5 * i;
    result.error[0].atp[b] = 1000 * i + torch::arange(kL * Tb, torch::kFloat).reshape({kL, Tb});
    result.error[0].patch_effect_global[b] = torch::tensor({0.5f * i, -0.5f * i});
    result.latents[0].atp[b].narrow(1, 0, n).copy_(latent_atp(i).narrow(1, 0, n));
    result.latents[0].atp[b][1].narrow(-1, kF - 1, 1).fill_(NAN);  // layer 1 is one latent narrower
  }
  batch.valid = torch::arange(Tb).unsqueeze(0).lt(batch.length.unsqueeze(1));
  batch.answers.pos = batch.length - 1;
  return {batch, result};
}

void write_file(const std::filesystem::path& path, const std::vector<int64_t>& batch_sizes,
                engines::LatentOutput latents = engines::LatentOutput::kSum, int64_t topk = 3) {
  auto file = h5::File::create(path);
  {
    ResultsWriter writer(file, layout(latents, topk), Provenance{"[model]\npath = m\n", "m", "s", "sfc run"});
    int64_t first = 0;
    for (int64_t count : batch_sizes) {
      const auto [batch, result] = batch_of(first, count);
      writer.write(batch, result);
      first += count;
    }
    writer.finish();
  }
  file.close();
}

TEST(ResultsWriter, EverySchemaDatasetWithNaNWhereNotWritten) {
  TempDir dir;
  write_file(dir / "r.h5", {2, 1});
  auto f = h5::File::open_read_only(dir / "r.h5");
  EXPECT_EQ(f.attribute(sc::kAttrSchemaVersion), sc::kSchemaVersion);
  EXPECT_EQ(f.attribute(sc::kAttrNPairs), "3");
  EXPECT_EQ(f.attribute(sc::attr_n_latents(Site::kResid)), "4");
  EXPECT_EQ(f.attribute(sc::attr_n_latents(Site::kMlp)), "0");
  for (Site site : kAllSites)
    for (const auto& e : sc::kErrorDatasets) {
      const auto ds = f.open_dataset(sc::path(sc::kError, site, e));
      EXPECT_EQ(ds.attribute(sc::kAttrDims), e.dims);
      EXPECT_EQ(ds.shape()[0], kN);
    }
  EXPECT_FALSE(f.exists("/latents/mlp"));
  EXPECT_TRUE(f.exists(sc::path(sc::kLatents, Site::kResid, sc::kAtpTopkIndex)));
  EXPECT_FALSE(f.exists(sc::path(sc::kLatents, Site::kResid, sc::kLatentAtp)));

  const auto ids = f.open_dataset(sc::path(sc::kPairs, sc::kCleanIds)).read_all<int32_t>();  // (N, T)
  EXPECT_EQ(ids[1 * kT + 0], 12);
  EXPECT_EQ(ids[1 * kT + 3], -1);  // pair 1 has 3 tokens
  EXPECT_EQ(f.open_dataset(sc::path(sc::kPairs, sc::kPatchAnswer)).read_all<int32_t>(),
            (std::vector<int32_t>{200, 201, 202}));
  EXPECT_EQ(f.open_dataset(sc::path(sc::kPairs, sc::kAnswerPos)).read_all<int32_t>(),
            (std::vector<int32_t>{4, 2, 3}));
  const auto ld_patch = f.open_dataset(sc::path(sc::kPairs, sc::kLdPatch)).read_all<float>();
  EXPECT_TRUE(std::isnan(ld_patch[0]));  // never given
  EXPECT_FLOAT_EQ(f.open_dataset(sc::path(sc::kPairs, sc::kLdClean)).read_all<float>()[2], -3.0f);

  const auto atp = f.open_dataset(sc::path(sc::kError, Site::kResid, sc::kAtp)).read_all<float>();  // (N, L, T)
  EXPECT_FLOAT_EQ(atp[(2 * kL + 1) * kT + 3], 2000 + 1 * 4 + 3);  // pair 2 alone in a batch of T_b = 4
  EXPECT_TRUE(std::isnan(atp[(2 * kL + 1) * kT + 4]));            // past T_b
  EXPECT_TRUE(std::isnan(atp[(1 * kL + 0) * kT + 3]));            // past pair 1's length, inside T_b
  EXPECT_FLOAT_EQ(atp[(1 * kL + 0) * kT + 2], 1000 + 2);
  const auto ig = f.open_dataset(sc::path(sc::kError, Site::kMlp, sc::kIg)).read_all<float>();
  for (float v : ig) EXPECT_TRUE(std::isnan(v));
  const auto global = f.open_dataset(sc::path(sc::kError, Site::kResid, sc::kPatchEffectGlobal)).read_all<float>();
  EXPECT_FLOAT_EQ(global[2 * kL + 1], -1.0f);

  EXPECT_EQ(f.open_dataset("/latents/count").read_all<int64_t>(), (std::vector<int64_t>{3, 3, 3, 2, 1}));
}

TEST(ResultsWriter, LatentSumsDoNotDependOnBatching) {
  TempDir dir;
  write_file(dir / "a.h5", {3});
  write_file(dir / "b.h5", {1, 1, 1});
  write_file(dir / "c.h5", {2, 1}, engines::LatentOutput::kFull);
  auto a = h5::File::open_read_only(dir / "a.h5"), b = h5::File::open_read_only(dir / "b.h5"),
       c = h5::File::open_read_only(dir / "c.h5");
  const auto path = sc::path(sc::kLatents, Site::kResid, sc::kAtpSum);
  const auto sa = a.open_dataset(path).read_all<double>(), sb = b.open_dataset(path).read_all<double>();
  ASSERT_EQ(sa.size(), static_cast<size_t>(kL * kT * kF));
  EXPECT_EQ(std::memcmp(sa.data(), sb.data(), sa.size() * sizeof(double)), 0);

  // Against the full scores: NaN-ignoring sum over pairs; NaN where no pair has the node, and in the
  // latent missing from the narrower layer 1.
  const auto full = c.open_dataset(sc::path(sc::kLatents, Site::kResid, sc::kLatentAtp)).read_all<float>();
  for (int64_t l = 0; l < kL; ++l)
    for (int64_t t = 0; t < kT; ++t)
      for (int64_t j = 0; j < kF; ++j) {
        double sum = 0;
        bool any = false;
        for (int64_t i = 0; i < kN; ++i) {
          const float v = full[((i * kL + l) * kT + t) * kF + j];
          if (!std::isnan(v)) sum += v, any = true;
        }
        const double got = sa[(l * kT + t) * kF + j];
        if (l == 1 && j == kF - 1) {
          EXPECT_TRUE(std::isnan(got));
        } else {
          ASSERT_TRUE(any);
          EXPECT_NEAR(got, sum, 1e-6) << l << " " << t << " " << j;
        }
      }
  // IG was never given: its sums are NaN everywhere.
  for (double v : a.open_dataset(sc::path(sc::kLatents, Site::kResid, sc::kIgSum)).read_all<double>())
    EXPECT_TRUE(std::isnan(v));
}

TEST(ResultsWriter, TopKByMagnitudeWithPadding) {
  TempDir dir;
  write_file(dir / "k.h5", {3}, engines::LatentOutput::kSum, /*topk=*/6);  // k > F: slots past F absent
  auto f = h5::File::open_read_only(dir / "k.h5");
  const int64_t k = 6;
  const auto index = f.open_dataset(sc::path(sc::kLatents, Site::kResid, sc::kAtpTopkIndex)).read_all<int32_t>();
  const auto value = f.open_dataset(sc::path(sc::kLatents, Site::kResid, sc::kAtpTopkValue)).read_all<float>();
  for (int64_t i = 0; i < kN; ++i) {
    const auto ref = latent_atp(i);  // (L, T, F)
    for (int64_t l = 0; l < kL; ++l)
      for (int64_t t = 0; t < kT; ++t) {
        const int64_t at = ((i * kL + l) * kT + t) * k;
        if (t >= kLengths[i]) {
          EXPECT_EQ(index[at], -1);
          EXPECT_TRUE(std::isnan(value[at]));
          continue;
        }
        const int64_t width = l == 1 ? kF - 1 : kF;
        float previous = INFINITY;
        for (int64_t s = 0; s < k; ++s) {
          if (s >= width) {
            EXPECT_EQ(index[at + s], -1) << i << l << t << s;
            EXPECT_TRUE(std::isnan(value[at + s]));
            continue;
          }
          ASSERT_GE(index[at + s], 0);
          EXPECT_FLOAT_EQ(value[at + s], ref[l][t][index[at + s]].item<float>());
          EXPECT_LE(std::abs(value[at + s]), previous);
          previous = std::abs(value[at + s]);
        }
      }
  }
}

TEST(ResultsWriter, RefusesWrongShapesAndRowsOutsideTheFile) {
  TempDir dir;
  auto file = h5::File::create(dir / "x.h5");
  ResultsWriter writer(file, layout(engines::LatentOutput::kSum, 3), Provenance{});
  auto [batch, result] = batch_of(0, 2);
  result.error[1].cos = torch::zeros({2, kL + 1, batch.n_tokens()});
  EXPECT_THROW(writer.write(batch, result), Error);
  auto [late, late_result] = batch_of(1, 2);
  late.first = 2;  // rows [2, 4) of N = 3
  EXPECT_THROW(writer.write(late, late_result), Error);
}

}  // namespace
}  // namespace sfc::output
