// .npz reader: arrays written by numpy itself (stored, deflated, zip64, .npy versions 1-3), the
// Fortran-order arrays, the failures (truncated, big-endian, unsupported dtype, short member), and
// the fixtures.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cstdlib>
#include <fstream>

#include "sfc/core/error.h"
#include "sfc/io/npz.h"
#include "support/expect_load_error.h"
#include "support/test_support.h"

namespace {

namespace fs = std::filesystem;
using sfc::io::NpzFile;
using sfc::test::TempDir;
using sfc::test::throws_load_error;

// Makes every test archive with numpy, so the reader is checked against the real writer.
const char* kMakeArchives = R"PY(
import io, sys, zipfile
import numpy as np
out = sys.argv[1]
arrays = {
    'f4': (np.arange(6, dtype='<f4').reshape(2, 3) * 0.5 - 1),
    'f8': np.array([1.5, -2.25, 1e300], dtype='<f8'),
    'f2': np.array([0.5, -3.0, 65504.0], dtype='<f2'),
    'i8': np.array([[-(2**40), 3], [7, 2**62]], dtype='<i8'),
    'i4': np.arange(-3, 3, dtype='<i4'),
    'i2': np.array([-300, 300], dtype='<i2'),
    'i1': np.array([-7, 7], dtype='i1'),
    'u1': np.array([0, 255], dtype='u1'),
    'b1': np.array([True, False, True]),
    'scalar': np.array(3.25, dtype='<f4'),
    'empty': np.zeros((0, 4), dtype='<f4'),
}
np.savez(out + '/stored.npz', **arrays)
np.savez_compressed(out + '/deflated.npz', **arrays)

def npy(arr, version=None):
    buf = io.BytesIO()
    np.lib.format.write_array(buf, arr, version=version, allow_pickle=False)
    return buf.getvalue()

big = np.arange(12, dtype='<f4').reshape(3, 4)
with zipfile.ZipFile(out + '/versions.npz', 'w', compression=zipfile.ZIP_DEFLATED) as z:
    z.writestr('v1.npy', npy(big, (1, 0)))
    z.writestr('v2.npy', npy(big, (2, 0)))
    z.writestr('v3.npy', npy(big, (3, 0)))
with zipfile.ZipFile(out + '/zip64.npz', 'w', compression=zipfile.ZIP_STORED, allowZip64=True) as z:
    with z.open('a.npy', 'w', force_zip64=True) as f:
        f.write(npy(big))
with zipfile.ZipFile(out + '/zip64_deflated.npz', 'w', compression=zipfile.ZIP_DEFLATED, allowZip64=True) as z:
    with z.open('a.npy', 'w', force_zip64=True) as f:
        f.write(npy(big))
np.savez(out + '/fortran.npz', a=np.asfortranarray(big),
         c=np.asfortranarray(np.arange(24, dtype='<f8').reshape(2, 3, 4)))
np.savez(out + '/bigendian.npz', a=big.astype('>f4'))
np.savez(out + '/complex.npz', a=np.zeros(3, dtype='<c8'))
np.savez(out + '/uint16.npz', a=np.zeros(3, dtype='<u2'))
with zipfile.ZipFile(out + '/short.npz', 'w') as z:
    z.writestr('a.npy', npy(big)[:-8])  # header says 48 bytes of data, member has 40
with zipfile.ZipFile(out + '/badmagic.npz', 'w') as z:
    z.writestr('a.npy', b'NOTNUMPY' + bytes(40))
)PY";

// Creates the archives once per test binary; empty path when python3/numpy is unavailable, which
// fails the tests that need them (scripts/setup-debian.sh installs both).
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

#define NEED_ARCHIVES()                                                                \
  ASSERT_FALSE(archives().empty()) << "python3 with numpy (Debian python3-numpy) is needed to make .npz files"

