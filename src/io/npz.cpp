// .npz reader: libzip opens and checks the archive and reads deflated members; stored members (what
// np.savez writes, Gemma Scope's params.npz included) are read here with pread straight into the
// tensor's storage in large reads, their CRC-32 checked on the way (a 16k-wide SAE is 300 MB; going
// through libzip's small buffers and zlib's crc ran at a few % of the disk's speed). .npy headers are
// parsed here (versions 1-3). Fortran-order arrays are accepted and returned in C order.
#include "sfc/io/npz.h"

#include <ATen/Parallel.h>
#include <sys/stat.h>
#include <zip.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include <algorithm>
#include <cctype>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "file_reads.h"
#include "sfc/core/error.h"
#include "sfc/core/shapes.h"
#include "sfc/io/crc32.h"

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

// The next n bytes of a member into dst; false on a short read. `why` says what went wrong.
using ReadFn = std::function<bool(void* dst, uint64_t n)>;

// Reads and parses the .npy header at the start of a member through `read`. Returns the header's
// total length in bytes (magic to end of padding). Throws LoadError naming the member; `why` is
// the reader's own account of a short first read.
uint64_t read_npy_header(const std::filesystem::path& path, const std::string& member, const ReadFn& read,
                         const std::function<std::string()>& why, NpyInfo* info) {
  auto bad = [&](const std::string& what) { return LoadError(path, "member '" + member + "': " + what); };
  unsigned char pre[8];
  if (!read(pre, 8)) throw bad("too short for a .npy header (" + why() + ")");
  if (std::memcmp(pre, kNpyMagic, kNpyMagicLen) != 0) throw bad("not a .npy array (bad magic)");
  const int major = pre[6], minor = pre[7];
  uint32_t header_len = 0;
  uint64_t prefix = 0;
  if (major == 1) {
    unsigned char len[2];
    if (!read(len, 2)) throw bad("truncated .npy header");
    header_len = static_cast<uint32_t>(len[0] | (len[1] << 8));
    prefix = 10;
  } else if (major == 2 || major == 3) {  // 3 only differs by allowing UTF-8 in the header
    unsigned char len[4];
    if (!read(len, 4)) throw bad("truncated .npy header");
    header_len = static_cast<uint32_t>(len[0]) | (static_cast<uint32_t>(len[1]) << 8) |
                 (static_cast<uint32_t>(len[2]) << 16) | (static_cast<uint32_t>(len[3]) << 24);
    prefix = 12;
  } else {
    throw bad(".npy version " + std::to_string(major) + "." + std::to_string(minor) +
              " not supported (expected 1.x, 2.x or 3.x)");
  }
  if (header_len > kMaxNpyHeader) throw bad(".npy header length " + std::to_string(header_len) + " is implausible");
  std::string text(header_len, '\0');
  if (!read(text.data(), header_len)) throw bad("truncated .npy header");
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

uint64_t read_npy_header(const std::filesystem::path& path, const std::string& member, zip_file_t* f,
                         NpyInfo* info) {
  return read_npy_header(
      path, member, [f](void* dst, uint64_t n) { return read_exact(f, dst, n); },
      [f] { return zip_file_error(f); }, info);
}

// ---------------------------------------------------------------------------------------------
// The zip central directory, read here only to find where each stored member's bytes start (libzip
// does not tell). libzip has already checked the archive; anything this reader does not follow
// just sends the member down libzip's path.

uint16_t le16(const unsigned char* p) { return static_cast<uint16_t>(p[0] | (p[1] << 8)); }
uint32_t le32(const unsigned char* p) {
  return static_cast<uint32_t>(p[0]) | (static_cast<uint32_t>(p[1]) << 8) | (static_cast<uint32_t>(p[2]) << 16) |
         (static_cast<uint32_t>(p[3]) << 24);
}
uint64_t le64(const unsigned char* p) { return le32(p) | (static_cast<uint64_t>(le32(p + 4)) << 32); }

struct CentralEntry {
  uint16_t flags = 0, method = 0;
  uint32_t crc = 0;
  uint64_t compressed = 0, size = 0, local_header = 0;
};

// name -> entry, or empty when the directory is not what this reader expects.
std::map<std::string, CentralEntry> read_central_directory(int fd, uint64_t file_size) {
  constexpr uint32_t kEocd = 0x06054b50, kZip64Locator = 0x07064b50, kZip64Eocd = 0x06064b50, kEntry = 0x02014b50;
  // End of central directory: 22 bytes plus a comment of up to 64 KiB, at the end of the file.
  const uint64_t tail_len = std::min<uint64_t>(file_size, 22 + 0xFFFF);
  std::string tail(tail_len, '\0');
  if (tail_len < 22 || !detail::pread_all(fd, tail.data(), tail_len, file_size - tail_len)) return {};
  const auto* t = reinterpret_cast<const unsigned char*>(tail.data());
  int64_t at = static_cast<int64_t>(tail_len) - 22;
  while (at >= 0 && le32(t + at) != kEocd) --at;
  if (at < 0) return {};
  const unsigned char* eocd = t + at;
  uint64_t n_entries = le16(eocd + 10), cd_size = le32(eocd + 12), cd_offset = le32(eocd + 16);
  if (n_entries == 0xFFFF || cd_size == 0xFFFFFFFF || cd_offset == 0xFFFFFFFF) {  // zip64
    const uint64_t eocd_pos = file_size - tail_len + static_cast<uint64_t>(at);
    unsigned char locator[20], z64[56];
    if (eocd_pos < 20 || !detail::pread_all(fd, locator, 20, eocd_pos - 20) || le32(locator) != kZip64Locator)
      return {};
    if (!detail::pread_all(fd, z64, 56, le64(locator + 8)) || le32(z64) != kZip64Eocd) return {};
    n_entries = le64(z64 + 32);
    cd_size = le64(z64 + 40);
    cd_offset = le64(z64 + 48);
  }
  if (cd_offset > file_size || cd_size > file_size - cd_offset || cd_size > (uint64_t{1} << 30)) return {};
  std::string cd(cd_size, '\0');
  if (!detail::pread_all(fd, cd.data(), cd_size, cd_offset)) return {};
  const auto* c = reinterpret_cast<const unsigned char*>(cd.data());
  std::map<std::string, CentralEntry> out;
  uint64_t pos = 0;
  for (uint64_t i = 0; i < n_entries; ++i) {
    if (pos + 46 > cd_size || le32(c + pos) != kEntry) return {};
    const unsigned char* e = c + pos;
    CentralEntry entry;
    entry.flags = le16(e + 8);
    entry.method = le16(e + 10);
    entry.crc = le32(e + 16);
    entry.compressed = le32(e + 20);
    entry.size = le32(e + 24);
    entry.local_header = le32(e + 42);
    const uint64_t name_len = le16(e + 28), extra_len = le16(e + 30), comment_len = le16(e + 32);
    if (pos + 46 + name_len + extra_len + comment_len > cd_size) return {};
    std::string name(reinterpret_cast<const char*>(e + 46), name_len);
    // zip64 extra field: the 64-bit values of exactly the fields saturated above, in this order.
    for (uint64_t x = 0; x + 4 <= extra_len;) {
      const unsigned char* f = e + 46 + name_len + x;
      const uint16_t tag = le16(f), len = le16(f + 2);
      if (x + 4 + len > extra_len) return {};
      if (tag == 0x0001) {
        uint64_t k = 4;
        auto take = [&](uint64_t* v) {
          if (k + 8 > 4u + len) return false;
          *v = le64(f + k);
          k += 8;
          return true;
        };
        if (entry.size == 0xFFFFFFFF && !take(&entry.size)) return {};
        if (entry.compressed == 0xFFFFFFFF && !take(&entry.compressed)) return {};
        if (entry.local_header == 0xFFFFFFFF && !take(&entry.local_header)) return {};
      }
      x += 4 + len;
    }
    out[name] = entry;
    pos += 46 + name_len + extra_len + comment_len;
  }
  return out;
}

// dst(i, j) = src(j, i) for src (k, n) C order and dst rows of stride ld: a block of rows read
// from disk becomes a block of columns. 32×32 tiles keep both sides in cache (4-byte elements, all
// of Gemma Scope's, in 4×4 SSE blocks inside them); rows of dst split over threads.
template <class T>
void transpose_tile(const T* src, int64_t n, T* dst, int64_t ld, int64_t i0, int64_t i1, int64_t j0, int64_t j1) {
  for (int64_t i = i0; i < i1; ++i)
    for (int64_t j = j0; j < j1; ++j) dst[i * ld + j] = src[j * n + i];
}

#ifdef __SSE2__
template <>
void transpose_tile(const uint32_t* src, int64_t n, uint32_t* dst, int64_t ld, int64_t i0, int64_t i1, int64_t j0,
                    int64_t j1) {
  const int64_t i4 = i0 + (i1 - i0) / 4 * 4, j4 = j0 + (j1 - j0) / 4 * 4;
  for (int64_t i = i0; i < i4; i += 4)
    for (int64_t j = j0; j < j4; j += 4) {
      auto row = [&](int64_t r) { return _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + (j + r) * n + i)); };
      const __m128i a = row(0), b = row(1), c = row(2), d = row(3);
      const __m128i ab_lo = _mm_unpacklo_epi32(a, b), ab_hi = _mm_unpackhi_epi32(a, b);
      const __m128i cd_lo = _mm_unpacklo_epi32(c, d), cd_hi = _mm_unpackhi_epi32(c, d);
      auto put = [&](int64_t r, __m128i v) { _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + (i + r) * ld + j), v); };
      put(0, _mm_unpacklo_epi64(ab_lo, cd_lo));
      put(1, _mm_unpackhi_epi64(ab_lo, cd_lo));
      put(2, _mm_unpacklo_epi64(ab_hi, cd_hi));
      put(3, _mm_unpackhi_epi64(ab_hi, cd_hi));
    }
  for (int64_t i = i0; i < i1; ++i)  // the edges the 4×4 blocks leave
    for (int64_t j = (i < i4 ? j4 : j0); j < j1; ++j) dst[i * ld + j] = src[j * n + i];
}
#endif

