// Batches and SAE sets for engine tests: the HF fixture's prompt pairs with its SAEs, and random
// SAEs for a random model.
#pragma once

#include <torch/torch.h>

#include "sfc/data/pairs.h"
#include "sfc/engines/engine_types.h"
#include "sfc/model/gemma2.h"
#include "sfc/sae/sae.h"
#include "support/reference.h"

namespace sfc::test {

// The fixture's three pairs (12 tokens each) as a batch.
inline data::PairBatch fixture_batch() {
  data::PairBatch batch;
  batch.clean_ids = ref("tokens_clean").to(torch::kInt64);
  batch.patch_ids = ref("tokens_patch").to(torch::kInt64);
  const int64_t B = batch.clean_ids.size(0), T = batch.clean_ids.size(1);
  batch.length = torch::full({B}, T, torch::kInt64);
  batch.valid = torch::ones({B, T}, torch::kBool);
  batch.answers = fixture_answers();
  return batch;
}

// The fixture's 12 SAEs (Gemma Scope layout), fp32.
inline engines::SaeSet fixture_saes(const model::Gemma2Config& config) {
  engines::SaeSet set;
  sae::SaeLocator locator(tiny_dir() / "saes");
  for (Site site : kAllSites)
    for (int64_t l = 0; l < config.n_layer; ++l)
      set.sae[static_cast<int>(site)].push_back(sae::load_sae(locator.locate(site, l), config.site_width(site)));
  return set;
}

// The same SAEs with every tensor cast to `dtype`: fp64 for exact arithmetic in tests, bf16 for the
// arithmetic the engines did before issue #15 (SAEs held in a bf16 model's dtype).
inline engines::SaeSet saes_as(const engines::SaeSet& saes, torch::Dtype dtype) {
  engines::SaeSet out = saes;
  for (auto& per_site : out.sae)
    for (auto& s : per_site) {
      if (!s.W_enc.defined()) continue;
      for (auto* t : {&s.W_enc, &s.W_dec, &s.b_enc, &s.b_dec, &s.threshold}) *t = t->to(dtype);
    }
  return out;
}

// Random JumpReLU SAEs at every site (F latents), with thresholds that gate a good share of latents.
inline engines::SaeSet random_saes(const model::Gemma2Config& config, int64_t n_latent, uint64_t seed,
                                   torch::Dtype dtype = torch::kFloat64) {
  torch::manual_seed(seed);
  engines::SaeSet set;
  for (Site site : kAllSites)
    for (int64_t l = 0; l < config.n_layer; ++l) {
      const int64_t W = config.site_width(site);
      sae::JumpReluSae s;
      s.W_enc = torch::randn({W, n_latent}, dtype) / std::sqrt(double(W));
      s.W_dec = torch::randn({n_latent, W}, dtype) / std::sqrt(double(n_latent));
      s.b_enc = 0.1 * torch::randn({n_latent}, dtype);
      s.b_dec = 0.1 * torch::randn({W}, dtype);
      s.threshold = 0.3 * torch::rand({n_latent}, dtype);
      set.sae[static_cast<int>(site)].push_back(s);
    }
  return set;
}

// A batch of `lengths.size()` random pairs, right-padded to the longest; each patch prompt differs
// from its clean prompt at position `diff_at` and later ones, so earlier positions have Δ = 0.
inline data::PairBatch random_batch(const model::Gemma2Config& config, const std::vector<int64_t>& lengths,
                                    int64_t diff_at, uint64_t seed) {
  torch::manual_seed(seed);
  const int64_t B = lengths.size();
  const int64_t T = *std::max_element(lengths.begin(), lengths.end());
  data::PairBatch batch;
  batch.clean_ids = torch::randint(3, config.vocab_size, {B, T}, torch::kInt64);
  batch.clean_ids.select(1, 0).fill_(config.bos_id);
  batch.patch_ids = batch.clean_ids.clone();
  auto changed = (batch.clean_ids.select(1, diff_at) - 3 + 1) % (config.vocab_size - 3) + 3;  // always differs
  batch.patch_ids.select(1, diff_at).copy_(changed);
  batch.length = torch::tensor(lengths, torch::kInt64);
  batch.valid = torch::arange(T).unsqueeze(0) < batch.length.unsqueeze(1);
  batch.clean_ids.masked_fill_(~batch.valid, config.pad_id);
  batch.patch_ids.masked_fill_(~batch.valid, config.pad_id);
  batch.answers = {batch.length - 1, torch::randint(3, config.vocab_size, {B, 3}, torch::kInt64)};
  return batch;
}

}  // namespace sfc::test
