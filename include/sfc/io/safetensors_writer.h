// Writing Hugging Face safetensors files (the built-in model's checkpoint, issue 5). Not for
// reading: that is sfc/io/safetensors.h, which every file written here must pass.
#pragma once

#include <torch/types.h>

#include <filesystem>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace sfc::io {

// Writes "u64 header length (little-endian) | JSON header | raw data": one entry per tensor with
// its dtype (F32, F64, BF16, F16, I64, I32 from the tensor's own dtype), shape and data_offsets,
// plus "__metadata__" (string values only, as the format requires). The header is padded with
// spaces to a multiple of 8 bytes, as Hugging Face does. Tensors are written contiguous, on CPU,
// in the order given; names must be unique. Written to <file>.partial and renamed when complete.
// Throws Error naming the file on an unsupported dtype, a duplicate name or an I/O failure.
void write_safetensors(const std::filesystem::path& file,
                       const std::vector<std::pair<std::string, torch::Tensor>>& tensors,
                       const std::map<std::string, std::string>& metadata = {{"format", "pt"}});

}  // namespace sfc::io
