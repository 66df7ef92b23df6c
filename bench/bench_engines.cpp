// Wall time of the fast vs slow paths of exact error patching and IG on a small random Gemma-2
// (not a test: prints a table, checks nothing beyond reporting max |fast − slow|).
//
//   bench_engines [--pairs 64] [--batch 16] [--layers 8] [--d-model 256] [--latents 1024]
//                 [--tokens 10] [--ig-steps 10] [--threads 1] [--max-rows 64]
//                 [--slow-pairs 8] [--slow-ig-pairs N] [--quick]
//
// The fast paths (run_patch, run_ig) run on every pair, batch by batch. The slow patching path
// runs one full forward per node and pair, so it is timed on the first --slow-pairs pairs only and
// compared per pair. Slow IG is timed twice: with one pair per forward (one intervention per pass,
// like slow patching: docs/design.md §2's slow path) on the same --slow-pairs pairs, and with a whole
// batch of pairs per forward on the first --slow-ig-pairs pairs (default: all), a stronger baseline.
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "sfc/core/cpu_blas.h"
#include "sfc/core/site.h"
#include "sfc/engines/engines.h"
#include "sfc/model/config.h"
#include "support/engine_fixture.h"
#include "support/random_model.h"

namespace {

using sfc::engines::BatchCache;
using sfc::engines::BatchResult;
using sfc::engines::EngineOptions;
using sfc::engines::SaeSet;

struct Args {
  int64_t pairs = 64, batch = 16, layers = 8, d_model = 256, latents = 1024, tokens = 10;
  int64_t ig_steps = 10, threads = 1, max_rows = 64, slow_pairs = 8, slow_ig_pairs = -1;  // −1 = all
  bool quick = false;
};

[[noreturn]] void usage(const char* msg) {
  std::fprintf(stderr,
               "%s\nusage: bench_engines [--pairs N] [--batch N] [--layers N] [--d-model N] [--latents N]\n"
               "                     [--tokens N] [--ig-steps N] [--threads N] [--max-rows N]\n"
               "                     [--slow-pairs N] [--slow-ig-pairs N] [--quick]\n",
               msg);
  std::exit(2);
}

Args parse(int argc, char** argv) {
  Args a;
  bool pairs_given = false, slow_given = false;
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    if (flag == "--quick") { a.quick = true; continue; }
    if (flag == "--help" || flag == "-h") usage("bench_engines: fast vs slow patching and IG");
    if (i + 1 >= argc) usage(("missing value after " + flag).c_str());
    char* end = nullptr;
    const long long v = std::strtoll(argv[++i], &end, 10);
    if (*end != '\0' || v < 1) usage(("bad value for " + flag + ": " + argv[i]).c_str());
    if (flag == "--pairs") { a.pairs = v; pairs_given = true; }
    else if (flag == "--batch") a.batch = v;
    else if (flag == "--layers") a.layers = v;
    else if (flag == "--d-model") a.d_model = v;
    else if (flag == "--latents") a.latents = v;
    else if (flag == "--tokens") a.tokens = v;
    else if (flag == "--ig-steps") a.ig_steps = v;
    else if (flag == "--threads") a.threads = v;
    else if (flag == "--max-rows") a.max_rows = v;
    else if (flag == "--slow-pairs") { a.slow_pairs = v; slow_given = true; }
    else if (flag == "--slow-ig-pairs") a.slow_ig_pairs = v;
    else usage(("unknown flag " + flag).c_str());
  }
  if (a.quick) {  // a smoke run: a few pairs, two batches
    if (!pairs_given) a.pairs = 8;
    a.batch = std::min(a.batch, std::max<int64_t>(1, a.pairs / 2));
    if (!slow_given) a.slow_pairs = 2;
  }
  if (a.tokens < 2) usage("--tokens must be at least 2");
  a.batch = std::min(a.batch, a.pairs);
  a.slow_pairs = std::min(a.slow_pairs, a.batch);  // slow patching runs on part of the first batch
  a.slow_ig_pairs = a.slow_ig_pairs < 0 ? a.pairs : std::min(a.slow_ig_pairs, a.pairs);
  return a;
}

double now_s() {
  using clock = std::chrono::steady_clock;
  return std::chrono::duration<double>(clock::now().time_since_epoch()).count();
}

