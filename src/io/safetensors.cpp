// Safetensors reader: header validated at open; each tensor is read with pread straight into its
// destination's storage, or, when it changes dtype or device, piece by piece through one small
// buffer. Real checkpoints are 5-20 GB: the file is never copied whole, and not mapped (measured on
// the development VM: mapping 1 GB and copying from it took 1.4x as long as reading it with pread).
#include "sfc/io/safetensors.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <limits>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>
#include <torch/utils.h>

#include "sfc/core/error.h"
#include "sfc/core/shapes.h"
#include "file_reads.h"

namespace sfc::io {
namespace {

using nlohmann::json;
using detail::Fd;
using detail::pread_all;

// safetensors' own reader refuses headers above 100 MB; a bigger length means a corrupt file.
constexpr uint64_t kMaxHeaderBytes = 100u << 20;

// A tensor that changes dtype or device is read and converted at most this many bytes at a time:
// large enough that the per-piece system calls cost nothing, small enough that the one buffer adds
// little to the resident set next to the tensors being filled.
constexpr uint64_t kPieceBytes = 64u << 20;

struct DtypeInfo {
  torch::Dtype dtype;
  int64_t bytes;
};

// On-disk dtypes we can read (all little-endian, as the format prescribes).
bool lookup_dtype(const std::string& name, DtypeInfo* out) {
  static const std::map<std::string, DtypeInfo> kTable = {
      {"F64", {torch::kFloat64, 8}}, {"F32", {torch::kFloat32, 4}}, {"F16", {torch::kFloat16, 2}},
      {"BF16", {torch::kBFloat16, 2}}, {"I64", {torch::kInt64, 8}}, {"I32", {torch::kInt32, 4}},
      {"I16", {torch::kInt16, 2}},   {"I8", {torch::kInt8, 1}},     {"U8", {torch::kUInt8, 1}},
      {"BOOL", {torch::kBool, 1}},
  };
  auto it = kTable.find(name);
  if (it == kTable.end()) return false;
  *out = it->second;
  return true;
}

bool host_is_little_endian() {
  const uint16_t one = 1;
  unsigned char first;
  std::memcpy(&first, &one, 1);
  return first == 1;
}

std::string open_error() { return std::string("cannot open (") + std::strerror(errno) + ")"; }

}  // namespace

SafetensorsFile::SafetensorsFile(std::filesystem::path path) : path_(std::move(path)) {
  if (!host_is_little_endian()) throw LoadError(path_, "safetensors reading needs a little-endian host");
  Fd fd(path_);
  if (fd.get() < 0) throw LoadError(path_, open_error());
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) throw LoadError(path_, open_error());
  const uint64_t file_size = static_cast<uint64_t>(st.st_size);

  // Layout: u64 little-endian header length N, N bytes of JSON, then the data block.
  if (file_size < 8)
    throw LoadError(path_, "not a safetensors file: " + std::to_string(file_size) +
                               " bytes, shorter than the 8-byte header length");
  uint64_t header_len = 0;
  if (!pread_all(fd.get(), &header_len, 8, 0)) throw LoadError(path_, "cannot read the header length");
  if (header_len > file_size - 8 || header_len > kMaxHeaderBytes)
    throw LoadError(path_, "corrupt header: header length " + std::to_string(header_len) +
                               " bytes but the file has only " + std::to_string(file_size - 8) +
                               " bytes after the length field (limit " +
                               std::to_string(kMaxHeaderBytes) + ")");
  std::string text(header_len, '\0');
  if (!pread_all(fd.get(), text.data(), header_len, 8)) throw LoadError(path_, "cannot read the header");

  json header;
  try {
    header = json::parse(text);
  } catch (const json::parse_error& e) {
    // nlohmann's message is one line; keep ours one line too.
    throw LoadError(path_, std::string("corrupt header: invalid JSON (") + e.what() + ")");
  }
  if (!header.is_object()) throw LoadError(path_, "corrupt header: JSON is not an object");

