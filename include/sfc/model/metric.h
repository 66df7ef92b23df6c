// The task metric (docs/design.md §1): LD = logit(patch answer) − logit(clean answer) at the answer
// position, with the max over several patch answers. Only the A answer columns are computed.
#pragma once

#include <torch/types.h>

#include "sfc/model/gemma2.h"

namespace sfc::model {

// Where and what to read for the metric, per prompt of a batch.
struct AnswerSpec {
  torch::Tensor pos;  // (B) int64: answer position (last real token)
  torch::Tensor ids;  // (B, A) int64: column 0 the clean answer, columns 1.. the patch answers; a prompt
                      // with fewer patch answers repeats one of them (the max is unchanged)
};

// LD per prompt (B) from the answer logits (B, A) that Gemma2Impl::answer_logits returns.
torch::Tensor logit_diff(const torch::Tensor& answer_logits);

// LD per prompt (B) from the output of the last layer h (B, T, D).
torch::Tensor logit_diff(const Gemma2Impl& model, const torch::Tensor& h, const AnswerSpec& answers);

}  // namespace sfc::model
