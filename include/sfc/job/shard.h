// A rank's shard: an append-only file of finished batches, so a killed run loses at most the batch in
// flight (docs/design.md §2 "Distribution"). Not HDF5: an HDF5 file killed mid-write can be unreadable as
// a whole, while an append-only log with a checksum per record loses only its torn tail.
//
// Layout: header  "SFCSHRD1" | u32 length | fingerprint (text) | u32 crc32(fingerprint)
//         records u32 "SFCR" | u64 payload length | u32 crc32(payload) | payload
//         payload i64 batch | u32 n tensors | per tensor: u16 name length, name, u8 dtype, u8 ndim,
//                 i64 dims[ndim], raw little-endian data
// The fingerprint names what the records depend on (config, world layout, rank); resuming with a
// different one is an error. Each append is flushed and fsync'ed before it counts as done.
#pragma once

#include <torch/types.h>

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace sfc::job {

// One finished batch: named CPU tensors (float32, float64, int32, int64 or bool).
struct ShardRecord {
  int64_t batch = -1;
  std::vector<std::pair<std::string, torch::Tensor>> tensors;

  const torch::Tensor* find(const std::string& name) const;
};

class ShardWriter {
 public:
  // resume = false: creates (truncates) the file. resume = true: keeps every complete record of an
  // existing file with the same fingerprint, cuts off a torn tail, and appends after it; a missing
  // file starts empty. A different fingerprint is a LoadError telling what to do.
  ShardWriter(std::filesystem::path file, const std::string& fingerprint, bool resume);
  ~ShardWriter();
  ShardWriter(const ShardWriter&) = delete;
  ShardWriter& operator=(const ShardWriter&) = delete;

  // Batches already in the file (from an earlier run when resuming).
  const std::vector<int64_t>& completed() const { return completed_; }
  bool has(int64_t batch) const;
  // Appends and syncs. Returns when the record is on disk.
  void append(const ShardRecord& record);
  const std::filesystem::path& file() const { return file_; }

 private:
  std::filesystem::path file_;
  std::FILE* out_ = nullptr;
  std::vector<int64_t> completed_;
};

// Reads a finished shard: indexes every record (verifying each checksum) and reads them by batch.
class ShardReader {
 public:
  ShardReader(std::filesystem::path file, const std::string& fingerprint);
  ~ShardReader();
  ShardReader(const ShardReader&) = delete;
  ShardReader& operator=(const ShardReader&) = delete;

  bool has(int64_t batch) const { return offsets_.count(batch) != 0; }
  std::vector<int64_t> batches() const;
  ShardRecord read(int64_t batch) const;

 private:
  std::filesystem::path file_;
  std::FILE* in_ = nullptr;
  std::map<int64_t, int64_t> offsets_;  // batch -> offset of its record
};

// "<dir>/rank-00003.shard"
std::filesystem::path shard_path(const std::filesystem::path& dir, int rank);

}  // namespace sfc::job