template <class T>
void transpose_into(const T* src, int64_t k, int64_t n, T* dst, int64_t ld) {
  constexpr int64_t kTile = 32;
  at::parallel_for(0, (n + kTile - 1) / kTile, 1, [&](int64_t begin, int64_t end) {
    for (int64_t i0 = begin * kTile; i0 < std::min(n, end * kTile); i0 += kTile)
      for (int64_t j0 = 0; j0 < k; j0 += kTile)
        transpose_tile(src, n, dst, ld, i0, std::min(n, i0 + kTile), j0, std::min(k, j0 + kTile));
  });
}

void transpose_into(const void* src, int64_t k, int64_t n, void* dst, int64_t ld, int64_t elem_bytes) {
  switch (elem_bytes) {
    case 1: return transpose_into(static_cast<const uint8_t*>(src), k, n, static_cast<uint8_t*>(dst), ld);
    case 2: return transpose_into(static_cast<const uint16_t*>(src), k, n, static_cast<uint16_t*>(dst), ld);
    case 4: return transpose_into(static_cast<const uint32_t*>(src), k, n, static_cast<uint32_t*>(dst), ld);
    default: return transpose_into(static_cast<const uint64_t*>(src), k, n, static_cast<uint64_t*>(dst), ld);
  }
}

// Reads a list of pieces of a file in order on its own thread, at most `ahead` pieces ahead of the
// consumer, which calls wait(i) (false: piece i could not be read) and then release(i) when it no
// longer needs piece i's memory. The destructor stops the thread before anything is freed.
class ReadAhead {
 public:
  struct Piece {
    char* dst;
    uint64_t len, offset;
  };
  ReadAhead(int fd, std::vector<Piece> pieces, int ahead) : pieces_(std::move(pieces)), ahead_(size_t(ahead)) {
    thread_ = std::thread([this, fd] { run(fd); });
  }
  ~ReadAhead() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stop_ = true;
    }
    changed_.notify_all();
    thread_.join();
  }
  ReadAhead(const ReadAhead&) = delete;
  ReadAhead& operator=(const ReadAhead&) = delete;

  bool wait(size_t i) {
    std::unique_lock<std::mutex> lock(mutex_);
    changed_.wait(lock, [&] { return read_ > i || failed_; });
    return read_ > i;
  }
  void release(size_t i) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      released_ = i + 1;
    }
    changed_.notify_all();
  }

 private:
  void run(int fd) {
    for (size_t i = 0; i < pieces_.size(); ++i) {
      {
        std::unique_lock<std::mutex> lock(mutex_);
        changed_.wait(lock, [&] { return stop_ || i < released_ + ahead_; });
        if (stop_) return;
      }
      const Piece& p = pieces_[i];
      const bool ok = detail::pread_all(fd, p.dst, p.len, p.offset);
      {
        std::lock_guard<std::mutex> lock(mutex_);
        if (ok) read_ = i + 1;
        else failed_ = true;
      }
      changed_.notify_all();
      if (!ok) return;
    }
  }

  const std::vector<Piece> pieces_;
  const size_t ahead_;
  std::mutex mutex_;
  std::condition_variable changed_;
  size_t read_ = 0, released_ = 0;  // pieces [0, read_) are in; [0, released_) are done with
  bool failed_ = false, stop_ = false;
  std::thread thread_;
};

