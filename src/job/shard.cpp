#include "sfc/job/shard.h"

#include <torch/torch.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cstring>

#include "sfc/core/error.h"

namespace sfc::job {
namespace {

constexpr char kMagic[8] = {'S', 'F', 'C', 'S', 'H', 'R', 'D', '1'};
constexpr uint32_t kRecordMagic = 0x52434653;  // "SFCR"
// No single record should ever be this large; a bigger length means a torn or foreign file.
constexpr uint64_t kMaxPayload = uint64_t{1} << 40;

uint32_t crc32_of(const void* data, size_t n) {
  uLong crc = crc32(0L, Z_NULL, 0);
  const auto* p = static_cast<const Bytef*>(data);
  while (n > 0) {  // zlib takes uInt lengths
    const uInt piece = static_cast<uInt>(std::min<size_t>(n, 1u << 30));
    crc = crc32(crc, p, piece);
    p += piece;
    n -= piece;
  }
  return static_cast<uint32_t>(crc);
}

uint8_t dtype_code(torch::ScalarType t) {
  switch (t) {
    case torch::kFloat: return 1;
    case torch::kDouble: return 2;
    case torch::kInt: return 3;
    case torch::kLong: return 4;
    case torch::kBool: return 5;
    default: throw Error(std::string("shard: cannot store a tensor of type ") + c10::toString(t));
  }
}

torch::ScalarType dtype_of(uint8_t code, const std::string& where) {
  switch (code) {
    case 1: return torch::kFloat;
    case 2: return torch::kDouble;
    case 3: return torch::kInt;
    case 4: return torch::kLong;
    case 5: return torch::kBool;
    default: throw Error(where + ": unknown tensor type code " + std::to_string(code));
  }
}

template <typename T>
void put(std::string& out, T value) {
  out.append(reinterpret_cast<const char*>(&value), sizeof(T));
}

// Reads from a payload buffer, with bounds checks that name the shard.
struct Cursor {
  const std::string& data;
  size_t at = 0;
  const std::string& where;
  template <typename T>
  T get() {
    T value;
    take(&value, sizeof(T));
    return value;
  }
  void take(void* out, size_t n) {
    if (at + n > data.size()) throw Error(where + ": record shorter than its contents");
    std::memcpy(out, data.data() + at, n);
    at += n;
  }
};

std::string header_bytes(const std::string& fingerprint) {
  std::string h(kMagic, sizeof kMagic);
  put<uint32_t>(h, static_cast<uint32_t>(fingerprint.size()));
  h += fingerprint;
  put<uint32_t>(h, crc32_of(fingerprint.data(), fingerprint.size()));
  return h;
}

bool read_exact(std::FILE* f, void* out, size_t n) { return n == 0 || std::fread(out, 1, n, f) == n; }

// Reads the record at the current position. Returns false (position undefined) when the record is
// torn, has a bad checksum, or the file ends.
bool read_record(std::FILE* f, std::string& payload) {
  uint32_t magic = 0, crc = 0;
  uint64_t length = 0;
  if (!read_exact(f, &magic, 4) || magic != kRecordMagic) return false;
  if (!read_exact(f, &length, 8) || length > kMaxPayload) return false;
  if (!read_exact(f, &crc, 4)) return false;
  payload.resize(length);
  if (!read_exact(f, payload.data(), length)) return false;
  return crc32_of(payload.data(), payload.size()) == crc;
}

int64_t payload_batch(const std::string& payload) {
  int64_t batch = -1;
  if (payload.size() >= 8) std::memcpy(&batch, payload.data(), 8);
  return batch;
}

// Checks the header; returns the offset of the first record. Throws LoadError on a mismatch.
int64_t check_header(std::FILE* f, const std::filesystem::path& file, const std::string& fingerprint) {
  const std::string expected = header_bytes(fingerprint);
  std::string actual(expected.size(), '\0');
  if (!read_exact(f, actual.data(), actual.size()) || actual.compare(0, 8, expected, 0, 8) != 0) {
    throw LoadError(file, "not an sfc shard file (or its header is torn)");
  }
  if (actual != expected)
    throw LoadError(file, "shard was written by a run with another configuration or rank layout; "
                          "rerun with that configuration, or delete the shard folder to start over");
  return static_cast<int64_t>(expected.size());
}

}  // namespace

const torch::Tensor* ShardRecord::find(const std::string& name) const {
  for (const auto& [n, t] : tensors)
    if (n == name) return &t;
  return nullptr;
}

std::filesystem::path shard_path(const std::filesystem::path& dir, int rank) {
  char name[32];
  std::snprintf(name, sizeof name, "rank-%05d.shard", rank);
  return dir / name;
}

ShardWriter::ShardWriter(std::filesystem::path file, const std::string& fingerprint, bool resume)
    : file_(std::move(file)) {
  if (resume && std::filesystem::exists(file_)) {
    out_ = std::fopen(file_.c_str(), "r+b");
    if (!out_) throw LoadError(file_, std::string("cannot open shard: ") + std::strerror(errno));
    int64_t end = check_header(out_, file_, fingerprint);
    std::string payload;
    while (read_record(out_, payload)) {
      completed_.push_back(payload_batch(payload));
      end = static_cast<int64_t>(std::ftell(out_));
    }
    // Cut the torn tail (the batch in flight when the run died), then append after the last record.
    std::fflush(out_);
    if (ftruncate(fileno(out_), end) != 0)
      throw LoadError(file_, std::string("cannot truncate torn shard tail: ") + std::strerror(errno));
    std::fseek(out_, end, SEEK_SET);
    return;
  }
  out_ = std::fopen(file_.c_str(), "wb");
  if (!out_) throw LoadError(file_, std::string("cannot create shard: ") + std::strerror(errno));
  const auto header = header_bytes(fingerprint);
  if (std::fwrite(header.data(), 1, header.size(), out_) != header.size() || std::fflush(out_) != 0 ||
      fsync(fileno(out_)) != 0)
    throw LoadError(file_, std::string("cannot write shard header: ") + std::strerror(errno));
}

ShardWriter::~ShardWriter() {
  if (out_) std::fclose(out_);
}

bool ShardWriter::has(int64_t batch) const {
  return std::find(completed_.begin(), completed_.end(), batch) != completed_.end();
}

void ShardWriter::append(const ShardRecord& record) {
  std::string payload;
  put<int64_t>(payload, record.batch);
  put<uint32_t>(payload, static_cast<uint32_t>(record.tensors.size()));
  for (const auto& [name, tensor] : record.tensors) {
    const auto t = tensor.detach().to(torch::kCPU).contiguous();
    put<uint16_t>(payload, static_cast<uint16_t>(name.size()));
    payload += name;
    put<uint8_t>(payload, dtype_code(t.scalar_type()));
    put<uint8_t>(payload, static_cast<uint8_t>(t.dim()));
    for (int64_t d : t.sizes()) put<int64_t>(payload, d);
    payload.append(static_cast<const char*>(t.data_ptr()), t.numel() * t.element_size());
  }
  std::string head;
  put<uint32_t>(head, kRecordMagic);
  put<uint64_t>(head, payload.size());
  put<uint32_t>(head, crc32_of(payload.data(), payload.size()));
  if (std::fwrite(head.data(), 1, head.size(), out_) != head.size() ||
      std::fwrite(payload.data(), 1, payload.size(), out_) != payload.size() || std::fflush(out_) != 0 ||
      fsync(fileno(out_)) != 0)
    throw LoadError(file_, "cannot append batch " + std::to_string(record.batch) + ": " + std::strerror(errno));
  completed_.push_back(record.batch);
}

ShardReader::ShardReader(std::filesystem::path file, const std::string& fingerprint) : file_(std::move(file)) {
  in_ = std::fopen(file_.c_str(), "rb");
  if (!in_) throw LoadError(file_, std::string("cannot open shard: ") + std::strerror(errno));
  int64_t at = check_header(in_, file_, fingerprint);
  std::string payload;
  while (read_record(in_, payload)) {
    offsets_[payload_batch(payload)] = at;
    at = static_cast<int64_t>(std::ftell(in_));
  }
  std::fseek(in_, 0, SEEK_END);
  if (std::ftell(in_) != at)
    throw LoadError(file_, "corrupt record at byte " + std::to_string(at) + " (a torn write that no --resume repaired?)");
}

ShardReader::~ShardReader() {
  if (in_) std::fclose(in_);
}

std::vector<int64_t> ShardReader::batches() const {
  std::vector<int64_t> out;
  for (const auto& [b, at] : offsets_) out.push_back(b);
  return out;
}

ShardRecord ShardReader::read(int64_t batch) const {
  const auto it = offsets_.find(batch);
  if (it == offsets_.end()) throw LoadError(file_, "has no batch " + std::to_string(batch));
  std::fseek(in_, it->second, SEEK_SET);
  std::string payload;
  if (!read_record(in_, payload))
    throw LoadError(file_, "record of batch " + std::to_string(batch) + " changed since it was indexed");
  const std::string where = file_.string() + ": batch " + std::to_string(batch);
  Cursor c{payload, 0, where};
  ShardRecord record;
  record.batch = c.get<int64_t>();
  const uint32_t n = c.get<uint32_t>();
  for (uint32_t i = 0; i < n; ++i) {
    std::string name(c.get<uint16_t>(), '\0');
    c.take(name.data(), name.size());
    const auto dtype = dtype_of(c.get<uint8_t>(), where);
    std::vector<int64_t> dims(c.get<uint8_t>());
    for (auto& d : dims) d = c.get<int64_t>();
    auto t = torch::empty(dims, torch::TensorOptions().dtype(dtype));
    c.take(t.data_ptr(), t.numel() * t.element_size());
    record.tensors.emplace_back(std::move(name), std::move(t));
  }
  return record;
}

}  // namespace sfc::job
