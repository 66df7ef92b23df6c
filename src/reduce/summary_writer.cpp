// Step 4 of the reduction pass, on rank 0: the summary from the merged moments and Spearman r, written
// to /summary (latent means and top latents included) and to the CSV.
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "reduce_pass.h"
#include "sfc/core/error.h"
#include "sfc/core/shapes.h"
#include "sfc/core/site.h"
#include "sfc/h5/h5_file.h"
#include "sfc/reduce/reduce.h"
#include "sfc/schema/results_schema.h"

namespace sfc::reduce::detail {

// ---- results on rank 0 ----

namespace {

void set_pearson(const CoMoments& m, Correlations& out) {
  for (int p = 0; p < kNumPairs; ++p) out.pearson[p] = m.pearson(p);
}

}  // namespace

Summary finish_summary(Partial moments, const SpearmanResults& spear, int64_t L, int64_t T) {
  Summary out;
  for (int s = 0; s < kNumSites; ++s) {
    auto fill = [](CorrTable& table, const CoMoments* m, const Correlations* sp, int64_t n) {
      table.count.resize(n);
      table.r.resize(n);
      for (int64_t i = 0; i < n; ++i) {
        table.count[i] = static_cast<int64_t>(m[i].n);
        table.r[i] = sp[i];
        set_pearson(m[i], table.r[i]);
      }
    };
    fill(out.by_layer[s], &moments.by_layer[s * L], &spear.by_layer[s * L], L);
    fill(out.by_position[s], &moments.by_position[s * T], &spear.by_position[s * T], T);
    fill(out.answer_layer[s], &moments.answer_layer[s * L], &spear.answer_layer[s * L], L);
    // All layers at the answer position: the per-layer moments merged in layer order.
    CoMoments pooled;
    for (int64_t l = 0; l < L; ++l) pooled.merge(moments.answer_layer[s * L + l]);
    fill(out.answer[s], &pooled, &spear.answer[s], 1);
    // Across layers, of the per-layer means over pairs at the answer position (the seed's Task B r).
    std::array<std::vector<double>, 3> means;  // over layers that have a complete node
    for (int k = 0; k < 3; ++k) out.layer_mean[s][k].assign(L, kNan);
    for (int64_t l = 0; l < L; ++l) {
      const CoMoments& m = moments.answer_layer[s * L + l];
      if (m.n == 0) continue;
      for (int k = 0; k < 3; ++k) {
        out.layer_mean[s][k][l] = m.mean[k];
        means[k].push_back(m.mean[k]);
      }
    }
    CorrTable& lm = out.layer_means[s];
    lm.count = {static_cast<int64_t>(means[0].size())};
    lm.r.resize(1);
    for (int p = 0; p < kNumPairs; ++p) {
      lm.r[0].pearson[p] = pearson(means[kPairFirst[p]], means[kPairSecond[p]]);
      lm.r[0].spearman[p] = spearman(means[kPairFirst[p]], means[kPairSecond[p]]);
    }
  }
  out.moments = std::move(moments);
  return out;
}

namespace {

// Writes a whole dataset, creating it or overwriting the one an earlier pass wrote. sfc_h5 cannot
// delete, so a rerun reuses the datasets: only their first dimension can change (topk of the
// top-k datasets, which is why topk comes first there).
template <typename V>
h5::Dataset put(h5::File& f, const std::string& path, const char* dims, const std::vector<int64_t>& shape,
                const std::vector<V>* data) {
  const h5::Dtype dtype = h5::DtypeOf<V>::value;
  std::optional<h5::Dataset> ds;
  if (f.exists(path)) {
    ds.emplace(f.open_dataset(path));
    auto old = ds->shape();
    if (old.size() == shape.size() && !old.empty() && old[0] != shape[0]) {
      old[0] = shape[0];
      if (old == shape) ds->resize_rows(shape[0]);
    }
    if (ds->shape() != shape || ds->dtype() != dtype)
      throw LoadError(f.file_path(), "an earlier /summary has " + path + " of shape " + shape_str(ds->shape()) + " " +
                                         h5::dtype_name(ds->dtype()) + ", this pass writes " + shape_str(shape) + " " +
                                         h5::dtype_name(dtype) + "; delete it first (h5py: del f['summary'])");
  } else {
    const bool is_int = dtype == h5::Dtype::kInt32 || dtype == h5::Dtype::kInt64;
    ds.emplace(f.create_dataset(path, h5::DatasetSpec(dtype, shape, is_int ? -1.0 : kNan)));
    ds->set_attribute(sc::kAttrDims, dims);
  }
  if (data) ds->write_all(*data);
  return std::move(*ds);
}

std::string summary_metric_path(int m) { return std::string(sc::kSummary) + metric_path(m); }
std::string corr_path(int s, const sc::SummaryGrouping& g) {
  return std::string(sc::kSummary) + "/" + sc::kCorr + "/" + site_name(kAllSites[s]) + "/" + g.name;
}

void write_metric_stats(h5::File& f, const Partial& p, int64_t L, int64_t T) {
  for (int m = 0; m < kNumMetrics; ++m) {
    const std::string group = summary_metric_path(m) + "/";
    std::vector<int64_t> count(L * T), answer_count(L);
    std::vector<double> mean(L * T), spread(L * T), answer_mean(L), answer_std(L);
    for (int64_t i = 0; i < L * T; ++i) {
      const Moments& x = p.node[m * L * T + i];
      count[i] = static_cast<int64_t>(x.n);
      mean[i] = x.mean_or_nan();
      spread[i] = x.std_or_nan();
    }
    for (int64_t l = 0; l < L; ++l) {
      const Moments& x = p.answer[m * L + l];
      answer_count[l] = static_cast<int64_t>(x.n);
      answer_mean[l] = x.mean_or_nan();
      answer_std[l] = x.std_or_nan();
    }
    put(f, group + sc::kSummaryCount.name, sc::kSummaryCount.dims, {L, T}, &count);
    put(f, group + sc::kSummaryMean.name, sc::kSummaryMean.dims, {L, T}, &mean);
    put(f, group + sc::kSummaryStd.name, sc::kSummaryStd.dims, {L, T}, &spread);
    put(f, group + sc::kSummaryAnswerCount.name, sc::kSummaryAnswerCount.dims, {L}, &answer_count);
    put(f, group + sc::kSummaryAnswerMean.name, sc::kSummaryAnswerMean.dims, {L}, &answer_mean);
    put(f, group + sc::kSummaryAnswerStd.name, sc::kSummaryAnswerStd.dims, {L}, &answer_std);
  }
}

void write_correlations(h5::File& f, const Summary& summary) {
  for (int s = 0; s < kNumSites; ++s) {
    const std::array<const CorrTable*, 5> tables = {&summary.by_layer[s], &summary.by_position[s],
                                                    &summary.answer_layer[s], &summary.answer[s],
                                                    &summary.layer_means[s]};
    for (size_t g = 0; g < sc::kCorrGroupings.size(); ++g) {
      const auto& grouping = sc::kCorrGroupings[g];
      const CorrTable& table = *tables[g];
      const int64_t n = static_cast<int64_t>(table.count.size());
      const std::string group = corr_path(s, grouping) + "/";
      put(f, group + sc::kCorrCount, grouping.dims, {n}, &table.count);
      for (int p = 0; p < 2 * kNumPairs; ++p) {
        std::vector<double> r(n);
        for (int64_t i = 0; i < n; ++i)
          r[i] = p < kNumPairs ? table.r[i].pearson[p] : table.r[i].spearman[p - kNumPairs];
        put(f, group + sc::kCorrStats[p], grouping.dims, {n}, &r);
      }
      if (std::string(grouping.name) == sc::kCorrAnswerByLayer.name)  // the means behind layer_means
        for (int k = 0; k < 3; ++k) put(f, group + sc::kCorrMeans[k], grouping.dims, {n}, &summary.layer_mean[s][k]);
    }
  }
}

// Latent means and the top-k latents of one site, layer by layer (memory O(T·F)).
void write_latents(h5::File& f, Site site, const FileLayout& layout, int64_t topk) {
  const int64_t L = layout.n_layer, T = layout.n_tokens, F = layout.n_latents[static_cast<int>(site)];
  const auto count = f.open_dataset(sc::path(sc::kLatents, sc::kLatentCount)).read_all<int64_t>();  // (T)
  const h5::Dataset atp_sum = f.open_dataset(sc::path(sc::kLatents, site, sc::kAtpSum));
  const h5::Dataset ig_sum = f.open_dataset(sc::path(sc::kLatents, site, sc::kIgSum));
  const std::string group = std::string(sc::kSummary) + sc::kLatents + "/" + site_name(site) + "/";
  auto atp_mean =
      put<double>(f, group + sc::kSummaryLatentAtpMean.name, sc::kSummaryLatentAtpMean.dims, {L, T, F}, nullptr);
  auto ig_mean =
      put<double>(f, group + sc::kSummaryLatentIgMean.name, sc::kSummaryLatentIgMean.dims, {L, T, F}, nullptr);
  std::vector<int32_t> top_index(topk * L, -1);  // (topk, L)
  std::vector<double> top_atp(topk * L, kNan), top_ig(topk * L, kNan);
  for (int64_t l = 0; l < L; ++l) {
    auto a = atp_sum.read<double>({l, 0, 0}, {1, T, F});  // (T, F) -> means in place
    auto g = ig_sum.read<double>({l, 0, 0}, {1, T, F});
    for (int64_t t = 0; t < T; ++t)
      for (int64_t j = 0; j < F; ++j) {
        a[t * F + j] = count[t] > 0 ? a[t * F + j] / static_cast<double>(count[t]) : kNan;
        g[t * F + j] = count[t] > 0 ? g[t * F + j] / static_cast<double>(count[t]) : kNan;
      }
    atp_mean.write<double>({l, 0, 0}, {1, T, F}, a.data());
    ig_mean.write<double>({l, 0, 0}, {1, T, F}, g.data());
    // Score of latent j: sum over positions (in order, NaN skipped) of |mean AtP|; NaN if none finite.
    auto score = [&](const std::vector<double>& x, int64_t j) {
      double sum = 0;
      bool any = false;
      for (int64_t t = 0; t < T; ++t)
        if (std::isfinite(x[t * F + j])) {
          sum += std::fabs(x[t * F + j]);
          any = true;
        }
      return any ? sum : kNan;
    };
    std::vector<std::pair<double, int64_t>> ranked;  // (score, latent), finite scores only
    for (int64_t j = 0; j < F; ++j)
      if (const double sc_j = score(a, j); std::isfinite(sc_j)) ranked.emplace_back(sc_j, j);
    const int64_t k = std::min<int64_t>(topk, static_cast<int64_t>(ranked.size()));
    // Largest score first; equal scores by latent index (deterministic).
    std::partial_sort(ranked.begin(), ranked.begin() + k, ranked.end(), [](const auto& x, const auto& y) {
      return x.first != y.first ? x.first > y.first : x.second < y.second;
    });
    for (int64_t i = 0; i < k; ++i) {
      top_index[i * L + l] = static_cast<int32_t>(ranked[i].second);
      top_atp[i * L + l] = ranked[i].first;
      top_ig[i * L + l] = score(g, ranked[i].second);
    }
  }
  put(f, group + sc::kSummaryTopkIndex.name, sc::kSummaryTopkIndex.dims, {topk, L}, &top_index);
  put(f, group + sc::kSummaryTopkAtp.name, sc::kSummaryTopkAtp.dims, {topk, L}, &top_atp);
  put(f, group + sc::kSummaryTopkIg.name, sc::kSummaryTopkIg.dims, {topk, L}, &top_ig);
}

// ---- the CSV ----

std::string number(double x) {
  if (std::isnan(x)) return "nan";
  char text[40];
  std::snprintf(text, sizeof text, "%.17g", x);
  return text;
}

const char* kPairName[kNumPairs] = {"atp_vs_patch", "ig_vs_patch", "atp_vs_ig"};

}  // namespace

// Long format, one value per line (docs/results-schema.md "The CSV"). Written to <csv>.partial,
// then renamed: a CSV under its final name is complete.
void write_csv(const fs::path& csv, const Summary& summary, int64_t L) {
  const fs::path partial = csv.string() + ".partial";
  {
    std::ofstream out(partial);
    if (!out) throw LoadError(partial, "cannot be written");
    out << sc::kSummaryCsvColumns << "\n";
    auto row = [&](const std::string& site, const std::string& layer, const char* position, const std::string& quantity,
                   const std::string& statistic, double value, int64_t n) {
      out << site << "," << layer << "," << position << "," << quantity << "," << statistic << "," << number(value)
          << "," << n << "\n";
    };
    // Every metric at the answer position, per (site, layer).
    for (int m = 0; m < kNumMetrics; ++m) {
      const bool resid_post = m >= kNumSites * kNumErrorMetrics;
      const std::string site = resid_post ? "resid_post" : site_name(kAllSites[m / kNumErrorMetrics]);
      const std::string name = resid_post ? sc::kResidPostDatasets[m - kNumSites * kNumErrorMetrics].name
                                          : sc::kSummaryErrorMetrics[m % kNumErrorMetrics].name;
      for (int64_t l = 0; l < L; ++l) {
        const Moments& x = summary.moments.answer[m * L + l];
        row(site, std::to_string(l), "answer", name, "mean", x.mean_or_nan(), static_cast<int64_t>(x.n));
        row(site, std::to_string(l), "answer", name, "std", x.std_or_nan(), static_cast<int64_t>(x.n));
      }
    }
    // Correlations: per layer over all positions, per layer at the answer position, all layers at
    // the answer position, and across layers of the per-layer means.
    for (int s = 0; s < kNumSites; ++s) {
      const std::string site = site_name(kAllSites[s]);
      auto corr = [&](const CorrTable& t, int64_t i, const std::string& layer, const char* position,
                      const std::string& suffix) {
        for (int p = 0; p < kNumPairs; ++p)
          row(site, layer, position, kPairName[p], "pearson" + suffix, t.r[i].pearson[p], t.count[i]);
        for (int p = 0; p < kNumPairs; ++p)
          row(site, layer, position, kPairName[p], "spearman" + suffix, t.r[i].spearman[p], t.count[i]);
      };
      for (int64_t l = 0; l < L; ++l) corr(summary.by_layer[s], l, std::to_string(l), "all", "");
      for (int64_t l = 0; l < L; ++l) corr(summary.answer_layer[s], l, std::to_string(l), "answer", "");
      corr(summary.answer[s], 0, "all", "answer", "");
      corr(summary.layer_means[s], 0, "all", "answer", "_of_layer_means");
    }
    out.flush();
    if (!out) throw LoadError(partial, "write failed");
  }
  std::error_code ec;
  fs::rename(partial, csv, ec);
  if (ec) throw LoadError(csv, "cannot rename " + partial.string() + " to it: " + ec.message());
}

// Step 4, rank 0 only.
void write_summary(const fs::path& file, const FileLayout& layout, const Summary& summary,
                   const ReduceOptions& options) {
  const int64_t L = layout.n_layer, T = layout.n_tokens;
  h5::File f = h5::File::open_read_write(file);
  {
    h5::Group group = f.create_group(sc::kSummary);
    group.set_attribute(sc::kAttrNPairs, std::to_string(layout.n_pairs));
    group.set_attribute(sc::kAttrNLayer, std::to_string(L));
    group.set_attribute(sc::kAttrNTokens, std::to_string(T));
    group.set_attribute(sc::kAttrSummaryTopk, std::to_string(options.topk));
    group.set_attribute(sc::kAttrSummaryLeafRows, std::to_string(options.leaf_rows));
  }
  write_metric_stats(f, summary.moments, L, T);
  write_correlations(f, summary);
  for (Site site : kAllSites)
    if (layout.n_latents[static_cast<int>(site)] > 0) write_latents(f, site, layout, options.topk);
  f.close();
}

}  // namespace sfc::reduce::detail
