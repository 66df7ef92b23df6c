// The Hugging Face reference data of tests/fixtures/gemma2-tiny, opened once per test binary.
// Note the fixture's metric is LD_ref = logit(correct) − logit(wrong) = −(the project's LD).
#pragma once

#include <torch/torch.h>

#include <string>

#include "sfc/io/npz.h"
#include "sfc/model/gemma2.h"
#include "sfc/model/metric.h"
#include "support/test_support.h"

namespace sfc::test {

inline const io::NpzFile& reference() {
  static const io::NpzFile file(tiny_dir() / "reference.npz");
  return file;
}

inline torch::Tensor ref(const std::string& name) { return reference().load(name); }

// (B, T, H, Dh) -> (B, T, H·Dh): the fixture stores attn-site arrays per head.
inline torch::Tensor flatten_heads(const torch::Tensor& x) {
  return x.dim() == 4 ? x.flatten(2) : x;
}

// The project's answers for the fixture prompts: clean answer = correct_id, patch answer = wrong_id.
inline model::AnswerSpec fixture_answers() {
  auto tokens = ref("tokens_clean");
  const int64_t B = tokens.size(0), T = tokens.size(1);
  return {torch::full({B}, T - 1, torch::kInt64),
          torch::stack({ref("correct_id"), ref("wrong_id")}, 1).to(torch::kInt64)};
}

}  // namespace sfc::test
