// Reading Hugging Face safetensors files and sharded checkpoints, validated at open.
// Not for writing (tests that need a safetensors file write the bytes themselves).
#pragma once

#include <torch/types.h>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace sfc::io {

// One tensor's entry in a safetensors header.
struct TensorEntry {
  std::string dtype;           // "F32", "BF16", "F16", … as written in the header
  std::vector<int64_t> shape;  // as written in the header
  uint64_t begin = 0;          // byte offset of the data, from the start of the file
  uint64_t end = 0;
};

// One .safetensors file. The header is parsed and checked at construction (size, JSON, dtypes,
// offsets inside the file, byte counts matching shape × dtype); tensors are read on demand.
// Throws LoadError("<file>: <problem>") on anything malformed.
class SafetensorsFile {
 public:
  explicit SafetensorsFile(std::filesystem::path path);

  const std::filesystem::path& path() const { return path_; }
  std::vector<std::string> names() const;
  bool contains(const std::string& name) const { return entries_.count(name) != 0; }
  const TensorEntry& entry(const std::string& name) const;  // throws LoadError if absent
  // Reads one tensor (F32, BF16 or F16 on disk; also I64/I32 for integer tensors) and casts it to `as`.
  torch::Tensor load(const std::string& name, torch::Dtype as) const;
  // Reads one tensor straight into `dst`, a contiguous tensor of any floating dtype (or, for an
  // integer tensor on disk, any dtype) and device with as many elements. In the on-disk dtype on
  // the CPU the bytes are read into dst's storage directly; otherwise piece by piece through one
  // 64 MiB buffer, each element converted once. Nothing the size of the tensor is allocated. A CPU
  // dst is advised to use transparent huge pages (far fewer page faults on first write).
  void load_into(const std::string& name, const torch::Tensor& dst) const;
  // Calls visit(piece, offset) over the tensor in order: piece is a flat CPU tensor in the on-disk
  // dtype (a buffer reused for the next piece), offset the index of its first element. Pieces are
  // at most 64 MiB.
  void for_each_piece(const std::string& name,
                      const std::function<void(const torch::Tensor& piece, int64_t offset)>& visit) const;

 private:
  const TensorEntry& checked_entry(const std::string& name, int fd, int64_t* elem_bytes, torch::Dtype* dtype) const;
  void read_pieces(const std::string& name, int fd,
                   const std::function<void(const torch::Tensor& piece, int64_t offset)>& visit) const;
  std::filesystem::path path_;
  std::map<std::string, TensorEntry> entries_;
};

// A Hugging Face checkpoint folder: `model.safetensors`, or `model.safetensors.index.json` whose
// weight_map sends each tensor name to one of several shard files.
class Checkpoint {
 public:
  explicit Checkpoint(const std::filesystem::path& dir);  // throws LoadError naming the folder/file

  std::vector<std::string> names() const;  // all tensor names, sorted
  bool contains(const std::string& name) const { return where_.count(name) != 0; }
  const std::filesystem::path& file_of(const std::string& name) const;
  std::vector<int64_t> shape(const std::string& name) const;
  torch::Tensor load(const std::string& name, torch::Dtype as) const;
  void load_into(const std::string& name, const torch::Tensor& dst) const;  // see SafetensorsFile
  void for_each_piece(const std::string& name,
                      const std::function<void(const torch::Tensor& piece, int64_t offset)>& visit) const;

 private:
  std::vector<std::unique_ptr<SafetensorsFile>> files_;
  std::map<std::string, const SafetensorsFile*> where_;
};

}  // namespace sfc::io
