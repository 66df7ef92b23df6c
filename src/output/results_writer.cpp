// The results file of `sfc run`: every dataset created up front with its final shape, then filled
// batch by batch with hyperslab writes; latent sums kept in memory (L, T, F) per site and written by
// finish(). See docs/results-schema.md.
#include "sfc/output/results_writer.h"

#include <torch/torch.h>

#include <algorithm>
#include <limits>

#include "sfc/core/version.h"
#include "sfc/core/error.h"
#include "sfc/core/shapes.h"
#include "sfc/schema/results_schema.h"
#include "sfc/output/topk.h"

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
  file_.set_attribute(sc::kAttrVersion, version());
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

  totals_.count = torch::zeros({T}, torch::kLong);
  create(sc::path(sc::kLatents, sc::kLatentCount), sc::kLatentCount, {T});
  for (Site site : kAllSites) {
    const int64_t F = layout_.max_width(site);
    file_.set_attribute(sc::attr_n_latents(site), std::to_string(F));
    if (F == 0) continue;
    auto& s = totals_.sums[static_cast<int>(site)];
    s.atp = torch::zeros({L, T, F}, torch::kDouble);
    s.ig = torch::zeros({L, T, F}, torch::kDouble);
    s.atp_seen = torch::zeros({L, T}, torch::kBool);
    s.ig_seen = torch::zeros({L, T}, torch::kBool);
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

namespace {

// x (B, L, Tb) or (B, L) of a score -> float32 block, NaN past each prompt; undefined stays undefined.
torch::Tensor score_block(const torch::Tensor& x, const torch::Tensor& valid, int64_t L, bool per_position,
                          const std::string& what) {
  if (!x.defined()) return {};  // not computed: the fill value (NaN) stays
  const int64_t B = valid.size(0), Tb = valid.size(1);
  expect_shape(x, per_position ? std::vector<int64_t>{B, L, Tb} : std::vector<int64_t>{B, L}, what);
  auto h = host(x, torch::kFloat);
  if (per_position) h = mask_positions(h, valid).contiguous();
  return h;
}

// Pair by pair in pair order: the fp64 sums do not depend on how pairs were batched.
// x (B, L, Tb, F) float32, NaN-masked -> sum (L, Tb, F) fp64 and seen (L, Tb) bool.
std::pair<torch::Tensor, torch::Tensor> batch_latent_sum(const torch::Tensor& x) {
  auto sum = torch::zeros({x.size(1), x.size(2), x.size(3)}, torch::kDouble);
  auto seen = torch::zeros({x.size(1), x.size(2)}, torch::kBool);
  for (int64_t b = 0; b < x.size(0); ++b) {
    const auto xb = x[b].to(torch::kDouble);  // (L, Tb, F)
    const auto nan = torch::isnan(xb);
    sum.add_(xb.masked_fill(nan, 0.0));
    seen.logical_or_(nan.logical_not().any(-1));
  }
  return {sum, seen};
}

}  // namespace

BatchRows ResultsWriter::make_rows(const ResultsLayout& layout, const data::PairBatch& batch,
                                   const engines::BatchResult& result) {
  const int64_t B = batch.size(), Tb = batch.n_tokens(), first = batch.first, L = layout.n_layer;
  if (first < 0 || first + B > layout.n_pairs || Tb > layout.n_tokens)
    throw Error("results writer: batch of rows [" + std::to_string(first) + ", " + std::to_string(first + B) +
                ") and " + std::to_string(Tb) + " tokens does not fit N=" + std::to_string(layout.n_pairs) +
                ", T=" + std::to_string(layout.n_tokens));
  const auto valid = batch.valid.to(torch::kCPU).to(torch::kBool);  // (B, Tb)
  expect_shape(valid, {B, Tb}, "batch.valid");
  BatchRows rows;
  rows.first = first;
  rows.n_rows = B;
  auto put = [&](const std::string& path, torch::Tensor block) {
    if (block.defined()) rows.blocks[path] = block.contiguous();
  };

  // /pairs
  auto ids32 = [&](const torch::Tensor& ids) {  // (B, Tb) int64 -> int32, -1 after the prompt
    return host(ids, torch::kInt).masked_fill(valid.logical_not(), -1);
  };
  put(sc::path(sc::kPairs, sc::kCleanIds), ids32(batch.clean_ids));
  put(sc::path(sc::kPairs, sc::kPatchIds), ids32(batch.patch_ids));
  const auto answer_ids = host(batch.answers.ids, torch::kInt);  // (B, A)
  expect_shape(answer_ids.select(1, 0), {B}, "batch.answers.ids");
  const std::array<std::pair<const sc::Entry*, torch::Tensor>, 4> pair_rows = {{
      {&sc::kLength, host(batch.length, torch::kInt)},
      {&sc::kAnswerPos, host(batch.answers.pos, torch::kInt)},
      {&sc::kCleanAnswer, answer_ids.select(1, 0)},
      {&sc::kPatchAnswer, answer_ids.select(1, 1)},
  }};
  for (const auto& [entry, x] : pair_rows) {
    expect_shape(x, {B}, std::string("batch ") + entry->name);
    put(sc::path(sc::kPairs, *entry), x);
  }
  for (const auto& [entry, x] : {std::pair{&sc::kLdClean, result.ld_clean}, std::pair{&sc::kLdPatch, result.ld_patch}}) {
    if (!x.defined()) continue;
    expect_shape(x, {B}, std::string("result ") + entry->name);
    put(sc::path(sc::kPairs, *entry), host(x, torch::kFloat));
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
      put(sc::path(sc::kError, site, *entry),
          score_block(*x, valid, L, std::string(entry->dims) == "N,L,T", "error." + s + "." + entry->name));
  }
  const auto& r = result.resid_post;
  for (const auto& [entry, x] : {std::pair{&sc::kAtp, &r.atp}, std::pair{&sc::kDeltaNorm, &r.delta_norm},
                                 std::pair{&sc::kGradNorm, &r.grad_norm}, std::pair{&sc::kCos, &r.cos}})
    put(sc::path(sc::kResidPost, *entry), score_block(*x, valid, L, true, std::string("resid_post.") + entry->name));

  // /latents
  for (Site site : kAllSites) {
    const int64_t F = layout.max_width(site), k = layout.topk;
    if (F == 0) continue;
    const auto& scores = result.latents[static_cast<int>(site)];
    const std::string s = site_name(site);
    auto& sums = rows.latent_sums[static_cast<int>(site)];
    auto prepare = [&](torch::Tensor x, const char* name) {  // -> (B, L, Tb, F) fp32 host, NaN-masked
      // A rank owning only a site's narrower SAEs makes them as wide as its widest: NaN-pad to F.
      if (x.dim() == 4 && x.size(3) < F)
        x = torch::cat({x, torch::full({x.size(0), x.size(1), x.size(2), F - x.size(3)}, kNan, x.options())}, 3);
      expect_shape(x, {B, L, Tb, F}, "latents." + s + "." + name);
      return mask_positions(host(x, torch::kFloat), valid).contiguous();
    };
    if (scores.atp.defined()) {
      const auto atp = prepare(scores.atp, "atp");
      std::tie(sums.atp, sums.atp_seen) = batch_latent_sum(atp);
      if (layout.latents == engines::LatentOutput::kSum) {
        const auto top = topk_by_abs(atp, k);  // (B, L, Tb, k) each
        put(sc::path(sc::kLatents, site, sc::kAtpTopkIndex), top.index);
        put(sc::path(sc::kLatents, site, sc::kAtpTopkValue), top.value);
      } else if (layout.latents == engines::LatentOutput::kFull) {
        put(sc::path(sc::kLatents, site, sc::kLatentAtp), atp);
      }
    }
    if (scores.ig.defined()) {
      const auto ig = prepare(scores.ig, "ig");
      std::tie(sums.ig, sums.ig_seen) = batch_latent_sum(ig);
      if (layout.latents == engines::LatentOutput::kFull) put(sc::path(sc::kLatents, site, sc::kLatentIg), ig);
    }
  }
  return rows;
}

void ResultsWriter::write(const data::PairBatch& batch, const engines::BatchResult& result) {
  write_rows(make_rows(layout_, batch, result));
}

void ResultsWriter::write_rows(const BatchRows& rows) {
  if (finished_) throw Error("results writer: write after finish");
  for (const auto& [path, block] : rows.blocks)
    if (!datasets_.count(path)) throw Error("results writer: batch has a block for " + path + ", which this file lacks");
  // Every dataset in the map's (sorted) order, so collective writes line up across ranks.
  for (auto& [path, ds] : datasets_) {
    const auto it = rows.blocks.find(path);
    const auto rank = ds.shape().size();
    std::vector<int64_t> start(rank, 0), count(rank, 0);
    const void* data = nullptr;
    h5::Dtype mem = ds.dtype();
    if (path == sc::path(sc::kLatents, sc::kLatentCount)) {
      // written by finish()
    } else if (it != rows.blocks.end()) {
      const auto& block = it->second;
      if (block.dim() != static_cast<int64_t>(rank) || block.size(0) != rows.n_rows)
        throw Error("results writer: block for " + path + " has shape " + shape_str(block.sizes().vec()) +
                    " for " + std::to_string(rows.n_rows) + " rows");
      start[0] = rows.first;
      count = block.sizes().vec();
      data = block.data_ptr();
      switch (block.scalar_type()) {
        case torch::kFloat: mem = h5::Dtype::kFloat32; break;
        case torch::kDouble: mem = h5::Dtype::kFloat64; break;
        case torch::kInt: mem = h5::Dtype::kInt32; break;
        case torch::kLong: mem = h5::Dtype::kInt64; break;
        default: throw Error("results writer: block for " + path + " has an unsupported element type");
      }
    }
    ds.write(start, count, data, mem);
  }

  // Totals.
  const auto length = rows.blocks.find(sc::path(sc::kPairs, sc::kLength));
  if (length != rows.blocks.end()) {
    const auto len = length->second.to(torch::kLong);
    for (int64_t b = 0; b < len.size(0); ++b)
      totals_.count.narrow(0, 0, std::min(len[b].item<int64_t>(), layout_.n_tokens)).add_(1);
  }
  for (Site site : kAllSites) {
    const auto& add = rows.latent_sums[static_cast<int>(site)];
    auto& total = totals_.sums[static_cast<int>(site)];
    for (const auto& [x, seen, sum, sum_seen] :
         {std::tuple{add.atp, add.atp_seen, total.atp, total.atp_seen},
          std::tuple{add.ig, add.ig_seen, total.ig, total.ig_seen}}) {
      if (!x.defined()) continue;
      if (!sum.defined()) throw Error(std::string("results writer: latent sums for site ") + site_name(site) + ", which has no SAE");
      const int64_t Tb = x.size(1);
      sum.narrow(1, 0, Tb).add_(x);
      sum_seen.narrow(1, 0, Tb).logical_or_(seen);
    }
  }
}

void ResultsWriter::finish(bool write_totals) {
  if (finished_) return;
  const int64_t L = layout_.n_layer, T = layout_.n_tokens;
  auto write_or_join = [&](const std::string& path, std::vector<int64_t> shape, const torch::Tensor& x,
                           h5::Dtype mem) {
    if (write_totals) {
      dataset(path).write(std::vector<int64_t>(shape.size(), 0), shape, x.data_ptr(), mem);
    } else {
      dataset(path).write(std::vector<int64_t>(shape.size(), 0), std::vector<int64_t>(shape.size(), 0), nullptr, mem);
    }
  };
  write_or_join(sc::path(sc::kLatents, sc::kLatentCount), {T}, totals_.count, h5::Dtype::kInt64);
  for (Site site : kAllSites) {
    const int64_t F = layout_.max_width(site);
    if (F == 0) continue;
    auto& sums = totals_.sums[static_cast<int>(site)];
    const auto& widths = layout_.latent_width[static_cast<int>(site)];
    for (const auto& [entry, sum, computed] : {std::tuple{&sc::kAtpSum, sums.atp, sums.atp_seen},
                                               std::tuple{&sc::kIgSum, sums.ig, sums.ig_seen}}) {
      // NaN where no pair computed the node, and past a narrower layer's width.
      auto out = sum.masked_fill(computed.logical_not().unsqueeze(-1), kNan);
      for (int64_t l = 0; l < L; ++l)
        if (widths[l] < F) out[l].narrow(1, widths[l], F - widths[l]).fill_(kNan);
      out = out.contiguous();
      write_or_join(sc::path(sc::kLatents, site, *entry), {L, T, F}, out, h5::Dtype::kFloat64);
    }
  }
  datasets_.clear();  // closes them: the file can be committed
  finished_ = true;
}

}  // namespace sfc::output
