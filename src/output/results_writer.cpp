// The results file of `sfc run`: every dataset created up front with its final shape, then filled
// batch by batch with hyperslab writes; latent sums kept in memory (L, T, F) per site and written by
// finish(). See docs/results-schema.md.
#include "sfc/output/results_writer.h"

#include <torch/torch.h>

#include <algorithm>
#include <limits>

#include "sfc/app/command.h"
#include "sfc/core/error.h"
#include "sfc/core/shapes.h"
#include "sfc/output/results_schema.h"

namespace sfc::output {
namespace {

namespace sc = schema;

constexpr double kNan = std::numeric_limits<double>::quiet_NaN();
// Rows per chunk: as many as fit in 256 KiB, well inside HDF5's default 1 MiB chunk cache, so
// batches that fill a chunk in several writes do not re-read it from disk.
constexpr int64_t kChunkBytes = 256 << 10;

h5::Dtype to_h5(sc::Type type) {
  switch (type) {
    case sc::Type::kFloat32: return h5::Dtype::kFloat32;
    case sc::Type::kFloat64: return h5::Dtype::kFloat64;
    case sc::Type::kInt32: return h5::Dtype::kInt32;
    case sc::Type::kInt64: return h5::Dtype::kInt64;
  }
  return h5::Dtype::kFloat32;
}

int64_t type_size(sc::Type type) {
  return type == sc::Type::kFloat64 || type == sc::Type::kInt64 ? 8 : 4;
}

bool is_float(sc::Type type) { return type == sc::Type::kFloat32 || type == sc::Type::kFloat64; }

// (B, ...) -> the same on the CPU, contiguous, as `dtype`.
torch::Tensor host(const torch::Tensor& x, torch::Dtype dtype) {
  return x.detach().to(torch::kCPU).to(dtype).contiguous();
}

// valid (B, T) broadcast against x (B, L, T, ...) -> x with NaN where !valid.
torch::Tensor mask_positions(const torch::Tensor& x, const torch::Tensor& valid) {
  auto mask = valid.logical_not().unsqueeze(1);  // (B, 1, T)
  while (mask.dim() < x.dim()) mask = mask.unsqueeze(-1);
  return x.masked_fill(mask, kNan);
}

void expect_shape(const torch::Tensor& x, const std::vector<int64_t>& shape, const std::string& what) {
  if (x.sizes().vec() != shape)
    throw Error("results writer: " + what + " has shape " + shape_str(x.sizes().vec()) + ", expected " +
                shape_str(shape));
}

}  // namespace

int64_t ResultsLayout::max_width(Site site) const {
  const auto& w = latent_width[static_cast<int>(site)];
  return w.empty() ? 0 : *std::max_element(w.begin(), w.end());
}

ResultsLayout ResultsLayout::make(const data::PairDataset& dataset, int64_t n_layer, const engines::SaeSet& saes,
                                  engines::LatentOutput latents, int64_t topk) {
  ResultsLayout layout;
  layout.n_pairs = static_cast<int64_t>(dataset.pairs.size());
  layout.n_layer = n_layer;
  layout.n_tokens = dataset.max_length();
  layout.latents = latents;
  layout.topk = topk;
  for (Site site : kAllSites) {
    auto& widths = layout.latent_width[static_cast<int>(site)];
    widths.assign(n_layer, 0);
    for (int64_t l = 0; l < n_layer; ++l)
      if (saes.has(site, l)) widths[l] = saes.at(site, l).d_sae();
  }
  return layout;
}

ResultsWriter::ResultsWriter(h5::File& file, const ResultsLayout& layout, const Provenance& provenance)
    : file_(file), layout_(layout) {
  const int64_t N = layout.n_pairs, L = layout.n_layer, T = layout.n_tokens, k = layout.topk;
  if (N < 1 || L < 1 || T < 1) throw Error("results writer: empty layout N=" + std::to_string(N) + " L=" +
                                           std::to_string(L) + " T=" + std::to_string(T));
  for (auto& widths : layout_.latent_width) widths.resize(L, 0);

  file_.set_attribute(sc::kAttrSchemaVersion, sc::kSchemaVersion);
  file_.set_attribute(sc::kAttrConfig, provenance.config);
  file_.set_attribute(sc::kAttrModel, provenance.model);
  file_.set_attribute(sc::kAttrSae, provenance.sae);
  file_.set_attribute(sc::kAttrVersion, app::version());
  file_.set_attribute(sc::kAttrCommandLine, provenance.command_line);
  file_.set_attribute(sc::kAttrNPairs, std::to_string(N));
  file_.set_attribute(sc::kAttrNLayer, std::to_string(L));
  file_.set_attribute(sc::kAttrNTokens, std::to_string(T));

  for (const auto& e : sc::kPairsDatasets) {
    const bool per_token = std::string(e.dims) == "N,T";
    create(sc::path(sc::kPairs, e), e, per_token ? std::vector<int64_t>{N, T}
                                                                          : std::vector<int64_t>{N});
  }
  file_.create_group(sc::kPairs).set_attribute(sc::kAttrNSkipped, "0");
  for (Site site : kAllSites) {
    for (const auto& e : sc::kErrorDatasets) {
      const bool global = std::string(e.dims) == "N,L";
      create(sc::path(sc::kError, site, e), e,
             global ? std::vector<int64_t>{N, L} : std::vector<int64_t>{N, L, T});
    }
  }
  for (const auto& e : sc::kResidPostDatasets) create(sc::path(sc::kResidPost, e), e, {N, L, T});

  count_ = torch::zeros({T}, torch::kLong);
  create(sc::path(sc::kLatents, sc::kLatentCount), sc::kLatentCount, {T});
  for (Site site : kAllSites) {
    const int64_t F = layout_.max_width(site);
    file_.set_attribute(sc::attr_n_latents(site), std::to_string(F));
    if (F == 0) continue;
    auto& s = sums_[static_cast<int>(site)];
    s.atp = torch::zeros({L, T, F}, torch::kDouble);
    s.ig = torch::zeros({L, T, F}, torch::kDouble);
    s.atp_computed = torch::zeros({L, T}, torch::kBool);
    s.ig_computed = torch::zeros({L, T}, torch::kBool);
    for (const auto* e : {&sc::kAtpSum, &sc::kIgSum})
      create(sc::path(sc::kLatents, site, *e), *e, {L, T, F});
    if (layout_.latents == engines::LatentOutput::kSum) {
      for (const auto* e : {&sc::kAtpTopkIndex, &sc::kAtpTopkValue})
        create(sc::path(sc::kLatents, site, *e), *e, {N, L, T, k});
    } else if (layout_.latents == engines::LatentOutput::kFull) {
      for (const auto* e : {&sc::kLatentAtp, &sc::kLatentIg})
        create(sc::path(sc::kLatents, site, *e), *e, {N, L, T, F});
    }
  }
}

ResultsWriter::~ResultsWriter() = default;

void ResultsWriter::create(const std::string& path, const schema::Entry& entry, std::vector<int64_t> shape) {
  const auto type = entry.type;
  h5::DatasetSpec spec(to_h5(type), shape, is_float(type) ? kNan : -1.0);
  if (path == sc::path(sc::kLatents, sc::kLatentCount)) spec.fill = 0.0;
  // Batches write whole rows: chunks of several rows keep small per-row datasets from turning into
  // one tiny chunk per pair. Rows over kChunkBytes keep the default (one row, split further if large).
  int64_t row_bytes = type_size(type);
  for (size_t d = 1; d < shape.size(); ++d) row_bytes *= shape[d];
  if (shape.size() > 1 && row_bytes <= kChunkBytes) {
    spec.chunk = shape;
    spec.chunk[0] = std::max<int64_t>(1, std::min<int64_t>(shape[0], kChunkBytes / row_bytes));
  } else if (shape.size() == 1) {
    spec.chunk = {std::max<int64_t>(1, std::min<int64_t>(shape[0], kChunkBytes / row_bytes))};
  }
  auto ds = file_.create_dataset(path, spec);
  ds.set_attribute(sc::kAttrDims, entry.dims);
  datasets_.emplace(path, std::move(ds));
}

h5::Dataset& ResultsWriter::dataset(const std::string& path) {
  const auto it = datasets_.find(path);
  if (it == datasets_.end()) throw Error("results writer: no open dataset " + path + (finished_ ? " (finished)" : ""));
  return it->second;
}

void ResultsWriter::write_dataset_info(const data::PairDataset& dataset) {
  auto pairs = file_.open_group(sc::kPairs);
  pairs.set_attribute(sc::kAttrSource, dataset.file.string());
  pairs.set_attribute(sc::kAttrNSkipped, std::to_string(dataset.n_skipped));
  std::string reasons;
  for (const auto& r : dataset.skip_reasons) reasons += r + "\n";
  pairs.set_attribute(sc::kAttrSkipReasons, reasons);
}

// x (B, L, T_b) or (B, L): float32 rows [first, first + B) of `path`; NaN where !valid.
void ResultsWriter::write_scores(const std::string& path, const torch::Tensor& x, const torch::Tensor& valid,
                                 int64_t first, const char* what) {
  if (!x.defined()) return;  // not computed: the fill value (NaN) stays
  const int64_t B = valid.size(0), Tb = valid.size(1), L = layout_.n_layer;
  const bool per_position = dataset(path).shape().size() == 3;
  expect_shape(x, per_position ? std::vector<int64_t>{B, L, Tb} : std::vector<int64_t>{B, L}, what);
  auto h = host(x, torch::kFloat);
  if (per_position) h = mask_positions(h, valid).contiguous();
  const std::vector<int64_t> start = per_position ? std::vector<int64_t>{first, 0, 0} : std::vector<int64_t>{first, 0};
  dataset(path).write<float>(start, h.sizes().vec(), h.data_ptr<float>());
}

void ResultsWriter::write(const data::PairBatch& batch, const engines::BatchResult& result) {
  if (finished_) throw Error("results writer: write after finish");
  const int64_t B = batch.size(), Tb = batch.n_tokens(), first = batch.first;
  if (first < 0 || first + B > layout_.n_pairs || Tb > layout_.n_tokens)
    throw Error("results writer: batch of rows [" + std::to_string(first) + ", " + std::to_string(first + B) +
                ") and " + std::to_string(Tb) + " tokens does not fit N=" + std::to_string(layout_.n_pairs) +
                ", T=" + std::to_string(layout_.n_tokens));
  const auto valid = batch.valid.to(torch::kCPU).to(torch::kBool);  // (B, Tb)
  expect_shape(valid, {B, Tb}, "batch.valid");

  // /pairs
  auto ids32 = [&](const torch::Tensor& ids) {  // (B, Tb) int64 -> int32, -1 after the prompt
    return host(ids, torch::kInt).masked_fill(valid.logical_not(), -1).contiguous();
  };
  const auto clean = ids32(batch.clean_ids), patch = ids32(batch.patch_ids);
  dataset(sc::path(sc::kPairs, sc::kCleanIds)).write<int32_t>({first, 0}, {B, Tb}, clean.data_ptr<int32_t>());
  dataset(sc::path(sc::kPairs, sc::kPatchIds)).write<int32_t>({first, 0}, {B, Tb}, patch.data_ptr<int32_t>());
  const auto answer_ids = host(batch.answers.ids, torch::kInt);  // (B, A)
  expect_shape(answer_ids.select(1, 0), {B}, "batch.answers.ids");
  const std::array<std::pair<const sc::Entry*, torch::Tensor>, 4> rows = {{
      {&sc::kLength, host(batch.length, torch::kInt)},
      {&sc::kAnswerPos, host(batch.answers.pos, torch::kInt)},
      {&sc::kCleanAnswer, answer_ids.select(1, 0).contiguous()},
      {&sc::kPatchAnswer, answer_ids.select(1, 1).contiguous()},
  }};
  for (const auto& [entry, x] : rows) {
    expect_shape(x, {B}, std::string("batch ") + entry->name);
    dataset(sc::path(sc::kPairs, *entry)).write<int32_t>({first}, {B}, x.data_ptr<int32_t>());
  }
  for (const auto& [entry, x] : {std::pair{&sc::kLdClean, result.ld_clean}, std::pair{&sc::kLdPatch, result.ld_patch}}) {
    if (!x.defined()) continue;
    expect_shape(x, {B}, std::string("result ") + entry->name);
    const auto h = host(x, torch::kFloat);
    dataset(sc::path(sc::kPairs, *entry)).write<float>({first}, {B}, h.data_ptr<float>());
  }

  // /error/<site>, /resid_post
  for (Site site : kAllSites) {
    const auto& e = result.error[static_cast<int>(site)];
    const std::string s = site_name(site);
    const std::array<std::pair<const sc::Entry*, const torch::Tensor*>, 9> scores = {{
        {&sc::kAtp, &e.atp}, {&sc::kIg, &e.ig}, {&sc::kDeltaNorm, &e.delta_norm}, {&sc::kGradNorm, &e.grad_norm},
        {&sc::kCos, &e.cos}, {&sc::kPatchEffect, &e.patch_effect}, {&sc::kPatchEffectNorm, &e.patch_effect_norm},
        {&sc::kPatchEffectGlobal, &e.patch_effect_global},
        {&sc::kPatchEffectGlobalNorm, &e.patch_effect_global_norm},
    }};
    for (const auto& [entry, x] : scores)
      write_scores(sc::path(sc::kError, site, *entry), *x, valid, first, ("error." + s + "." + entry->name).c_str());
  }
  const auto& r = result.resid_post;
  for (const auto& [entry, x] : {std::pair{&sc::kAtp, &r.atp}, std::pair{&sc::kDeltaNorm, &r.delta_norm},
                                 std::pair{&sc::kGradNorm, &r.grad_norm}, std::pair{&sc::kCos, &r.cos}})
    write_scores(sc::path(sc::kResidPost, *entry), *x, valid, first,
                 (std::string("resid_post.") + entry->name).c_str());

  // /latents
  const auto length = batch.length.to(torch::kCPU).to(torch::kLong);
  for (int64_t b = 0; b < B; ++b) count_.narrow(0, 0, std::min(length[b].item<int64_t>(), Tb)).add_(1);
  for (Site site : kAllSites)
    if (layout_.max_width(site) > 0) write_latents(site, batch, result.latents[static_cast<int>(site)], valid);
}

void ResultsWriter::write_latents(Site site, const data::PairBatch& batch, const engines::SiteLatentScores& scores,
                                  const torch::Tensor& valid) {
  const int64_t B = batch.size(), Tb = batch.n_tokens(), first = batch.first, L = layout_.n_layer;
  const int64_t F = layout_.max_width(site), k = layout_.topk;
  auto& sums = sums_[static_cast<int>(site)];
  const std::string s = site_name(site);

  auto prepare = [&](const torch::Tensor& x, const char* name) {  // -> (B, L, Tb, F) fp32 host, NaN-masked
    expect_shape(x, {B, L, Tb, F}, "latents." + s + "." + name);
    return mask_positions(host(x, torch::kFloat), valid).contiguous();
  };
  // Pair by pair in pair order: the fp64 sums do not depend on how pairs were batched.
  auto accumulate = [&](const torch::Tensor& x, torch::Tensor& sum, torch::Tensor& computed) {
    auto window = sum.narrow(1, 0, Tb);                // (L, Tb, F)
    auto seen = computed.narrow(1, 0, Tb);             // (L, Tb)
    for (int64_t b = 0; b < B; ++b) {
      const auto xb = x[b].to(torch::kDouble);         // (L, Tb, F)
      const auto nan = torch::isnan(xb);
      window.add_(xb.masked_fill(nan, 0.0));
      seen.logical_or_(nan.logical_not().any(-1));
    }
  };

  if (scores.atp.defined()) {
    const auto atp = prepare(scores.atp, "atp");
    accumulate(atp, sums.atp, sums.atp_computed);
    if (layout_.latents == engines::LatentOutput::kSum) {
      // Top-k by |AtP| with NaN ranked below every number; slots past the computed ones: -1 / NaN.
      const int64_t kk = std::min(k, F);
      const auto key = atp.abs().masked_fill(torch::isnan(atp), -1.0);  // (B, L, Tb, F)
      const auto top = key.topk(kk, -1, /*largest=*/true, /*sorted=*/true);
      const auto absent = std::get<0>(top) < 0;                          // (B, L, Tb, kk)
      auto index = torch::full({B, L, Tb, k}, -1, torch::kInt);
      auto value = torch::full({B, L, Tb, k}, kNan, torch::kFloat);
      index.narrow(3, 0, kk).copy_(std::get<1>(top).to(torch::kInt).masked_fill(absent, -1));
      value.narrow(3, 0, kk).copy_(atp.gather(-1, std::get<1>(top)).masked_fill(absent, kNan));
      dataset(sc::path(sc::kLatents, site, sc::kAtpTopkIndex))
          .write<int32_t>({first, 0, 0, 0}, {B, L, Tb, k}, index.data_ptr<int32_t>());
      dataset(sc::path(sc::kLatents, site, sc::kAtpTopkValue))
          .write<float>({first, 0, 0, 0}, {B, L, Tb, k}, value.data_ptr<float>());
    } else if (layout_.latents == engines::LatentOutput::kFull) {
      dataset(sc::path(sc::kLatents, site, sc::kLatentAtp))
          .write<float>({first, 0, 0, 0}, {B, L, Tb, F}, atp.data_ptr<float>());
    }
  }
  if (scores.ig.defined()) {
    const auto ig = prepare(scores.ig, "ig");
    accumulate(ig, sums.ig, sums.ig_computed);
    if (layout_.latents == engines::LatentOutput::kFull)
      dataset(sc::path(sc::kLatents, site, sc::kLatentIg))
          .write<float>({first, 0, 0, 0}, {B, L, Tb, F}, ig.data_ptr<float>());
  }
}

void ResultsWriter::finish() {
  if (finished_) return;
  const int64_t L = layout_.n_layer, T = layout_.n_tokens;
  dataset(sc::path(sc::kLatents, sc::kLatentCount)).write<int64_t>({0}, {T}, count_.data_ptr<int64_t>());
  for (Site site : kAllSites) {
    const int64_t F = layout_.max_width(site);
    if (F == 0) continue;
    auto& sums = sums_[static_cast<int>(site)];
    const auto& widths = layout_.latent_width[static_cast<int>(site)];
    for (const auto& [entry, sum, computed] : {std::tuple{&sc::kAtpSum, sums.atp, sums.atp_computed},
                                               std::tuple{&sc::kIgSum, sums.ig, sums.ig_computed}}) {
      // NaN where no pair computed the node, and past a narrower layer's width.
      auto out = sum.masked_fill(computed.logical_not().unsqueeze(-1), kNan);
      for (int64_t l = 0; l < L; ++l)
        if (widths[l] < F) out[l].narrow(1, widths[l], F - widths[l]).fill_(kNan);
      out = out.contiguous();
      dataset(sc::path(sc::kLatents, site, *entry)).write<double>({0, 0, 0}, {L, T, F}, out.data_ptr<double>());
    }
  }
  datasets_.clear();  // closes them: the file can be committed
  finished_ = true;
}

}  // namespace sfc::output
