// Writing NumPy .npz archives (a zip of .npy v1.0 members, stored uncompressed) from tensors.
// Used for the built-in model's SAEs (Gemma Scope params.npz). Not for reading: see npz.h.
#pragma once

#include <torch/types.h>

#include <filesystem>
#include <string>
#include <utility>
#include <vector>

namespace sfc::io {

// Writes `arrays` (name without ".npy", tensor) to `path` in the given order. Each tensor is written
// in C order as little-endian fp32 ("<f4") — other float dtypes are cast — so NpzFile::load gives
// back the same values. The archive is byte-for-byte reproducible (fixed member timestamps), so two
// runs with the same inputs write identical files. Throws LoadError naming the file on failure.
void write_npz(const std::filesystem::path& path, const std::vector<std::pair<std::string, torch::Tensor>>& arrays);

// The .npy v1.0 bytes of one fp32 array (header padded to a multiple of 64, then the data).
std::string npy_bytes(const torch::Tensor& t);

}  // namespace sfc::io