void check_sample_arrays(const NpzFile& f) {
  EXPECT_EQ(f.names(), (std::vector<std::string>{"b1", "empty", "f2", "f4", "f8", "i1", "i2", "i4", "i8",
                                                  "scalar", "u1"}));
  EXPECT_EQ(f.info("f4").descr, "<f4");
  EXPECT_EQ(f.info("f4").shape, (std::vector<int64_t>{2, 3}));
  EXPECT_TRUE(torch::equal(f.load("f4"), torch::arange(6, torch::kFloat32).reshape({2, 3}) * 0.5 - 1));
  EXPECT_TRUE(torch::equal(f.load("f8"), torch::tensor({1.5, -2.25, 1e300}, torch::kFloat64)));
  EXPECT_TRUE(torch::equal(f.load("f2"), torch::tensor({0.5, -3.0, 65504.0}).to(torch::kFloat16)));
  EXPECT_TRUE(torch::equal(f.load("i8"), torch::tensor({int64_t{-(1LL << 40)}, int64_t{3}, int64_t{7}, int64_t{1LL << 62}},
                                                       torch::kInt64).reshape({2, 2})));
  EXPECT_TRUE(torch::equal(f.load("i4"), torch::arange(-3, 3, torch::kInt32)));
  EXPECT_TRUE(torch::equal(f.load("i2"), torch::tensor({-300, 300}, torch::kInt16)));
  EXPECT_TRUE(torch::equal(f.load("i1"), torch::tensor({-7, 7}, torch::kInt8)));
  EXPECT_TRUE(torch::equal(f.load("u1"), torch::tensor({0, 255}, torch::kUInt8)));
  EXPECT_TRUE(torch::equal(f.load("b1"), torch::tensor({true, false, true}, torch::kBool)));
  auto s = f.load("scalar");
  EXPECT_EQ(s.dim(), 0);
  EXPECT_EQ(s.item<float>(), 3.25f);
  EXPECT_EQ(f.load("empty").sizes(), (std::vector<int64_t>{0, 4}));
}

TEST(Npz, StoredMembers) {
  NEED_ARCHIVES();
  check_sample_arrays(NpzFile(archives() / "stored.npz"));
}

TEST(Npz, DeflatedMembers) {
  NEED_ARCHIVES();
  check_sample_arrays(NpzFile(archives() / "deflated.npz"));
}

TEST(Npz, NpyVersions1To3) {
  NEED_ARCHIVES();
  NpzFile f(archives() / "versions.npz");
  const auto want = torch::arange(12, torch::kFloat32).reshape({3, 4});
  for (const char* v : {"v1", "v2", "v3"}) EXPECT_TRUE(torch::equal(f.load(v), want)) << v;
}

TEST(Npz, Zip64) {
  NEED_ARCHIVES();
  const auto want = torch::arange(12, torch::kFloat32).reshape({3, 4});
  EXPECT_TRUE(torch::equal(NpzFile(archives() / "zip64.npz").load("a"), want));
  EXPECT_TRUE(torch::equal(NpzFile(archives() / "zip64_deflated.npz").load("a"), want));
}

