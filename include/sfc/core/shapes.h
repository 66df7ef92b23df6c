// The one dimension legend of the project (docs/style.md §1). Every tensor comment uses these letters.
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
//   N   prompt pairs (for the built-in trainers: sentences) in a whole dataset
//   A   answer columns gathered by the metric head (1 correct + ≥1 wrong)
//   S   positions one forward computes: T, or T − p0 when it resumes after a cached prefix of p0
//   Q   query positions in attention (S, or 1 at a lone answer position)
//   P   key positions in attention: p0 + S
//   R   rows of a resumed forward (patch interventions, answer rows), each continuing one batch row;
//       stands where B stands
//   Tb  T of one batch where T is the dataset's longest prompt (results file, cache file)
//   k   top-k slots per node in the results file (output.topk)
//
// A subscript says whose size it is: T_i the length of prompt i, F_l the F of layer l's SAE.
// Lower-case names (rows, n, kk, nnz, offset) are counts named by the code next to them, and
// "1 or B" is a dimension that broadcasts over the batch.
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
