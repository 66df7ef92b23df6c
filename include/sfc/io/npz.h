// Reading NumPy .npz archives (a zip of .npy files, stored or deflated, zip64 included) into tensors.
// Used for Gemma Scope SAEs (params.npz) and for reference data in tests. Not for writing.
#pragma once

#include <torch/types.h>

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

namespace sfc::io {

// Header of one .npy member.
struct NpyInfo {
  std::string descr;           // e.g. "<f4", "<i8"
  std::vector<int64_t> shape;
  bool fortran_order = false;
};

// An opened .npz. Construction reads the zip directory and every member's .npy header, so a
// truncated or non-zip file fails here with LoadError("<file>: <problem>").
class NpzFile {
 public:
  explicit NpzFile(std::filesystem::path path);

  const std::filesystem::path& path() const { return path_; }
  std::vector<std::string> names() const;  // member names without the ".npy" suffix, sorted
  bool contains(const std::string& name) const { return members_.count(name) != 0; }
  const NpyInfo& info(const std::string& name) const;  // throws LoadError if absent
  // Reads one array in its own dtype (f2/f4/f8, i1..i8, u1, b1; little-endian) as a contiguous
  // CPU tensor; Fortran-order arrays (Gemma Scope's W_enc/W_dec) are returned in C order.
  // Big-endian or other dtypes fail at open; a short or corrupt member is a LoadError naming it.
  torch::Tensor load(const std::string& name) const;

 private:
  std::filesystem::path path_;
  std::map<std::string, NpyInfo> members_;
};

}  // namespace sfc::io
