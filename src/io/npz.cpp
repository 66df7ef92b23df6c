// .npz reader on libzip: .npy headers parsed here (versions 1-3), array data streamed from the
// (stored or deflated, possibly zip64) member straight into the tensor's storage. Fortran-order
// arrays are accepted and returned in C order.
#include "sfc/io/npz.h"

#include <zip.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <memory>

#include "sfc/core/error.h"
#include "sfc/core/shapes.h"

namespace sfc::io {
namespace {

constexpr char kNpyMagic[] = "\x93NUMPY";
constexpr size_t kNpyMagicLen = 6;
// numpy pads headers to a few hundred bytes; anything near this is not a real .npy header.
constexpr uint32_t kMaxNpyHeader = 1u << 20;

struct ZipCloser {
  void operator()(zip_t* z) const {
    if (z) zip_discard(z);  // read-only: nothing to write back
  }
};
struct ZipFileCloser {
  void operator()(zip_file_t* f) const {
    if (f) zip_fclose(f);
  }
};
using ZipPtr = std::unique_ptr<zip_t, ZipCloser>;
using ZipFilePtr = std::unique_ptr<zip_file_t, ZipFileCloser>;

ZipPtr open_zip(const std::filesystem::path& path) {
  if (!std::filesystem::exists(path)) throw LoadError(path, "file not found");
  int code = 0;
  zip_t* z = zip_open(path.c_str(), ZIP_RDONLY | ZIP_CHECKCONS, &code);
  if (!z) {
    zip_error_t err;
    zip_error_init_with_code(&err, code);
    std::string what = zip_error_strerror(&err);
    zip_error_fini(&err);
    throw LoadError(path, "not a readable .npz/zip archive (libzip: " + what +
                              "); the file may be truncated or not an .npz");
  }
  return ZipPtr(z);
}

std::string zip_file_error(zip_file_t* f) { return zip_error_strerror(zip_file_get_error(f)); }

// Element type of a descr such as "<f4"; false for anything we do not read.
bool descr_dtype(const std::string& descr, torch::Dtype* dtype, int64_t* bytes) {
  if (descr.size() < 3) return false;
  const std::string kind = descr.substr(1);
  struct Row {
    const char* kind;
    torch::Dtype dtype;
    int64_t bytes;
  };
  static const Row kRows[] = {
      {"f2", torch::kFloat16, 2}, {"f4", torch::kFloat32, 4}, {"f8", torch::kFloat64, 8},
      {"i1", torch::kInt8, 1},    {"i2", torch::kInt16, 2},   {"i4", torch::kInt32, 4},
      {"i8", torch::kInt64, 8},   {"u1", torch::kUInt8, 1},   {"b1", torch::kBool, 1},
  };
  for (const Row& r : kRows)
    if (kind == r.kind) {
      *dtype = r.dtype;
      *bytes = r.bytes;
      return true;
    }
  return false;
}

// Parser for the one Python literal numpy writes as a .npy header:
//   {'descr': '<f4', 'fortran_order': False, 'shape': (3, 12), }
// Throws std::runtime_error with a short reason; the caller adds file and member.
class HeaderParser {
 public:
  explicit HeaderParser(const std::string& s) : s_(s) {}

  NpyInfo parse() {
    NpyInfo info;
    bool have_descr = false, have_order = false, have_shape = false;
    expect('{');
    while (true) {
      skip_ws();
      if (peek() == '}') {
        ++i_;
        break;
      }
      const std::string key = string_lit();
      expect(':');
      skip_ws();
      if (key == "descr") {
        if (peek() != '\'' && peek() != '"')
          fail("descr is not a simple dtype string (structured arrays are not supported)");
        info.descr = string_lit();
        have_descr = true;
      } else if (key == "fortran_order") {
        info.fortran_order = bool_lit();
        have_order = true;
      } else if (key == "shape") {
        info.shape = tuple_lit();
        have_shape = true;
      } else {
        fail("unexpected key '" + key + "'");
      }
      skip_ws();
      if (peek() == ',') ++i_;
    }
    if (!have_descr || !have_order || !have_shape) fail("needs descr, fortran_order and shape");
    return info;
  }

