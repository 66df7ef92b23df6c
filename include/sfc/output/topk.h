// Top-k latent selection by magnitude, as the results file stores it (atp_topk_index / _value).
#pragma once

#include <torch/types.h>

#include <cstdint>

namespace sfc::output {

struct TopK {
  torch::Tensor index;  // (..., k) int32: latent index, −1 in an absent slot
  torch::Tensor value;  // (..., k) float32: x at that index, NaN in an absent slot
};

// x (..., F) float32 -> the k entries of largest |x| along the last dimension, largest first. NaN
// ranks below every number and a slot holding NaN is absent, as are the slots past F when k > F.
// Equal |x| are ordered as torch::topk orders them: deterministic for a given input and LibTorch,
// but by no simpler rule (not by index), so which of several tied entries make the cut is its choice.
TopK topk_by_abs(const torch::Tensor& x, int64_t k);

}  // namespace sfc::output
