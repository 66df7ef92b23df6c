#include "sfc/output/topk.h"

#include <torch/torch.h>

#include <algorithm>
#include <limits>

namespace sfc::output {

namespace {
constexpr double kNan = std::numeric_limits<double>::quiet_NaN();
}  // namespace

TopK topk_by_abs(const torch::Tensor& x, int64_t k) {
  const int64_t F = x.size(-1), kk = std::min(k, F);
  const auto key = x.abs().masked_fill(torch::isnan(x), -1.0);  // (..., F): NaN below every |x|
  const auto top = key.topk(kk, -1, /*largest=*/true, /*sorted=*/true);
  const auto absent = std::get<0>(top) < 0;  // (..., kk): slots holding NaN
  auto shape = x.sizes().vec();
  shape.back() = k;
  TopK out{torch::full(shape, -1, torch::kInt), torch::full(shape, kNan, torch::kFloat)};
  out.index.narrow(-1, 0, kk).copy_(std::get<1>(top).to(torch::kInt).masked_fill(absent, -1));
  out.value.narrow(-1, 0, kk).copy_(x.gather(-1, std::get<1>(top)).masked_fill(absent, kNan));
  return out;
}

}  // namespace sfc::output
