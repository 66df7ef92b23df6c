// The one dimension legend of the project (STYLE.md §1). Every tensor comment uses these letters.
//
//   B   batch (prompts in one forward; IG steps and patch interventions are stacked into it too)
//   T   tokens (positions) of the longest prompt in the batch
//   D   d_model (hidden size)
//   H   query heads          K   key/value heads          Dh  head dimension
//   M   d_mlp (intermediate size of the GeGLU MLP)
//   W   width of a site: D for resid and mlp, H·Dh for attn (head-major)
//   F   SAE latents (d_sae)
//   V   vocabulary
//   L   layers
//   N   prompt pairs in a whole dataset
//   A   answer columns gathered by the metric head (1 correct + ≥1 wrong)
#pragma once

#include <cstdint>
#include <sstream>
#include <string>
#include <vector>

namespace sfc {

// "[3, 12, 64]" — for error messages about shapes.
inline std::string shape_str(const std::vector<int64_t>& shape) {
  std::ostringstream out;
  out << '[';
  for (size_t i = 0; i < shape.size(); ++i) out << (i ? ", " : "") << shape[i];
  out << ']';
  return out.str();
}

}  // namespace sfc