 private:
  [[noreturn]] void fail(const std::string& why) const { throw std::runtime_error(why); }
  char peek() const { return i_ < s_.size() ? s_[i_] : '\0'; }
  void skip_ws() {
    while (i_ < s_.size() && std::isspace(static_cast<unsigned char>(s_[i_]))) ++i_;
  }
  void expect(char c) {
    skip_ws();
    if (peek() != c) fail(std::string("expected '") + c + "' at byte " + std::to_string(i_));
    ++i_;
  }
  std::string string_lit() {
    skip_ws();
    const char q = peek();
    if (q != '\'' && q != '"') fail("expected a string at byte " + std::to_string(i_));
    const size_t end = s_.find(q, i_ + 1);
    if (end == std::string::npos) fail("unterminated string");
    std::string out = s_.substr(i_ + 1, end - i_ - 1);
    i_ = end + 1;
    return out;
  }
  bool bool_lit() {
    if (s_.compare(i_, 4, "True") == 0) {
      i_ += 4;
      return true;
    }
    if (s_.compare(i_, 5, "False") == 0) {
      i_ += 5;
      return false;
    }
    fail("fortran_order is neither True nor False");
  }
  std::vector<int64_t> tuple_lit() {
    expect('(');
    std::vector<int64_t> out;
    while (true) {
      skip_ws();
      if (peek() == ')') {
        ++i_;
        return out;
      }
      if (!std::isdigit(static_cast<unsigned char>(peek()))) fail("shape holds a non-integer");
      int64_t v = 0;
      while (std::isdigit(static_cast<unsigned char>(peek()))) {
        if (v > (int64_t{1} << 56)) fail("shape entry too large");
        v = v * 10 + (s_[i_++] - '0');
      }
      if (peek() == 'L') ++i_;  // Python 2 longs
      out.push_back(v);
      skip_ws();
      if (peek() == ',') ++i_;
    }
  }