TEST(Npz, TruncatedArchive) {
  // Cutting a real archive in half loses the central directory at its end.
  TempDir tmp;
  const fs::path src = sfc::test::tiny_dir() / "saes/gemma-scope-tiny-pt-res/layer_0/width_112/average_l0_29/params.npz";
  std::ifstream in(src, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  ASSERT_GT(bytes.size(), 1000u);
  std::ofstream(tmp / "half.npz", std::ios::binary) << bytes.substr(0, bytes.size() / 2);
  EXPECT_TRUE(throws_load_error([&] { NpzFile f(tmp / "half.npz"); }, tmp / "half.npz", {"truncated"}));
}

TEST(Npz, NotAZip) {
  TempDir tmp;
  std::ofstream(tmp / "x.npz") << "this is not a zip archive at all";
  EXPECT_TRUE(throws_load_error([&] { NpzFile f(tmp / "x.npz"); }, tmp / "x.npz", {"not a readable .npz"}));
  EXPECT_TRUE(throws_load_error([&] { NpzFile f(tmp / "missing.npz"); }, tmp / "missing.npz", {"not found"}));
}

TEST(Npz, FortranOrderReadAsCOrder) {
  // Gemma Scope's params.npz (and the fixture's) store W_enc and W_dec in Fortran order.
  NEED_ARCHIVES();
  NpzFile f(archives() / "fortran.npz");
  EXPECT_TRUE(f.info("a").fortran_order);
  EXPECT_EQ(f.info("a").shape, (std::vector<int64_t>{3, 4}));
  auto a = f.load("a");
  EXPECT_TRUE(a.is_contiguous());
  EXPECT_TRUE(torch::equal(a, torch::arange(12, torch::kFloat32).reshape({3, 4})));
  auto c = f.load("c");  // (2, 3, 4) in Fortran order
  EXPECT_TRUE(torch::equal(c, torch::arange(24, torch::kFloat64).reshape({2, 3, 4})));
}

TEST(Npz, BigEndianRejected) {
  NEED_ARCHIVES();
  EXPECT_TRUE(throws_load_error([&] { NpzFile f(archives() / "bigendian.npz"); }, archives() / "bigendian.npz",
                                {"member 'a'", "'>f4'", "big-endian"}));
}

TEST(Npz, UnsupportedDtype) {
  NEED_ARCHIVES();
  EXPECT_TRUE(throws_load_error([&] { NpzFile f(archives() / "complex.npz"); }, archives() / "complex.npz",
                                {"member 'a'", "unsupported dtype '<c8'"}));
  EXPECT_TRUE(throws_load_error([&] { NpzFile f(archives() / "uint16.npz"); }, archives() / "uint16.npz",
                                {"unsupported dtype '<u2'"}));
}

TEST(Npz, ShortMember) {
  NEED_ARCHIVES();
  EXPECT_TRUE(throws_load_error([&] { NpzFile f(archives() / "short.npz"); }, archives() / "short.npz",
                                {"member 'a'", "[3, 4]", "the member has"}));
}

TEST(Npz, BadMagic) {
  NEED_ARCHIVES();
  EXPECT_TRUE(throws_load_error([&] { NpzFile f(archives() / "badmagic.npz"); }, archives() / "badmagic.npz",
                                {"member 'a'", "bad magic"}));
}

TEST(Npz, MissingArray) {
  NEED_ARCHIVES();
  NpzFile f(archives() / "stored.npz");
  EXPECT_FALSE(f.contains("nope"));
  EXPECT_TRUE(throws_load_error([&] { f.load("nope"); }, archives() / "stored.npz", {"no array 'nope'"}));
  EXPECT_TRUE(throws_load_error([&] { f.info("nope"); }, archives() / "stored.npz", {"no array 'nope'"}));
}

TEST(NpzFixture, ReferenceArchive) {
  NpzFile f(sfc::test::tiny_dir() / "reference.npz");
  EXPECT_EQ(f.names().size(), 265u);
  EXPECT_EQ(f.info("tokens_clean").descr, "<i8");
  auto tokens = f.load("tokens_clean");  // (B, T)
  EXPECT_EQ(tokens.sizes(), (std::vector<int64_t>{3, 12}));
  EXPECT_TRUE((tokens.select(1, 0) == 2).all().item<bool>());  // BOS at position 0
  auto z = f.load("clean.L0.z");  // (B, T, H, Dh)
  EXPECT_EQ(z.scalar_type(), torch::kFloat32);
  EXPECT_EQ(z.sizes(), (std::vector<int64_t>{3, 12, 4, 24}));
  EXPECT_TRUE(torch::isfinite(z).all().item<bool>());
  EXPECT_EQ(f.load("ig_alphas").scalar_type(), torch::kFloat64);
}

TEST(NpzFixture, GemmaScopeParams) {
  NpzFile f(sfc::test::tiny_dir() / "saes/gemma-scope-tiny-pt-att/layer_0/width_112/average_l0_27/params.npz");
  EXPECT_EQ(f.names(), (std::vector<std::string>{"W_dec", "W_enc", "b_dec", "b_enc", "threshold"}));
  EXPECT_EQ(f.load("W_enc").sizes(), (std::vector<int64_t>{96, 112}));
  EXPECT_TRUE(f.info("W_enc").fortran_order);  // as in real Gemma Scope files
  EXPECT_EQ(f.load("W_dec").sizes(), (std::vector<int64_t>{112, 96}));
}

}  // namespace
