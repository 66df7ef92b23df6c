// safetensors writer: the header is built with nlohmann::json, the data streamed tensor by tensor.
#include "sfc/io/safetensors_writer.h"

#include <torch/torch.h>

#include <nlohmann/json.hpp>

#include <cstdint>
#include <fstream>
#include <set>

#include "sfc/core/error.h"

namespace sfc::io {
namespace {

const char* dtype_tag(torch::Dtype dtype) {
  switch (dtype) {
    case torch::kFloat32: return "F32";
    case torch::kFloat64: return "F64";
    case torch::kBFloat16: return "BF16";
    case torch::kFloat16: return "F16";
    case torch::kInt64: return "I64";
    case torch::kInt32: return "I32";
    default: return nullptr;
  }
}

}  // namespace

void write_safetensors(const std::filesystem::path& file,
                       const std::vector<std::pair<std::string, torch::Tensor>>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  static_assert(sizeof(uint64_t) == 8);
  nlohmann::json header = nlohmann::json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::vector<torch::Tensor> data;  // contiguous CPU copies, in file order
  std::set<std::string> seen;
  uint64_t offset = 0;
  for (const auto& [name, tensor] : tensors) {
    if (name == "__metadata__" || !seen.insert(name).second)
      throw Error(file.string() + ": duplicate or reserved tensor name '" + name + "'");
    const char* tag = dtype_tag(tensor.scalar_type());
    if (!tag)
      throw Error(file.string() + ": tensor '" + name + "' has dtype " +
                  std::string(c10::toString(tensor.scalar_type())) + ", which safetensors_writer does not write");
    auto c = tensor.detach().to(torch::kCPU).contiguous();
    const uint64_t bytes = uint64_t(c.numel()) * c.element_size();
    header[name] = {{"dtype", tag}, {"shape", c.sizes().vec()}, {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
    data.push_back(c);
  }
  std::string text = header.dump();
  while (text.size() % 8) text += ' ';
  // The format is little-endian; so is every machine this project runs on (x86-64, aarch64).
  const uint64_t n = text.size();
  auto partial = file;
  partial += ".partial";
  {
    std::ofstream out(partial, std::ios::binary | std::ios::trunc);
    if (!out) throw Error(partial.string() + ": cannot open for writing");
    out.write(reinterpret_cast<const char*>(&n), 8);
    out.write(text.data(), std::streamsize(text.size()));
    for (const auto& c : data)
      out.write(static_cast<const char*>(c.data_ptr()), std::streamsize(c.numel() * c.element_size()));
    out.flush();
    if (!out) throw Error(partial.string() + ": write failed (disk full?)");
  }
  std::filesystem::rename(partial, file);
}

}  // namespace sfc::io