  const std::string& s_;
  size_t i_ = 0;
};

// Reads exactly n bytes of a member; false on a short read or a libzip error.
bool read_exact(zip_file_t* f, void* dst, uint64_t n) {
  auto* p = static_cast<char*>(dst);
  while (n > 0) {
    const zip_int64_t got = zip_fread(f, p, n);
    if (got <= 0) return false;
    p += got;
    n -= static_cast<uint64_t>(got);
  }
  return true;
}

// Reads and parses the .npy header at the start of an opened member. Returns the header's total
// length in bytes (magic to end of padding). Throws LoadError naming the member.
uint64_t read_npy_header(const std::filesystem::path& path, const std::string& member, zip_file_t* f,
                         NpyInfo* info) {
  auto bad = [&](const std::string& why) { return LoadError(path, "member '" + member + "': " + why); };
  unsigned char pre[8];
  if (!read_exact(f, pre, 8)) throw bad("too short for a .npy header (" + zip_file_error(f) + ")");
  if (std::memcmp(pre, kNpyMagic, kNpyMagicLen) != 0) throw bad("not a .npy array (bad magic)");
  const int major = pre[6], minor = pre[7];
  uint32_t header_len = 0;
  uint64_t prefix = 0;
  if (major == 1) {
    unsigned char len[2];
    if (!read_exact(f, len, 2)) throw bad("truncated .npy header");
    header_len = static_cast<uint32_t>(len[0] | (len[1] << 8));
    prefix = 10;
  } else if (major == 2 || major == 3) {  // 3 only differs by allowing UTF-8 in the header
    unsigned char len[4];
    if (!read_exact(f, len, 4)) throw bad("truncated .npy header");
    header_len = static_cast<uint32_t>(len[0]) | (static_cast<uint32_t>(len[1]) << 8) |
                 (static_cast<uint32_t>(len[2]) << 16) | (static_cast<uint32_t>(len[3]) << 24);
    prefix = 12;
  } else {
    throw bad(".npy version " + std::to_string(major) + "." + std::to_string(minor) +
              " not supported (expected 1.x, 2.x or 3.x)");
  }
  if (header_len > kMaxNpyHeader) throw bad(".npy header length " + std::to_string(header_len) + " is implausible");
  std::string text(header_len, '\0');
  if (!read_exact(f, text.data(), header_len)) throw bad("truncated .npy header");
  try {
    *info = HeaderParser(text).parse();
  } catch (const std::runtime_error& e) {
    throw bad(std::string(".npy header unreadable: ") + e.what());
  }
  const char order = info->descr.empty() ? '?' : info->descr[0];
  if (order == '>')
    throw bad("dtype '" + info->descr + "' is big-endian; only little-endian arrays are supported (use arr.astype('<" +
              info->descr.substr(1) + "'))");
  torch::Dtype dt;
  int64_t bytes;
  if ((order != '<' && order != '|' && order != '=') || !descr_dtype(info->descr, &dt, &bytes))
    throw bad("unsupported dtype '" + info->descr + "' (supported: f2 f4 f8 i1 i2 i4 i8 u1 b1)");
  return prefix + header_len;
}

uint64_t byte_count(const NpyInfo& info) {
  torch::Dtype dt;
  int64_t bytes = 0;
  descr_dtype(info.descr, &dt, &bytes);
  uint64_t n = static_cast<uint64_t>(bytes);
  for (int64_t d : info.shape) n *= static_cast<uint64_t>(d);
  return n;
}

std::string strip_npy(const std::string& name) {
  return name.size() > 4 && name.compare(name.size() - 4, 4, ".npy") == 0 ? name.substr(0, name.size() - 4)
                                                                           : std::string();
}

}  // namespace

NpzFile::NpzFile(std::filesystem::path path) : path_(std::move(path)) {
  ZipPtr z = open_zip(path_);
  const zip_int64_t n = zip_get_num_entries(z.get(), 0);
  for (zip_int64_t i = 0; i < n; ++i) {
    zip_stat_t st;
    zip_stat_init(&st);
    if (zip_stat_index(z.get(), static_cast<zip_uint64_t>(i), 0, &st) != 0)
      throw LoadError(path_, std::string("cannot read zip entry ") + std::to_string(i) + " (libzip: " +
                                 zip_strerror(z.get()) + ")");
    const std::string member = strip_npy(st.name);
    if (member.empty()) continue;  // np.savez writes only .npy members; ignore anything else
    ZipFilePtr f(zip_fopen_index(z.get(), static_cast<zip_uint64_t>(i), 0));
    if (!f)
      throw LoadError(path_, "member '" + member + "': cannot open (libzip: " + zip_strerror(z.get()) + ")");
    NpyInfo info;
    const uint64_t header = read_npy_header(path_, member, f.get(), &info);
    // The declared size must match the header, so a short member fails at open, not mid-run.
    const uint64_t want = header + byte_count(info);
    if ((st.valid & ZIP_STAT_SIZE) && st.size != want)
      throw LoadError(path_, "member '" + member + "': " + info.descr + " " + shape_str(info.shape) +
                                 " needs " + std::to_string(want) + " bytes with its header, the member has " +
                                 std::to_string(st.size));
    members_.emplace(member, std::move(info));
  }
}

std::vector<std::string> NpzFile::names() const {
  std::vector<std::string> out;
  for (const auto& kv : members_) out.push_back(kv.first);
  return out;
}

const NpyInfo& NpzFile::info(const std::string& name) const {
  auto it = members_.find(name);
  if (it == members_.end())
    throw LoadError(path_, "no array '" + name + "' (archive has " + std::to_string(members_.size()) + " arrays)");
  return it->second;
}

torch::Tensor NpzFile::load(const std::string& name) const {
  info(name);  // throws when absent
  // The archive is reopened per load: NpzFile stays copyable and safe to share across threads,
  // and reading the central directory is cheap next to the array data.
  ZipPtr z = open_zip(path_);
  const zip_int64_t idx = zip_name_locate(z.get(), (name + ".npy").c_str(), 0);
  if (idx < 0) throw LoadError(path_, "member '" + name + ".npy' vanished since the file was opened");
  ZipFilePtr f(zip_fopen_index(z.get(), static_cast<zip_uint64_t>(idx), 0));
  if (!f) throw LoadError(path_, "member '" + name + "': cannot open (libzip: " + zip_strerror(z.get()) + ")");
  NpyInfo info;
  read_npy_header(path_, name, f.get(), &info);
  torch::Dtype dt;
  int64_t bytes;
  descr_dtype(info.descr, &dt, &bytes);
  // A Fortran-order array's bytes are the C-order bytes of its transpose (reversed shape). Gemma
  // Scope's params.npz store W_enc and W_dec that way, so they are read transposed and made C order.
  std::vector<int64_t> disk_shape = info.shape;
  if (info.fortran_order) std::reverse(disk_shape.begin(), disk_shape.end());
  torch::Tensor t = torch::empty(disk_shape, torch::TensorOptions().dtype(dt));  // (shape as on disk)
  const uint64_t n = byte_count(info);
  if (n > 0 && !read_exact(f.get(), t.data_ptr(), n))
    throw LoadError(path_, "member '" + name + "': short or corrupt data, wanted " + std::to_string(n) +
                               " bytes (libzip: " + zip_file_error(f.get()) + ")");
  // One more read reaches the end of the member, where libzip checks the CRC.
  char extra;
  if (zip_fread(f.get(), &extra, 1) != 0)
    throw LoadError(path_, "member '" + name + "': corrupt data (libzip: " + zip_file_error(f.get()) + ")");
  if (info.fortran_order && t.dim() > 1) {
    std::vector<int64_t> rev(static_cast<size_t>(t.dim()));
    for (int64_t d = 0; d < t.dim(); ++d) rev[static_cast<size_t>(d)] = t.dim() - 1 - d;
    t = t.permute(rev).contiguous();  // (info.shape), C order
  }
  return t;
}

}  // namespace sfc::io
