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
  // Big-endian or other dtypes fail at open; a short or corrupt member (CRC-32) is a LoadError
  // naming it. Stored members are read with pread straight into the tensor, deflated ones via libzip.
  torch::Tensor load(const std::string& name) const;

 private:
  // A stored (uncompressed) member: where its bytes start in the file, how many there are (the
  // .npy header's npy_header of them, then the array), and their CRC-32 from the directory.
  struct StoredMember {
    uint64_t offset = 0, size = 0, npy_header = 0;
    uint32_t crc = 0;
  };
  torch::Tensor read_stored(const std::string& name, const NpyInfo& known, const StoredMember& place) const;
  torch::Tensor read_with_libzip(const std::string& name) const;  // deflated members, and any we do not place

  std::filesystem::path path_;
  std::map<std::string, NpyInfo> members_;
  std::map<std::string, StoredMember> stored_;  // the members read without libzip
};

}  // namespace sfc::io
