// .npz writer on libzip: .npy v1.0 members built in memory and stored (no compression) with a fixed
// modification time, so the same tensors always give the same bytes.
#include "sfc/io/npz_writer.h"

#include <zip.h>

#include <cstring>
#include <memory>

#include "sfc/core/error.h"

namespace sfc::io {
namespace {

// 1980-01-01, the zip epoch: any fixed time keeps archives reproducible.
constexpr time_t kFixedMtime = 315532800;

std::string zip_error_of(zip_t* z) { return zip_error_strerror(zip_get_error(z)); }

}  // namespace

std::string npy_bytes(const torch::Tensor& t) {
  const torch::Tensor c = t.detach().to(torch::kCPU, torch::kFloat32).contiguous();  // same shape, fp32
  std::string shape = "(";
  for (int64_t i = 0; i < c.dim(); ++i) shape += std::to_string(c.size(i)) + (c.dim() == 1 ? "," : i + 1 < c.dim() ? ", " : "");
  shape += ")";
  std::string header = "{'descr': '<f4', 'fortran_order': False, 'shape': " + shape + ", }";
  // magic (6) + version (2) + header length (2) + header + '\n', padded with spaces to 64 bytes.
  const size_t unpadded = 10 + header.size() + 1;
  header.append((64 - unpadded % 64) % 64, ' ');
  header += '\n';
  if (header.size() > 0xFFFF) throw Error("npy_bytes: header too long for .npy v1.0");
  static_assert(sizeof(float) == 4, "fp32");
  std::string out("\x93NUMPY\x01\x00", 8);
  out += static_cast<char>(header.size() & 0xFF);
  out += static_cast<char>((header.size() >> 8) & 0xFF);
  out += header;
  // The project only builds on little-endian hosts (x86-64, aarch64): the bytes are already "<f4".
  const size_t n_bytes = static_cast<size_t>(c.numel()) * sizeof(float);
  const size_t at = out.size();
  out.resize(at + n_bytes);
  if (n_bytes) std::memcpy(&out[at], c.data_ptr<float>(), n_bytes);
  return out;
}

void write_npz(const std::filesystem::path& path, const std::vector<std::pair<std::string, torch::Tensor>>& arrays) {
  // libzip keeps references to the source buffers until zip_close: hold the bytes until then.
  std::vector<std::string> buffers;
  buffers.reserve(arrays.size());
  int code = 0;
  zip_t* z = zip_open(path.c_str(), ZIP_CREATE | ZIP_TRUNCATE, &code);
  if (!z) {
    zip_error_t err;
    zip_error_init_with_code(&err, code);
    const std::string what = zip_error_strerror(&err);
    zip_error_fini(&err);
    throw LoadError(path, "cannot create .npz (libzip: " + what + ")");
  }
  auto fail = [&](const std::string& what) {
    const std::string msg = what + " (libzip: " + zip_error_of(z) + ")";
    zip_discard(z);
    throw LoadError(path, msg);
  };
  for (const auto& [name, tensor] : arrays) {
    buffers.push_back(npy_bytes(tensor));
    const std::string& bytes = buffers.back();
    zip_source_t* src = zip_source_buffer(z, bytes.data(), bytes.size(), 0);
    if (!src) fail("cannot buffer member '" + name + "'");
    const zip_int64_t index = zip_file_add(z, (name + ".npy").c_str(), src, ZIP_FL_ENC_UTF_8);
    if (index < 0) {
      zip_source_free(src);
      fail("cannot add member '" + name + "'");
    }
    if (zip_set_file_compression(z, static_cast<zip_uint64_t>(index), ZIP_CM_STORE, 0) != 0 ||
        zip_file_set_mtime(z, static_cast<zip_uint64_t>(index), kFixedMtime, 0) != 0)
      fail("cannot set member '" + name + "' attributes");
  }
  if (zip_close(z) != 0) fail("cannot write");
}

}  // namespace sfc::io
