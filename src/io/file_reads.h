// POSIX reads shared by the readers of this stage (safetensors, .npz): an owned descriptor, pread
// of an exact length, and the huge-page advice that makes the first writes into a fresh tensor
// cheap. Private to src/io.
#pragma once

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <filesystem>

namespace sfc::io::detail {

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
inline bool pread_all(int fd, void* dst, uint64_t n, uint64_t offset) {
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

// Asks for transparent huge pages on the 2 MiB-aligned part of [p, p + n), before anything is
// written there. Filling fresh memory costs one page fault per page; with 4 KiB pages that fault,
// not the copy, dominates loading a model (a 5 GB bf16 Gemma-2-2B: 1.3 M faults; on the
// development VM the fill ran at 0.2 GB/s with 4 KiB pages and 3.5 GB/s with 2 MiB ones). Only
// advice: ignored where THP is off, harmless on memory already touched.
inline void advise_huge_pages(void* p, uint64_t n) {
#ifdef MADV_HUGEPAGE
  constexpr uintptr_t kHuge = uintptr_t{2} << 20;
  const auto begin = (reinterpret_cast<uintptr_t>(p) + kHuge - 1) & ~(kHuge - 1);
  const auto end = (reinterpret_cast<uintptr_t>(p) + n) & ~(kHuge - 1);
  if (end > begin) ::madvise(reinterpret_cast<void*>(begin), end - begin, MADV_HUGEPAGE);
#else
  (void)p;
  (void)n;
#endif
}

}  // namespace sfc::io::detail