  const uint64_t data_start = 8 + header_len;
  const uint64_t data_size = file_size - data_start;
  for (auto it = header.begin(); it != header.end(); ++it) {
    const std::string& name = it.key();
    if (name == "__metadata__") continue;  // free-form string map, not a tensor
    const json& v = it.value();
    const std::string where = "tensor '" + name + "': ";
    if (!v.is_object() || !v.contains("dtype") || !v.contains("shape") || !v.contains("data_offsets"))
      throw LoadError(path_, where + "entry needs dtype, shape and data_offsets");
    TensorEntry e;
    if (!v["dtype"].is_string()) throw LoadError(path_, where + "dtype is not a string");
    e.dtype = v["dtype"].get<std::string>();
    DtypeInfo di{};
    if (!lookup_dtype(e.dtype, &di))
      throw LoadError(path_, where + "unknown dtype '" + e.dtype +
                                 "' (supported: F64, F32, F16, BF16, I64, I32, I16, I8, U8, BOOL)");
    const json& shape = v["shape"];
    if (!shape.is_array()) throw LoadError(path_, where + "shape is not an array");
    // Count bytes in 128 bits' worth of care: a hostile shape must not overflow into a small size.
    uint64_t numel = 1;
    bool overflow = false;
    for (const json& d : shape) {
      if (!d.is_number_integer() || d.get<int64_t>() < 0)
        throw LoadError(path_, where + "shape " + shape.dump() + " has a non-integer or negative size");
      const auto n = d.get<uint64_t>();
      e.shape.push_back(static_cast<int64_t>(n));
      if (n != 0 && numel > std::numeric_limits<uint64_t>::max() / n) overflow = true;
      numel *= n;
    }
    const json& off = v["data_offsets"];
    if (!off.is_array() || off.size() != 2 || !off[0].is_number_unsigned() || !off[1].is_number_unsigned())
      throw LoadError(path_, where + "data_offsets " + off.dump() + " is not a pair of non-negative integers");
    const auto b = off[0].get<uint64_t>(), end = off[1].get<uint64_t>();
    if (b > end || end > data_size)
      throw LoadError(path_, where + "data_offsets [" + std::to_string(b) + ", " + std::to_string(end) +
                                 "] out of range: the data block has " + std::to_string(data_size) +
                                 " bytes");
    if (overflow || numel > std::numeric_limits<uint64_t>::max() / static_cast<uint64_t>(di.bytes) ||
        end - b != numel * static_cast<uint64_t>(di.bytes))
      throw LoadError(path_, where + "data_offsets span " + std::to_string(end - b) + " bytes but " +
                                 e.dtype + " " + shape_str(e.shape) + " needs " +
                                 (overflow ? std::string("more than 2^64")
                                           : std::to_string(numel * static_cast<uint64_t>(di.bytes))));
    e.begin = data_start + b;
    e.end = data_start + end;
    entries_.emplace(name, std::move(e));
  }
}

std::vector<std::string> SafetensorsFile::names() const {
  std::vector<std::string> out;
  out.reserve(entries_.size());
  for (const auto& kv : entries_) out.push_back(kv.first);
  return out;  // std::map keeps them sorted
}

const TensorEntry& SafetensorsFile::entry(const std::string& name) const {
  auto it = entries_.find(name);
  if (it == entries_.end())
    throw LoadError(path_, "no tensor '" + name + "' (file has " + std::to_string(entries_.size()) +
                               " tensors)");
  return it->second;
}

// The checks before any tensor data is read: the entry, its on-disk dtype, and that the file still
// holds all of its bytes (the header was checked against the size at open; a file cut since must
// fail here with a message, not as a short read later).
const TensorEntry& SafetensorsFile::checked_entry(const std::string& name, int fd, int64_t* elem_bytes,
                                                  torch::Dtype* dtype) const {
  const TensorEntry& e = entry(name);
  DtypeInfo di{};
  lookup_dtype(e.dtype, &di);  // validated at open
  struct stat st {};
  if (::fstat(fd, &st) != 0) throw LoadError(path_, open_error());
  if (static_cast<uint64_t>(st.st_size) < e.end)
    throw LoadError(path_, "tensor '" + name + "': short read of " + std::to_string(e.end - e.begin) +
                               " bytes at offset " + std::to_string(e.begin) + " (file truncated?)");
  *elem_bytes = di.bytes;
  *dtype = di.dtype;
  return e;
}

