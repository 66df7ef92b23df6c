// The .npz reader's own path for stored members (issue #15): large Fortran-order arrays transposed
// while read (several pieces, every element size, edges of the 4×4 blocks), the CRC-32 that
// catches a flipped bit, a file cut after it was opened, and the CRC-32 itself against its
// definition.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cstdlib>
#include <fstream>
#include <random>

#include "sfc/core/error.h"
#include "sfc/io/crc32.h"
#include "sfc/io/npz.h"
#include "support/expect_load_error.h"
#include "support/test_support.h"

namespace {

namespace fs = std::filesystem;
using sfc::io::NpzFile;
using sfc::test::TempDir;
using sfc::test::throws_load_error;

// Values are their own C-order index (mod 2^k), so any misplaced element shows.
const char* kMakeArchives = R"PY(
import sys
import numpy as np
out = sys.argv[1]
def arr(shape, dtype):
    return (np.arange(np.prod(shape), dtype=np.int64) % 100003).astype(dtype).reshape(shape)
big = {
    'f4': np.asfortranarray(arr((1001, 701), '<f4')),     # 2.8 MB: three pieces, odd sizes
    'f4_wide': np.asfortranarray(arr((37, 40000), '<f4')),  # many pieces, the three buffers reused
    'f8': np.asfortranarray(arr((333, 517), '<f8')),
    'f2': np.asfortranarray(arr((250, 1300), '<f2')),
    'i1': np.asfortranarray(arr((513, 2049), 'i1')),
    'c_order': arr((700, 900), '<f4'),                    # C order: straight into the tensor
    'fortran_3d': np.asfortranarray(arr((20, 30, 40), '<f4')),
    'empty': np.asfortranarray(np.zeros((0, 5), '<f4')),
}
np.savez(out + '/big.npz', **big)
np.savez_compressed(out + '/big_deflated.npz', **big)
)PY";

const fs::path& archives() {
  static TempDir dir;
  static const fs::path made = [] {
    const std::string python = SFC_PYTHON3;
    if (python.empty()) return fs::path();
    std::ofstream(dir / "make.py") << kMakeArchives;
    const std::string cmd = python + " " + (dir / "make.py").string() + " " + dir.path().string();
    return std::system(cmd.c_str()) == 0 ? dir.path() : fs::path();
  }();
  return made;
}

#define NEED_ARCHIVES() \
  ASSERT_FALSE(archives().empty()) << "python3 with numpy (Debian python3-numpy) is needed to make .npz files"

torch::Tensor expected(std::vector<int64_t> shape, torch::Dtype dtype) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return torch::remainder(torch::arange(n, torch::kInt64), 100003).to(dtype).reshape(shape);
}

std::string read_bytes(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

TEST(NpzStored, LargeFortranArraysComeBackInCOrder) {
  NEED_ARCHIVES();
  for (const char* file : {"big.npz", "big_deflated.npz"}) {  // the direct path and libzip's agree
    NpzFile f(archives() / file);
    auto check = [&](const std::string& name, std::vector<int64_t> shape, torch::Dtype dtype) {
      auto t = f.load(name);
      EXPECT_TRUE(t.is_contiguous()) << file << " " << name;
      EXPECT_EQ(t.scalar_type(), dtype) << file << " " << name;
      EXPECT_TRUE(torch::equal(t, expected(shape, dtype))) << file << " " << name;
    };
    check("f4", {1001, 701}, torch::kFloat32);
    check("f4_wide", {37, 40000}, torch::kFloat32);
    check("f8", {333, 517}, torch::kFloat64);
    check("f2", {250, 1300}, torch::kFloat16);
    check("i1", {513, 2049}, torch::kInt8);
    check("c_order", {700, 900}, torch::kFloat32);
    check("fortran_3d", {20, 30, 40}, torch::kFloat32);
    EXPECT_EQ(f.load("empty").sizes(), (std::vector<int64_t>{0, 5}));
  }
}

TEST(NpzStored, AFlippedBitFailsTheCrc) {
  NEED_ARCHIVES();
  TempDir tmp;
  std::string bytes = read_bytes(archives() / "big.npz");
  // One bit in the middle of the file: inside the data of some large member.
  bytes[bytes.size() / 2] ^= 0x10;
  std::ofstream(tmp / "flipped.npz", std::ios::binary) << bytes;
  NpzFile f(tmp / "flipped.npz");  // the directory and headers are intact
  int failed = 0;
  for (const auto& name : f.names()) {
    try {
      f.load(name);
    } catch (const sfc::LoadError& e) {
      ++failed;
      EXPECT_NE(std::string(e.what()).find("member '" + name + "': corrupt data (CRC-32"), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("the archive says"), std::string::npos) << e.what();
    }
  }
  EXPECT_EQ(failed, 1);
}

TEST(NpzStored, AFileCutAfterOpeningFailsWithAMessage) {
  NEED_ARCHIVES();
  TempDir tmp;
  fs::copy_file(archives() / "big.npz", tmp / "cut.npz");
  NpzFile f(tmp / "cut.npz");
  fs::resize_file(tmp / "cut.npz", fs::file_size(tmp / "cut.npz") / 2);
  bool some_failed = false;
  for (const auto& name : f.names()) {
    try {
      f.load(name);
    } catch (const sfc::LoadError& e) {
      some_failed = true;
      EXPECT_NE(std::string(e.what()).find("member '" + name + "'"), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("truncated"), std::string::npos) << e.what();
    }
  }
  EXPECT_TRUE(some_failed);
}

// The definition: one bit at a time, reflected polynomial 0xEDB88320.
uint32_t crc32_bitwise(const unsigned char* p, size_t n) {
  uint32_t c = 0xFFFFFFFFu;
  for (size_t i = 0; i < n; ++i) {
    c ^= p[i];
    for (int k = 0; k < 8; ++k) c = (c >> 1) ^ (0xEDB88320u & (0u - (c & 1u)));
  }
  return ~c;
}

TEST(Crc32, MatchesTheDefinitionAtEveryLengthAndAlignment) {
  EXPECT_EQ(sfc::io::crc32_update(0, "123456789", 9), 0xCBF43926u);  // the standard check value
  EXPECT_EQ(sfc::io::crc32_update(0, "", 0), 0u);
  std::mt19937 rng(7);
  std::vector<unsigned char> data(70000);
  for (auto& b : data) b = static_cast<unsigned char>(rng());
  for (size_t n : {1, 15, 16, 17, 63, 64, 65, 127, 128, 129, 1000, 4096, 65537}) {
    for (size_t offset : {0, 1, 3, 8, 13}) {
      const unsigned char* p = data.data() + offset;
      const uint32_t want = crc32_bitwise(p, n);
      EXPECT_EQ(sfc::io::crc32_update(0, p, n), want) << n << " at +" << offset;
      // In two parts, as the reader feeds it, and through the table path alone.
      const size_t cut = n / 3;
      EXPECT_EQ(sfc::io::crc32_update(sfc::io::crc32_update(0, p, cut), p + cut, n - cut), want) << n;
      EXPECT_EQ(~sfc::io::crc32_detail::update_tables(0xFFFFFFFFu, p, n), want) << n;
    }
  }
}

}  // namespace
