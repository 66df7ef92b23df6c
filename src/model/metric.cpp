// The logit-difference metric.
#include "sfc/model/metric.h"

#include <torch/torch.h>

namespace sfc::model {

torch::Tensor logit_diff(const torch::Tensor& answer_logits) {
  TORCH_CHECK(answer_logits.dim() == 2 && answer_logits.size(1) >= 2,
              "logit_diff: expected (B, A) with A >= 2 (clean answer + at least one patch answer), got ",
              answer_logits.sizes());
  auto patch = std::get<0>(answer_logits.slice(1, 1).max(1));  // (B) best patch answer
  return patch - answer_logits.select(1, 0);                     // (B)
}

torch::Tensor logit_diff(const Gemma2Impl& model, const torch::Tensor& h, const AnswerSpec& answers) {
  return logit_diff(model.answer_logits(h, answers.pos, answers.ids));
}

}  // namespace sfc::model