void SafetensorsFile::read_pieces(const std::string& name, int fd,
                                  const std::function<void(const torch::Tensor& piece, int64_t offset)>& visit) const {
  int64_t elem_bytes = 0;
  torch::Dtype dtype{};
  const TensorEntry& e = checked_entry(name, fd, &elem_bytes, &dtype);
  const uint64_t nbytes = e.end - e.begin, bytes = static_cast<uint64_t>(elem_bytes);
  if (nbytes == 0) return;
  const uint64_t per_piece = std::min(nbytes, kPieceBytes / bytes * bytes);
  torch::Tensor buffer = torch::empty({static_cast<int64_t>(per_piece / bytes)}, torch::TensorOptions().dtype(dtype));
  detail::advise_huge_pages(buffer.data_ptr(), per_piece);  // fresh for every tensor: cheap faults matter
  for (uint64_t done = 0; done < nbytes;) {
    const uint64_t n = std::min(per_piece, nbytes - done);
    // Start reading the next piece from disk while this one is converted (no-op when cached).
    if (done + n < nbytes)
      ::posix_fadvise(fd, static_cast<off_t>(e.begin + done + n), static_cast<off_t>(std::min(per_piece, nbytes - done - n)),
                      POSIX_FADV_WILLNEED);
    if (!pread_all(fd, buffer.data_ptr(), n, e.begin + done))
      throw LoadError(path_, "tensor '" + name + "': short read of " + std::to_string(nbytes) + " bytes at offset " +
                                 std::to_string(e.begin) + " (file truncated?)");
    visit(buffer.narrow(0, 0, static_cast<int64_t>(n / bytes)), static_cast<int64_t>(done / bytes));
    done += n;
  }
}

void SafetensorsFile::for_each_piece(
    const std::string& name, const std::function<void(const torch::Tensor& piece, int64_t offset)>& visit) const {
  entry(name);  // throws when absent, before the file is opened
  Fd fd(path_);
  if (fd.get() < 0) throw LoadError(path_, open_error());
  read_pieces(name, fd.get(), visit);
}

void SafetensorsFile::load_into(const std::string& name, const torch::Tensor& dst) const {
  const TensorEntry& e = entry(name);
  DtypeInfo di{};
  lookup_dtype(e.dtype, &di);  // validated at open
  if (c10::isFloatingType(di.dtype) && !c10::isFloatingType(dst.scalar_type()))
    throw LoadError(path_, "tensor '" + name + "' is " + e.dtype + " on disk but an integer dtype was requested");
  int64_t numel = 1;
  for (int64_t d : e.shape) numel *= d;
  if (!dst.defined() || !dst.is_contiguous() || dst.numel() != numel)
    throw LoadError(path_, "tensor '" + name + "' " + shape_str(e.shape) + " cannot be read into a " +
                               (dst.defined() ? shape_str(dst.sizes().vec()) : std::string("undefined")) +
                               (dst.defined() && !dst.is_contiguous() ? " non-contiguous" : "") + " tensor");
  if (numel == 0) return;
  Fd fd(path_);
  if (fd.get() < 0) throw LoadError(path_, open_error());
  if (dst.is_cpu()) detail::advise_huge_pages(dst.data_ptr(), static_cast<uint64_t>(dst.nbytes()));
  if (dst.is_cpu() && dst.scalar_type() == di.dtype) {
    // Same dtype on the CPU: the bytes go straight from the page cache into dst, one copy.
    int64_t elem_bytes = 0;
    torch::Dtype dtype{};
    checked_entry(name, fd.get(), &elem_bytes, &dtype);
    if (!pread_all(fd.get(), dst.data_ptr(), e.end - e.begin, e.begin))
      throw LoadError(path_, "tensor '" + name + "': short read of " + std::to_string(e.end - e.begin) +
                                 " bytes at offset " + std::to_string(e.begin) + " (file truncated?)");
    return;
  }
  torch::NoGradGuard no_grad;  // dst may be a parameter
  auto flat = dst.view({-1});  // (numel)
  // copy_ converts the dtype (and crosses to dst's device) on the way, once per element.
  read_pieces(name, fd.get(), [&](const torch::Tensor& piece, int64_t offset) {
    flat.narrow(0, offset, piece.numel()).copy_(piece);
  });
}