// The bytes of a Fortran-order array read as the C-order array of reversed shape -> the array in
// C order (its transpose).
torch::Tensor c_order(const torch::Tensor& t) {
  if (t.dim() < 2) return t;
  std::vector<int64_t> rev(static_cast<size_t>(t.dim()));
  for (int64_t d = 0; d < t.dim(); ++d) rev[static_cast<size_t>(d)] = t.dim() - 1 - d;
  return t.permute(rev).contiguous();  // (info.shape), C order
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
  // Where the stored members' bytes lie, for load(): from our own reading of the directory,
  // each checked against libzip's view of the member below.
  std::map<std::string, CentralEntry> directory;
  uint64_t file_size = 0;
  detail::Fd fd(path_);
  struct stat file_stat {};
  if (fd.get() >= 0 && ::fstat(fd.get(), &file_stat) == 0) {
    file_size = static_cast<uint64_t>(file_stat.st_size);
    directory = read_central_directory(fd.get(), file_size);
  }
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
    // A stored, unencrypted member whose directory entry agrees with libzip in everything:
    // load() reads it directly from the offset its local header gives.
    auto dir = directory.find(st.name);
    if (dir != directory.end() && dir->second.method == 0 && (dir->second.flags & 1) == 0 &&
        (st.valid & ZIP_STAT_COMP_METHOD) && st.comp_method == ZIP_CM_STORE && (st.valid & ZIP_STAT_SIZE) &&
        st.size == want && (st.valid & ZIP_STAT_CRC) && st.crc == dir->second.crc && dir->second.size == want &&
        dir->second.compressed == want && (!(st.valid & ZIP_STAT_ENCRYPTION_METHOD) || st.encryption_method == ZIP_EM_NONE)) {
      unsigned char local[30];
      const uint64_t at = dir->second.local_header;
      if (at + 30 <= file_size && detail::pread_all(fd.get(), local, 30, at) && le32(local) == 0x04034b50 &&
          le16(local + 8) == 0) {
        const uint64_t data = at + 30 + le16(local + 26) + le16(local + 28);
        if (data <= file_size && want <= file_size - data) stored_.emplace(member, StoredMember{data, want, header, dir->second.crc});
      }
    }
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
  const NpyInfo& known = info(name);  // throws when absent
  auto stored = stored_.find(name);
  if (stored != stored_.end()) return read_stored(name, known, stored->second);  // C order already
  torch::Tensor t = read_with_libzip(name);
  return known.fortran_order ? c_order(t) : t;
}