// Rows [first, first + n) of a batch.
sfc::data::PairBatch rows(const sfc::data::PairBatch& b, int64_t first, int64_t n) {
  sfc::data::PairBatch out = b;
  out.clean_ids = b.clean_ids.slice(0, first, first + n);
  out.patch_ids = b.patch_ids.slice(0, first, first + n);
  out.length = b.length.slice(0, first, first + n);
  out.valid = b.valid.slice(0, first, first + n);
  out.answers = {b.answers.pos.slice(0, first, first + n), b.answers.ids.slice(0, first, first + n)};
  return out;
}

sfc::data::PairBatch head(const sfc::data::PairBatch& b, int64_t n) { return rows(b, 0, n); }

// max |a − b| over entries where both are computed (NaN = not computed); NaN masks must agree.
double max_abs_diff(const torch::Tensor& a, const torch::Tensor& b) {
  if (!a.defined() || !b.defined()) return NAN;
  if (!torch::equal(a.isnan(), b.isnan())) return INFINITY;
  return (a.to(torch::kFloat64) - b.to(torch::kFloat64)).nan_to_num(0.0).abs().max().item<double>();
}

double max_abs(const torch::Tensor& a) {
  return a.to(torch::kFloat64).nan_to_num(0.0).abs().max().item<double>();
}

// Multiply-adds of the matmuls that IG does per pair, over all sites and layers, as each path runs
// them: the slow path a full forward and a backward down to the site per step; the fast path, per
// step but α = 0, a forward and backward from right after the site over the positions from the first
// changed one on, the last layer only at the answer (its keys and values at all those positions).
// A backward costs what its forward does (weights need no gradient). With matmuls the whole cost
// (sgemm is ~70-90% of a profile), the measured ratio comes out near slow / fast of this; only doing
// less arithmetic moves it (the slow path's smaller matmuls run less efficiently, so it can come out above).
struct IgWork {
  double slow = 0, fast = 0;
};

IgWork ig_matmul_work(const sfc::model::Gemma2Config& c, int64_t T, int64_t first_changed, int64_t steps) {
  const double d = double(c.d_model), hd = double(c.head_dim);
  const double kv = 2 * d * double(c.n_head_kv) * hd, qo = 2 * d * double(c.n_head) * hd;
  const double mlp = 3 * d * double(c.d_mlp), attn = 2 * double(c.n_head) * hd * double(T);  // scores, mix
  const double token = kv + qo + mlp + attn;  // one layer, one position
  const double Tn = double(T - first_changed), L = double(c.n_layer);
  const double last_layer_fast = Tn * kv + (qo + mlp + attn);  // answer position only, but its keys/values
  IgWork w;
  for (int site = 0; site < sfc::kNumSites; ++site) {
    const bool attn_site = site == static_cast<int>(sfc::Site::kAttn);  // the layer's MLP is still to run
    for (int64_t l = 0; l < c.n_layer; ++l) {
      const bool last = l + 1 == c.n_layer;
      double after_slow = attn_site ? double(T) * mlp : 0;
      double after_fast = attn_site ? (last ? mlp : Tn * mlp) : 0;
      for (int64_t k = l + 1; k < c.n_layer; ++k) {
        after_slow += double(T) * token;
        after_fast += k + 1 == c.n_layer ? last_layer_fast : Tn * token;
      }
      w.slow += double(steps) * (L * double(T) * token + after_slow);
      w.fast += double(steps - 1) * 2 * after_fast;
    }
  }
  return w;
}

}  // namespace

