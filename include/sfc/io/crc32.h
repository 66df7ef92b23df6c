// CRC-32 as zip, zlib and PNG define it (reflected polynomial 0xEDB88320), fast enough to check a
// member of several hundred MB while reading it: carry-less multiply folding (PCLMULQDQ, Intel's
// "Fast CRC Computation for Generic Polynomials Using PCLMULQDQ", as in Chromium's and Linux's
// crc32) where the CPU has it, slicing-by-8 tables elsewhere. Header-only; no zlib needed.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define SFC_CRC32_PCLMUL 1
#endif

namespace sfc::io {
namespace crc32_detail {

// kTable[k][b]: the CRC register after feeding byte b followed by k zero bytes.
inline const std::array<std::array<uint32_t, 256>, 8>& tables() {
  static const auto kTables = [] {
    std::array<std::array<uint32_t, 256>, 8> t{};
    for (uint32_t b = 0; b < 256; ++b) {
      uint32_t c = b;
      for (int k = 0; k < 8; ++k) c = (c >> 1) ^ (0xEDB88320u & (0u - (c & 1u)));
      t[0][b] = c;
    }
    for (uint32_t b = 0; b < 256; ++b)
      for (size_t k = 1; k < 8; ++k) t[k][b] = (t[k - 1][b] >> 8) ^ t[0][t[k - 1][b] & 0xFF];
    return t;
  }();
  return kTables;
}

// The raw register (no pre/post inversion) after `n` bytes, 8 at a time.
inline uint32_t update_tables(uint32_t reg, const unsigned char* p, size_t n) {
  const auto& t = tables();
  for (; n >= 8; p += 8, n -= 8) {
    uint32_t lo, hi;
    std::memcpy(&lo, p, 4);  // little-endian hosts only (x86, arm64), as everything here
    std::memcpy(&hi, p + 4, 4);
    lo ^= reg;
    reg = t[7][lo & 0xFF] ^ t[6][(lo >> 8) & 0xFF] ^ t[5][(lo >> 16) & 0xFF] ^ t[4][lo >> 24] ^
          t[3][hi & 0xFF] ^ t[2][(hi >> 8) & 0xFF] ^ t[1][(hi >> 16) & 0xFF] ^ t[0][hi >> 24];
  }
  for (; n > 0; ++p, --n) reg = (reg >> 8) ^ t[0][(reg ^ *p) & 0xFF];
  return reg;
}

#ifdef SFC_CRC32_PCLMUL
#define SFC_CRC32_TARGET __attribute__((target("pclmul,sse4.1")))
SFC_CRC32_TARGET inline __m128i load16(const unsigned char* q) {
  return _mm_loadu_si128(reinterpret_cast<const __m128i*>(q));
}
// x·k, both 64-bit halves with their constants, plus next: one fold step.
SFC_CRC32_TARGET inline __m128i fold16(__m128i x, __m128i k, __m128i next) {
  return _mm_xor_si128(_mm_xor_si128(_mm_clmulepi64_si128(x, k, 0x11), _mm_clmulepi64_si128(x, k, 0x00)), next);
}

// The raw register after `n` bytes, n ≥ 64 and a multiple of 16: four 128-bit lanes folded 64
// bytes at a time, folded into one, then reduced to 32 bits (Barrett). Constants are the
// bit-reflected x^k mod P(x) of the paper (k1..k5) and P(x), μ for the reduction.
SFC_CRC32_TARGET inline uint32_t update_pclmul(uint32_t reg, const unsigned char* p, size_t n) {
  alignas(16) static const uint64_t k1k2[2] = {0x0154442bd4, 0x01c6e41596};
  alignas(16) static const uint64_t k3k4[2] = {0x01751997d0, 0x00ccaa009e};
  alignas(16) static const uint64_t k5k0[2] = {0x0163cd6124, 0x0000000000};
  alignas(16) static const uint64_t poly[2] = {0x01db710641, 0x01f7011641};
  __m128i x1 = load16(p), x2 = load16(p + 16), x3 = load16(p + 32), x4 = load16(p + 48);
  x1 = _mm_xor_si128(x1, _mm_cvtsi32_si128(static_cast<int>(reg)));
  __m128i k = _mm_load_si128(reinterpret_cast<const __m128i*>(k1k2));
  p += 64;
  n -= 64;
  for (; n >= 64; p += 64, n -= 64) {
    x1 = fold16(x1, k, load16(p));
    x2 = fold16(x2, k, load16(p + 16));
    x3 = fold16(x3, k, load16(p + 32));
    x4 = fold16(x4, k, load16(p + 48));
  }
  k = _mm_load_si128(reinterpret_cast<const __m128i*>(k3k4));
  x1 = fold16(x1, k, x2);
  x1 = fold16(x1, k, x3);
  x1 = fold16(x1, k, x4);
  for (; n >= 16; p += 16, n -= 16) x1 = fold16(x1, k, load16(p));
  // 128 -> 64 bits.
  __m128i x0 = _mm_clmulepi64_si128(x1, k, 0x10);
  const __m128i low32 = _mm_setr_epi32(~0, 0, ~0, 0);
  x1 = _mm_xor_si128(_mm_srli_si128(x1, 8), x0);
  k = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(k5k0));
  x0 = _mm_srli_si128(x1, 4);
  x1 = _mm_xor_si128(_mm_clmulepi64_si128(_mm_and_si128(x1, low32), k, 0x00), x0);
  // Barrett reduction to 32 bits.
  k = _mm_load_si128(reinterpret_cast<const __m128i*>(poly));
  x0 = _mm_clmulepi64_si128(_mm_and_si128(x1, low32), k, 0x10);
  x0 = _mm_clmulepi64_si128(_mm_and_si128(x0, low32), k, 0x00);
  x1 = _mm_xor_si128(x1, x0);
  return static_cast<uint32_t>(_mm_extract_epi32(x1, 1));
}
#undef SFC_CRC32_TARGET

inline bool have_pclmul() {
  static const bool kHave = __builtin_cpu_supports("pclmul") && __builtin_cpu_supports("sse4.1");
  return kHave;
}
#endif

}  // namespace crc32_detail

// CRC-32 of n more bytes at p, continuing from `crc` (0 to start), as zlib's crc32(crc, p, n).
inline uint32_t crc32_update(uint32_t crc, const void* data, size_t n) {
  const auto* p = static_cast<const unsigned char*>(data);
  uint32_t reg = ~crc;
#ifdef SFC_CRC32_PCLMUL
  if (n >= 64 && crc32_detail::have_pclmul()) {
    const size_t bulk = n & ~size_t{15};
    reg = crc32_detail::update_pclmul(reg, p, bulk);
    p += bulk;
    n -= bulk;
  }
#endif
  return ~crc32_detail::update_tables(reg, p, n);
}

}  // namespace sfc::io
