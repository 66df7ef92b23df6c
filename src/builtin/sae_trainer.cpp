// Trains the built-in model's JumpReLU SAEs on its own activations and writes them as a Gemma Scope
// release tree. Method: a ReLU SAE (L1 on latents weighted by decoder row norms + reconstruction MSE,
// Adam), whose thresholds are set afterwards. Not a general SAE trainer: no resampling, no schedules.
#include "sfc/builtin/sae_trainer.h"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <fstream>

#include <nlohmann/json.hpp>

#include "sfc/core/error.h"
#include "sfc/core/shapes.h"
#include "sfc/io/npz_writer.h"

namespace sfc::builtin {
namespace {

namespace fs = std::filesystem;

constexpr int64_t kForwardRows = 32;      // sequences per forward in collect_activations
constexpr int64_t kMeasureRows = 8192;    // activation rows per chunk when measuring
constexpr double kFvuEma = 0.95;          // smoothing of the per-batch FVU the l1 controller reads
constexpr double kL1Gain = 0.02;          // log-step of the l1 controller per unit relative FVU error
// l1 adapts between these fractions of training: not while the SAE still fits the data (its FVU
// then says nothing about l1), and not at the end, so training converges with a fixed l1.
constexpr double kAdaptFrom = 0.2, kAdaptTo = 0.7;

// FVU and L0 of `sae` on x (rows, W), accumulated in fp64 over chunks.
std::pair<double, double> fvu_l0(const sae::JumpReluSae& sae, const torch::Tensor& x) {
  torch::NoGradGuard no_grad;
  const int64_t N = x.size(0);
  if (N == 0) throw Error("measure_sae: no activation rows");
  const torch::Tensor mean = x.to(torch::kFloat64).mean(0);  // (W)
  double sse = 0, sst = 0, active = 0;
  for (int64_t i = 0; i < N; i += kMeasureRows) {
    const torch::Tensor xc = x.slice(0, i, std::min(N, i + kMeasureRows));  // (n, W)
    const torch::Tensor f = sae.encode(xc);                                  // (n, F)
    const torch::Tensor err = (xc - sae.decode(f)).to(torch::kFloat64);      // (n, W)
    sse += err.square().sum().item<double>();
    sst += (xc.to(torch::kFloat64) - mean).square().sum().item<double>();
    active += (f > 0).sum().item<double>();
  }
  return {sst > 0 ? sse / sst : 0.0, active / static_cast<double>(N)};
}

// Parameters of one SAE while training, in the normalised activation space xn = x · scale.
struct Params {
  torch::Tensor W_enc;  // (W, F)
  torch::Tensor W_dec;  // (F, W), rows kept at unit norm
  torch::Tensor b_enc;  // (F)
  torch::Tensor b_dec;  // (W)
};

// ReLU SAE on xn (rows, W), then the JumpReLU thresholds; returns the SAE folded back to x's scale.
sae::JumpReluSae train_one(const torch::Tensor& x, const SaeTrainOptions& options, uint64_t seed) {
  const int64_t N = x.size(0), W = x.size(1), F = options.width;
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  const auto f32 = torch::TensorOptions().dtype(torch::kFloat32);

  // Normalise so that E|xn − mean|² = W: one l1 fits every site, whatever its scale.
  const torch::Tensor mean = x.mean(0);                                         // (W)
  const double var = (x - mean).square().sum(1).mean().item<double>();
  const double scale = var > 0 ? std::sqrt(static_cast<double>(W) / var) : 1.0;
  const torch::Tensor xn = x * scale;                                           // (rows, W)

  Params p;
  {
    torch::NoGradGuard no_grad;
    torch::Tensor dec = torch::randn({F, W}, gen, f32);
    dec = dec / dec.norm(2, 1, true);
    p.W_dec = dec.clone().requires_grad_(true);               // (F, W)
    p.W_enc = dec.t().contiguous().requires_grad_(true);      // (W, F)
    p.b_enc = torch::zeros({F}, f32).requires_grad_(true);    // (F)
    p.b_dec = (mean * scale).clone().requires_grad_(true);    // (W)
  }
  torch::optim::Adam adam({p.W_enc, p.W_dec, p.b_enc, p.b_dec}, torch::optim::AdamOptions(options.lr));

  const int64_t B = std::min(options.batch_rows, N);
  torch::Tensor order = torch::randperm(N, gen, torch::TensorOptions().dtype(torch::kInt64));  // (rows)
  int64_t cursor = 0;
  double l1 = options.l1, fvu_ema = -1;
  const auto adapt_from = static_cast<int64_t>(kAdaptFrom * static_cast<double>(options.steps));
  const auto adapt_to = static_cast<int64_t>(kAdaptTo * static_cast<double>(options.steps));
  for (int64_t step = 0; step < options.steps; ++step) {
    if (cursor + B > N) {  // a new epoch: a new seeded permutation
      order = torch::randperm(N, gen, torch::TensorOptions().dtype(torch::kInt64));
      cursor = 0;
    }
    const torch::Tensor xb = xn.index_select(0, order.slice(0, cursor, cursor + B));  // (B, W)
    cursor += B;

    const torch::Tensor f = torch::relu(torch::matmul(xb, p.W_enc) + p.b_enc);  // (B, F)
    const torch::Tensor xhat = torch::matmul(f, p.W_dec) + p.b_dec;             // (B, W)
    const torch::Tensor sse = (xb - xhat).square().sum(1).mean();
    const torch::Tensor sparsity = (f * p.W_dec.norm(2, 1)).sum(1).mean();
    const torch::Tensor loss = sse + l1 * sparsity;
    adam.zero_grad();
    loss.backward();
    adam.step();
    {
      torch::NoGradGuard no_grad;
      p.W_dec.div_(p.W_dec.norm(2, 1, true).clamp_min(1e-8));
    }

    // Steer l1 towards the target FVU (before thresholds), then hold it so training converges.
    if (options.target_fvu > 0 && step >= adapt_from && step < adapt_to) {
      const double fvu_b = sse.item<double>() / static_cast<double>(W);  // E|xn − mean|² = W
      fvu_ema = fvu_ema < 0 ? fvu_b : kFvuEma * fvu_ema + (1 - kFvuEma) * fvu_b;
      l1 *= std::exp(kL1Gain * std::clamp((options.target_fvu - fvu_ema) / options.target_fvu, -1.0, 1.0));
    }
  }

  // Fold the normalisation back: pre = xn·W_enc + b_enc = x·(scale·W_enc) + b_enc, x̂ = x̂n / scale.
  sae::JumpReluSae sae;
  torch::NoGradGuard no_grad;
  sae.W_enc = (p.W_enc.detach() * scale).contiguous();  // (W, F)
  sae.W_dec = (p.W_dec.detach() / scale).contiguous();  // (F, W)
  sae.b_enc = p.b_enc.detach().clone();                  // (F)
  sae.b_dec = (p.b_dec.detach() / scale).contiguous();  // (W)

  // Thresholds: a fixed fraction of each latent's mean positive pre-activation, so the gate drops
  // the weakest firings as a JumpReLU does; a latent that never fires keeps threshold 0.
  torch::Tensor pos_sum = torch::zeros({F}, torch::kFloat64), pos_count = torch::zeros({F}, torch::kFloat64);
  for (int64_t i = 0; i < N; i += kMeasureRows) {
    const torch::Tensor pre = torch::matmul(x.slice(0, i, std::min(N, i + kMeasureRows)), sae.W_enc) + sae.b_enc;  // (n, F)
    pos_sum += torch::relu(pre).sum(0).to(torch::kFloat64);
    pos_count += (pre > 0).sum(0).to(torch::kFloat64);
  }
  sae.threshold = (options.threshold_fraction * pos_sum / pos_count.clamp_min(1)).to(torch::kFloat32);  // (F)
  return sae;
}

std::string l0_folder(double l0) { return "average_l0_" + std::to_string(std::llround(l0)); }

}  // namespace

std::vector<torch::Tensor> collect_activations(const model::Gemma2Impl& model, const torch::Tensor& tokens,
                                               const torch::Tensor& valid) {
  if (tokens.dim() != 2 || valid.sizes() != tokens.sizes())
    throw Error("collect_activations: tokens " + shape_str(tokens.sizes().vec()) + " and valid " +
                shape_str(valid.sizes().vec()) + " should both be (S, T)");
  const model::Gemma2Config& config = model.config();
  const int64_t L = config.n_layer, S = tokens.size(0);
  torch::NoGradGuard no_grad;
  // Position 0 (BOS) is an outlier of huge norm in every site; Gemma Scope leaves it out too.
  torch::Tensor keep = valid.to(torch::kBool).clone();  // (N, T)
  keep.select(1, 0).fill_(false);

  std::vector<std::vector<torch::Tensor>> parts(static_cast<size_t>(L * kNumSites));
  for (int64_t r = 0; r < S; r += kForwardRows) {
    const int64_t end = std::min(S, r + kForwardRows);
    const torch::Tensor tok = tokens.slice(0, r, end).to(model.device(), torch::kInt64);  // (B, T)
    const torch::Tensor mask = keep.slice(0, r, end).to(model.device());                  // (B, T)
    model::SiteCalls sites(L);
    sites.record_all();
    model.forward(tok, &sites, nullptr);
    for (int64_t l = 0; l < L; ++l)
      for (Site site : kAllSites) {
        const torch::Tensor a = sites.recorded(site, l);  // (B, T, W)
        if (a.size(-1) != config.site_width(site))
          throw Error(std::string("collect_activations: site ") + site_name(site) + " has width " +
                      std::to_string(a.size(-1)) + ", config says " + std::to_string(config.site_width(site)));
        parts[static_cast<size_t>(l * kNumSites + static_cast<int>(site))].push_back(
            a.index({mask}).to(torch::kCPU, torch::kFloat32));  // (rows, W)
      }
  }
  std::vector<torch::Tensor> out;
  out.reserve(parts.size());
  for (auto& p : parts) out.push_back(torch::cat(p, 0).contiguous());  // (rows, W)
  return out;
}

SaeQuality measure_sae(const sae::JumpReluSae& sae, const torch::Tensor& activations, Site site, int64_t layer) {
  if (activations.dim() != 2 || activations.size(1) != sae.d_in())
    throw Error("measure_sae: activations " + shape_str(activations.sizes().vec()) + " should be (rows, " +
                std::to_string(sae.d_in()) + ")");
  const auto [fvu, l0] = fvu_l0(sae, activations.to(torch::kFloat32));
  SaeQuality q;
  q.site = site;
  q.layer = layer;
  q.width = sae.d_sae();
  q.fvu = fvu;
  q.l0 = l0;
  return q;
}

std::vector<SaeQuality> train_saes(const model::Gemma2Impl& model, const std::vector<torch::Tensor>& activations,
                                   const fs::path& out_dir, const SaeTrainOptions& options) {
  const model::Gemma2Config& config = model.config();
  const int64_t L = config.n_layer;
  if (static_cast<int64_t>(activations.size()) != L * kNumSites)
    throw Error("train_saes: " + std::to_string(activations.size()) + " activation sets, expected " +
                std::to_string(L * kNumSites) + " (layers × sites, from collect_activations)");
  if (options.width <= 0 || options.steps < 0 || options.batch_rows <= 0)
    throw ConfigError("train_saes: width, steps and batch_rows must be positive");

  const std::string width_name = "width_" + std::to_string(options.width);
  nlohmann::json canonical = nlohmann::json::object();
  std::vector<SaeQuality> out;
  for (Site site : kAllSites) {
    const std::string release_folder = options.release + "-" + gemma_scope_suffix(site);
    for (int64_t l = 0; l < L; ++l) {
      const int64_t index = l * kNumSites + static_cast<int>(site);
      const torch::Tensor& x = activations[static_cast<size_t>(index)];  // (rows, W)
      if (x.dim() != 2 || x.size(1) != config.site_width(site) || x.size(0) == 0)
        throw Error(std::string("train_saes: activations of ") + site_name(site) + " layer " + std::to_string(l) +
                    " are " + shape_str(x.sizes().vec()) + ", expected (rows > 0, " +
                    std::to_string(config.site_width(site)) + ")");
      const torch::Tensor xf = x.to(torch::kCPU, torch::kFloat32).contiguous();
      sae::JumpReluSae sae = train_one(xf, options, options.seed * 1000003u + static_cast<uint64_t>(index));
      SaeQuality q = measure_sae(sae, xf, site, l);

      // One SAE per layer and width: an older run's L0 folder would make the choice ambiguous.
      const fs::path width_dir = out_dir / release_folder / ("layer_" + std::to_string(l)) / width_name;
      fs::remove_all(width_dir);
      const fs::path leaf = width_dir / l0_folder(q.l0);
      fs::create_directories(leaf);
      io::write_npz(leaf / "params.npz", {{"W_enc", sae.W_enc},
                                          {"W_dec", sae.W_dec},
                                          {"b_enc", sae.b_enc},
                                          {"b_dec", sae.b_dec},
                                          {"threshold", sae.threshold}});
      const std::string key = "layer_" + std::to_string(l) + "/" + width_name;
      canonical[release_folder + "-canonical"][key + "/canonical"] = key + "/" + l0_folder(q.l0);
      out.push_back(q);
    }
  }
  const fs::path canonical_file = out_dir / "canonical.json";
  std::ofstream json_out(canonical_file);
  json_out << canonical.dump(2) << '\n';
  if (!json_out) throw LoadError(canonical_file, "cannot write");
  return out;
}

}  // namespace sfc::builtin