torch::Tensor SafetensorsFile::load(const std::string& name, torch::Dtype as) const {
  torch::Tensor t = torch::empty(entry(name).shape, torch::TensorOptions().dtype(as));  // (shape on disk)
  load_into(name, t);
  return t;
}

// ---------------------------------------------------------------------------------------------

Checkpoint::Checkpoint(const std::filesystem::path& dir) {
  namespace fs = std::filesystem;
  // A single .safetensors file is accepted too: convenient for tests and one-off checkpoints.
  if (fs::is_regular_file(dir)) {
    files_.push_back(std::make_unique<SafetensorsFile>(dir));
  } else {
    const fs::path single = dir / "model.safetensors";
    const fs::path index = dir / "model.safetensors.index.json";
    if (fs::exists(single)) {
      files_.push_back(std::make_unique<SafetensorsFile>(single));
    } else if (fs::exists(index)) {
      std::ifstream in(index);
      if (!in) throw LoadError(index, open_error());
      json j;
      try {
        j = json::parse(in);
      } catch (const json::parse_error& e) {
        throw LoadError(index, std::string("invalid JSON (") + e.what() + ")");
      }
      if (!j.is_object() || !j.contains("weight_map") || !j["weight_map"].is_object())
        throw LoadError(index, "no 'weight_map' object");
      std::map<std::string, const SafetensorsFile*> shard_of_file;
      for (auto it = j["weight_map"].begin(); it != j["weight_map"].end(); ++it) {
        if (!it.value().is_string())
          throw LoadError(index, "weight_map entry '" + it.key() + "' is not a file name");
        const std::string shard = it.value().get<std::string>();
        auto found = shard_of_file.find(shard);
        if (found == shard_of_file.end()) {
          const fs::path shard_path = dir / shard;
          if (!fs::exists(shard_path))
            throw LoadError(index, "shard file '" + shard + "' (for tensor '" + it.key() +
                                       "') is missing from " + dir.string());
          files_.push_back(std::make_unique<SafetensorsFile>(shard_path));
          found = shard_of_file.emplace(shard, files_.back().get()).first;
        }
        if (!found->second->contains(it.key()))
          throw LoadError(found->second->path(), "has no tensor '" + it.key() + "', but " +
                                                      index.filename().string() + " maps it here");
        where_[it.key()] = found->second;
      }
      return;
    } else {
      throw LoadError(dir, "no checkpoint: looked for model.safetensors and model.safetensors.index.json");
    }
  }
  for (const auto& name : files_.front()->names()) where_[name] = files_.front().get();
}

std::vector<std::string> Checkpoint::names() const {
  std::vector<std::string> out;
  out.reserve(where_.size());
  for (const auto& kv : where_) out.push_back(kv.first);
  return out;
}

const std::filesystem::path& Checkpoint::file_of(const std::string& name) const {
  auto it = where_.find(name);
  if (it == where_.end()) {
    // Name the first file: for a sharded checkpoint the shards sit together in the folder.
    throw LoadError(files_.empty() ? std::filesystem::path("<checkpoint>") : files_.front()->path(),
                    "checkpoint has no tensor '" + name + "'");
  }
  return it->second->path();
}

std::vector<int64_t> Checkpoint::shape(const std::string& name) const {
  const auto& f = file_of(name);  // throws when absent
  (void)f;
  return where_.at(name)->entry(name).shape;
}

torch::Tensor Checkpoint::load(const std::string& name, torch::Dtype as) const {
  file_of(name);  // throws when absent
  return where_.at(name)->load(name, as);
}

void Checkpoint::load_into(const std::string& name, const torch::Tensor& dst) const {
  file_of(name);  // throws when absent
  where_.at(name)->load_into(name, dst);
}

void Checkpoint::for_each_piece(
    const std::string& name, const std::function<void(const torch::Tensor& piece, int64_t offset)>& visit) const {
  file_of(name);  // throws when absent
  where_.at(name)->for_each_piece(name, visit);
}

}  // namespace sfc::io