// A Fortran-order array's bytes are the C-order bytes of its transpose (reversed shape). Gemma
// Scope's params.npz store W_enc and W_dec that way, so they are read transposed and made C order:
// here piece by piece as they are read (a 2-D array), in read_with_libzip's caller otherwise.
torch::Tensor NpzFile::read_stored(const std::string& name, const NpyInfo& known, const StoredMember& place) const {
  auto fail = [&](const std::string& why) { return LoadError(path_, "member '" + name + "': " + why); };
  detail::Fd fd(path_);
  if (fd.get() < 0) throw fail(std::string("cannot open (") + std::strerror(errno) + ")");
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0 || static_cast<uint64_t>(st.st_size) < place.offset + place.size)
    throw fail("short or corrupt data, wanted " + std::to_string(place.size) + " bytes at offset " +
               std::to_string(place.offset) + " (file truncated since it was opened?)");
  // The header again, through the running CRC: the member is checked whole, header and data.
  uint32_t crc = 0;
  uint64_t at = place.offset;
  NpyInfo info;
  const uint64_t header = read_npy_header(
      path_, name,
      [&](void* dst, uint64_t n) {
        if (!detail::pread_all(fd.get(), dst, n, at)) return false;
        crc = crc32_update(crc, dst, n);
        at += n;
        return true;
      },
      [] { return std::string("file truncated?"); }, &info);
  if (header != place.npy_header || info.descr != known.descr || info.shape != known.shape ||
      info.fortran_order != known.fortran_order)
    throw fail(".npy header changed since the file was opened");
  torch::Dtype dt;
  int64_t bytes;
  descr_dtype(info.descr, &dt, &bytes);
  const uint64_t n = place.size - header;
  // 2-D Fortran order: disk row r (info.shape[0] elements) is column r of the result, transposed
  // into place from a small buffer while it is in cache. Anything else: the bytes as they are.
  const bool transpose = info.fortran_order && info.shape.size() == 2 && n > 0;
  std::vector<int64_t> disk_shape = info.shape;
  if (info.fortran_order) std::reverse(disk_shape.begin(), disk_shape.end());
  torch::Tensor t = torch::empty(transpose ? info.shape : disk_shape, torch::TensorOptions().dtype(dt));
  auto* out = static_cast<char*>(t.data_ptr());
  detail::advise_huge_pages(out, n);
  const uint64_t row_bytes = transpose ? static_cast<uint64_t>(info.shape[0] * bytes) : 1;
  // Pieces of whole disk rows when transposing (about 1 MiB: the buffer stays in cache), else 8 MiB
  // straight into the tensor.
  const uint64_t piece = transpose ? std::max<uint64_t>(1, (1u << 20) / row_bytes) * row_bytes : (8u << 20);
  const int slots = transpose ? 3 : 4;
  torch::Tensor buffer;  // transposing: `slots` pieces, reused in turn
  if (transpose) buffer = torch::empty({static_cast<int64_t>(slots * std::min(piece, n))}, torch::kUInt8);
  std::vector<ReadAhead::Piece> pieces;
  for (uint64_t done = 0; done < n; done += piece) {
    const uint64_t len = std::min(piece, n - done);
    char* dst = transpose ? static_cast<char*>(buffer.data_ptr()) + (pieces.size() % slots) * piece : out + done;
    pieces.push_back({dst, len, at + done});
  }
  // A second thread reads ahead while this one checksums (and transposes) what has arrived, so
  // the disk and the CPU work at the same time.
  ReadAhead reader(fd.get(), pieces, slots);
  uint64_t done = 0;
  for (size_t i = 0; i < pieces.size(); ++i) {
    const auto& p = pieces[i];
    if (!reader.wait(i)) throw fail("short or corrupt data, wanted " + std::to_string(n) + " bytes (file truncated?)");
    crc = crc32_update(crc, p.dst, p.len);
    if (transpose) {
      const int64_t first = static_cast<int64_t>(done / row_bytes), rows = static_cast<int64_t>(p.len / row_bytes);
      // (rows, shape[0]) as read -> columns [first, first + rows) of t (shape[0], shape[1])
      transpose_into(p.dst, rows, info.shape[0], out + first * bytes, info.shape[1], bytes);
    }
    reader.release(i);
    done += p.len;
  }
  if (crc != place.crc) {
    char msg[96];
    std::snprintf(msg, sizeof msg, "corrupt data (CRC-32 %08x, the archive says %08x)", crc, place.crc);
    throw fail(msg);
  }
  return info.fortran_order && !transpose ? c_order(t) : t;
}

torch::Tensor NpzFile::read_with_libzip(const std::string& name) const {
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
  return t;
}

}  // namespace sfc::io
