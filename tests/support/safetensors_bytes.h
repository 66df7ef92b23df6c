// Test-only builder of safetensors files in any on-disk dtype, whole or deliberately broken
// (wrong header length, bad JSON, bad offsets). Not a general writer: everything is in memory.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

namespace sfc::test {

// Collects tensors, then writes "u64 header length | JSON header | data" as the format prescribes.
class SafetensorsBytes {
 public:
  // Stores `t` as `dtype` on disk ("F32", "BF16", "F16", "I64", "I32"); the tensor is cast to match.
  SafetensorsBytes& add(const std::string& name, const torch::Tensor& t, const std::string& dtype = "F32") {
    static const std::vector<std::pair<std::string, torch::Dtype>> kTable = {
        {"F32", torch::kFloat32}, {"BF16", torch::kBFloat16}, {"F16", torch::kFloat16},
        {"I64", torch::kInt64},   {"I32", torch::kInt32},     {"F64", torch::kFloat64}};
    torch::Dtype as = torch::kFloat32;
    for (const auto& [n, d] : kTable)
      if (n == dtype) as = d;
    auto c = t.detach().to(torch::kCPU, as).contiguous();
    const size_t begin = data_.size();
    data_.append(static_cast<const char*>(c.data_ptr()), c.numel() * c.element_size());
    header_[name] = {{"dtype", dtype}, {"shape", c.sizes().vec()}, {"data_offsets", {begin, data_.size()}}};
    return *this;
  }
  nlohmann::json& header() { return header_; }  // for tests that break an entry
  std::string& data() { return data_; }

  // The header text padded to 8 bytes (as Hugging Face does), or `header_text` verbatim if given.
  void write(const std::filesystem::path& file, const std::string* header_text = nullptr,
             const uint64_t* header_len = nullptr) const {
    std::string text = header_text ? *header_text : header_.dump();
    if (!header_text)
      while (text.size() % 8) text += ' ';
    const uint64_t n = header_len ? *header_len : text.size();
    std::ofstream out(file, std::ios::binary);
    out.write(reinterpret_cast<const char*>(&n), 8);
    out << text << data_;
  }

 private:
  nlohmann::json header_ = nlohmann::json::object();
  std::string data_;
};

// Writes every tensor of `tensors` as F32: a small well-formed checkpoint.
inline void write_safetensors(const std::filesystem::path& file, const std::map<std::string, torch::Tensor>& tensors) {
  SafetensorsBytes bytes;
  for (const auto& [name, tensor] : tensors) bytes.add(name, tensor);
  bytes.write(file);
}

}  // namespace sfc::test
