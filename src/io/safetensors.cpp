// Safetensors reader: header validated at open, each tensor read with pread straight into its
// own storage (real checkpoints are 5-20 GB, so the file is never copied or mapped whole).
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

#include "sfc/core/error.h"
#include "sfc/core/shapes.h"

namespace sfc::io {
namespace {

using nlohmann::json;

// safetensors' own reader refuses headers above 100 MB; a bigger length means a corrupt file.
constexpr uint64_t kMaxHeaderBytes = 100u << 20;

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

// A file descriptor closed on every path out.
class Fd {
 public:
  explicit Fd(const std::filesystem::path& path) : fd_(::open(path.c_str(), O_RDONLY | O_CLOEXEC)) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

// Reads exactly n bytes at offset, looping over short reads (pread caps at ~2 GiB per call).
// Returns false on EOF or error.
bool pread_all(int fd, void* dst, uint64_t n, uint64_t offset) {
  auto* p = static_cast<char*>(dst);
  while (n > 0) {
    const size_t chunk = static_cast<size_t>(std::min<uint64_t>(n, 1u << 30));
    const ssize_t got = ::pread(fd, p, chunk, static_cast<off_t>(offset));
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) return false;
    p += got;
    n -= static_cast<uint64_t>(got);
    offset += static_cast<uint64_t>(got);
  }
  return true;
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

torch::Tensor SafetensorsFile::load(const std::string& name, torch::Dtype as) const {
  const TensorEntry& e = entry(name);
  DtypeInfo di{};
  lookup_dtype(e.dtype, &di);  // validated at open
  const bool disk_float = c10::isFloatingType(di.dtype);
  const bool want_float = c10::isFloatingType(as);
  if (disk_float && !want_float)
    throw LoadError(path_, "tensor '" + name + "' is " + e.dtype + " on disk but an integer dtype was requested");
  // Read in the on-disk dtype into a fresh tensor's storage, then cast (a no-op when equal).
  torch::Tensor t = torch::empty(e.shape, torch::TensorOptions().dtype(di.dtype));
  const uint64_t nbytes = e.end - e.begin;
  if (nbytes > 0) {
    Fd fd(path_);
    if (fd.get() < 0) throw LoadError(path_, open_error());
    if (!pread_all(fd.get(), t.data_ptr(), nbytes, e.begin))
      throw LoadError(path_, "tensor '" + name + "': short read of " + std::to_string(nbytes) +
                                 " bytes at offset " + std::to_string(e.begin) + " (file truncated?)");
  }
  return t.scalar_type() == as ? t : t.to(as);
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

}  // namespace sfc::io
