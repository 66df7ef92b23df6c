// Test-only writer of F32 safetensors files, for making small or deliberately broken checkpoints.
#pragma once

#include <torch/torch.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <string>

namespace sfc::test {

inline void write_safetensors(const std::filesystem::path& file, const std::map<std::string, torch::Tensor>& tensors) {
  nlohmann::json header = nlohmann::json::object();
  std::string data;
  for (const auto& [name, tensor] : tensors) {
    auto t = tensor.detach().to(torch::kCPU, torch::kFloat32).contiguous();
    const size_t begin = data.size();
    data.append(reinterpret_cast<const char*>(t.data_ptr<float>()), t.numel() * sizeof(float));
    header[name] = {{"dtype", "F32"}, {"shape", t.sizes().vec()}, {"data_offsets", {begin, data.size()}}};
  }
  std::string text = header.dump();
  while (text.size() % 8) text += ' ';
  const uint64_t n = text.size();
  std::ofstream out(file, std::ios::binary);
  out.write(reinterpret_cast<const char*>(&n), 8);
  out << text << data;
}

}  // namespace sfc::test