int main(int argc, char** argv) {
  const Args a = parse(argc, argv);
  torch::set_num_threads(static_cast<int>(a.threads));

  auto config = sfc::test::tiny_random_config();
  config.n_layer = a.layers;
  config.d_model = a.d_model;
  config.n_head = 4;
  config.n_head_kv = 2;
  config.head_dim = 64;
  config.query_pre_attn_scalar = 64;
  config.d_mlp = 4 * a.d_model;
  config.vocab_size = 512;
  config.sliding_window = 4;
  const auto model = sfc::test::random_gemma2(config, 1, torch::kFloat32);
  const SaeSet saes = sfc::test::random_saes(config, a.latents, 2, torch::kFloat32);
  const int64_t diff_at = std::min<int64_t>(3, a.tokens - 1);  // positions before it have Δ = 0

  std::vector<sfc::data::PairBatch> batches;
  for (int64_t first = 0; first < a.pairs; first += a.batch) {
    const int64_t n = std::min(a.batch, a.pairs - first);
    batches.push_back(sfc::test::random_batch(config, std::vector<int64_t>(n, a.tokens), diff_at, 100 + first));
  }

  EngineOptions options;  // all sites, all layers, per-position and global patching, latent IG
  options.ig_steps = a.ig_steps;
  options.max_rows = a.max_rows;
  const int64_t L = config.n_layer, T = a.tokens;
  const int64_t nodes_per_pair = sfc::kNumSites * L * (T + 1);  // per-position + global

  std::printf("bench_engines: random Gemma-2, %lld layers, d_model %lld, d_mlp %lld, heads %lld/%lld x %lld, "
              "vocab %lld, fp32\n",
              (long long)L, (long long)config.d_model, (long long)config.d_mlp, (long long)config.n_head,
              (long long)config.n_head_kv, (long long)config.head_dim, (long long)config.vocab_size);
  std::printf("  3 sites x %lld layers of %lld latents; %lld pairs of %lld tokens (clean/patch differ from "
              "position %lld on), batch %lld\n",
              (long long)L, (long long)a.latents, (long long)a.pairs, (long long)T, (long long)diff_at,
              (long long)a.batch);
  std::printf("  ig_steps %lld, max_rows %lld, torch threads %d, CPU BLAS: %s\n\n", (long long)a.ig_steps,
              (long long)a.max_rows, torch::get_num_threads(), sfc::detect_cpu_blas().describe().c_str());

  // Warm-up (allocator, first-call costs), not timed.
  { auto warm = sfc::engines::run_clean_and_patch(*model, head(batches[0], 1), saes, options); }

  // --- fast paths on every pair, batch by batch
  double t_cache = 0, t_patch = 0, t_ig = 0;
  std::vector<BatchCache> caches;
  std::vector<BatchResult> fast;
  for (const auto& batch : batches) {
    double t0 = now_s();
    caches.push_back(sfc::engines::run_clean_and_patch(*model, batch, saes, options));
    double t1 = now_s();
    fast.push_back(sfc::engines::empty_result(batch.size(), L, T, saes, options));
    sfc::engines::run_patch(*model, batch, saes, options, caches.back(), fast.back());
    double t2 = now_s();
    sfc::engines::run_ig(*model, batch, saes, options, caches.back(), fast.back());
    double t3 = now_s();
    t_cache += t1 - t0;
    t_patch += t2 - t1;
    t_ig += t3 - t2;
  }

  // --- slow patching on the first slow_pairs pairs (part of the first batch)
  const auto slow_batch = head(batches[0], a.slow_pairs);
  const auto slow_cache = sfc::engines::run_clean_and_patch(*model, slow_batch, saes, options);
  auto slow_patch = sfc::engines::empty_result(slow_batch.size(), L, T, saes, options);
  double t0 = now_s();
  sfc::engines::run_patch_slow(*model, slow_batch, saes, options, slow_cache, slow_patch);
  const double t_patch_slow = now_s() - t0;

  // --- slow IG on the first slow_ig_pairs pairs, batch by batch
  double t_ig_slow = 0, ig_diff = 0, ig_latent_diff = 0, ig_scale = 0;
  int64_t ig_slow_done = 0;
  for (size_t i = 0; i < batches.size() && ig_slow_done < a.slow_ig_pairs; ++i) {
    const int64_t n = std::min(batches[i].size(), a.slow_ig_pairs - ig_slow_done);
    const bool whole = n == batches[i].size();
    const auto batch = whole ? batches[i] : head(batches[i], n);
    const auto cache = whole ? caches[i] : sfc::engines::run_clean_and_patch(*model, batch, saes, options);
    auto slow = sfc::engines::empty_result(n, L, T, saes, options);
    t0 = now_s();
    sfc::engines::run_ig_slow(*model, batch, saes, options, cache, slow);
    t_ig_slow += now_s() - t0;
    ig_slow_done += n;
    for (int s = 0; s < sfc::kNumSites; ++s) {
      ig_diff = std::max(ig_diff, max_abs_diff(fast[i].error[s].ig.slice(0, 0, n), slow.error[s].ig));
      ig_latent_diff =
          std::max(ig_latent_diff, max_abs_diff(fast[i].latents[s].ig.slice(0, 0, n), slow.latents[s].ig));
      ig_scale = std::max(ig_scale, max_abs(slow.error[s].ig));
    }
  }

  // --- slow IG with one pair per forward (one intervention per pass, as slow patching runs) on the
  // same first slow_pairs pairs
  double t_ig_slow_single = 0;
  for (int64_t b = 0; b < a.slow_pairs; ++b) {
    const auto pair = rows(batches[0], b, 1);
    const auto cache = sfc::engines::run_clean_and_patch(*model, pair, saes, options);
    auto slow = sfc::engines::empty_result(1, L, T, saes, options);
    t0 = now_s();
    sfc::engines::run_ig_slow(*model, pair, saes, options, cache, slow);
    t_ig_slow_single += now_s() - t0;
    for (int s = 0; s < sfc::kNumSites; ++s)
      ig_diff = std::max(ig_diff, max_abs_diff(fast[0].error[s].ig.slice(0, b, b + 1), slow.error[s].ig));
  }

  double patch_diff = 0, patch_global_diff = 0, patch_scale = 0;
  for (int s = 0; s < sfc::kNumSites; ++s) {
    const auto& f = fast[0].error[s];
    const auto& sl = slow_patch.error[s];
    patch_diff = std::max(patch_diff, max_abs_diff(f.patch_effect.slice(0, 0, a.slow_pairs), sl.patch_effect));
    patch_global_diff = std::max(
        patch_global_diff, max_abs_diff(f.patch_effect_global.slice(0, 0, a.slow_pairs), sl.patch_effect_global));
    patch_scale = std::max(patch_scale, max_abs(sl.patch_effect));
  }

  // --- the table
  const double P = double(a.pairs);
  const double fast_patch_pp = t_patch / P, slow_patch_pp = t_patch_slow / double(a.slow_pairs);
  const double fast_ig_pp = t_ig / P, slow_ig_pp = t_ig_slow / double(ig_slow_done);
  const double slow_ig_single_pp = t_ig_slow_single / double(a.slow_pairs);
  std::printf("%-22s %8s %10s %12s %10s\n", "stage", "pairs", "wall [s]", "ms / pair", "pairs/s");
  auto row = [](const char* name, double pairs, double wall) {
    std::printf("%-22s %8.0f %10.3f %12.2f %10.2f\n", name, pairs, wall, 1e3 * wall / pairs, pairs / wall);
  };
  row("clean+patch cache", P, t_cache);
  row("patching fast", P, t_patch);
  row("patching slow", double(a.slow_pairs), t_patch_slow);
  row("IG fast", P, t_ig);
  row("IG slow, 1 pair/pass", double(a.slow_pairs), t_ig_slow_single);
  row("IG slow, batch/pass", double(ig_slow_done), t_ig_slow);
  std::printf("\n");
  std::printf("patching: slow/fast per pair = %.1fx  (%lld error nodes per pair: 3 sites x %lld layers x "
              "(%lld positions + global); slow timed on %lld of %lld pairs)\n",
              slow_patch_pp / fast_patch_pp, (long long)nodes_per_pair, (long long)L, (long long)T,
              (long long)a.slow_pairs, (long long)a.pairs);
  std::printf("IG:       slow/fast per pair = %.1fx  (%lld steps; slow with one pair per forward, as slow "
              "patching runs, timed on %lld of %lld pairs)\n",
              slow_ig_single_pp / fast_ig_pp, (long long)a.ig_steps, (long long)a.slow_pairs, (long long)a.pairs);
  std::printf("          slow/fast per pair = %.1fx  (slow with the batch of %lld pairs in each forward, timed on "
              "%lld of %lld pairs)\n",
              slow_ig_pp / fast_ig_pp, (long long)a.batch, (long long)ig_slow_done, (long long)a.pairs);
  const IgWork work = ig_matmul_work(config, T, diff_at, a.ig_steps);
  std::printf("          slow/fast matmul multiply-adds = %.1fx  (counted from the shapes, the same for both slow "
              "variants: the ratio if every path ran its matmuls equally fast)\n",
              work.slow / work.fast);
  std::printf("\nfast vs slow agreement (max |fast - slow|, fp32):\n");
  std::printf("  patch_effect         %.3g   (max |effect| %.3g)\n", patch_diff, patch_scale);
  std::printf("  patch_effect_global  %.3g\n", patch_global_diff);
  std::printf("  ig (error nodes)     %.3g   (max |ig| %.3g)\n", ig_diff, ig_scale);
  std::printf("  ig (latents)         %.3g\n", ig_latent_diff);
  return 0;
}
