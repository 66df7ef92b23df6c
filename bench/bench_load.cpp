// Load benchmark (not a test): times load_gemma2 and the Gemma Scope params.npz reader, and prints
// the process's peak resident set. Make the inputs with bench/make_gemma2_checkpoint.py and
// bench/make_gemma_scope_sae.py. Run each case in a fresh process, so the peak is its own:
//   bench_load --model /tmp/gemma2-2b-bf16 --dtype bf16
//   bench_load --npz /tmp/sae16k/params.npz [--repeat 3]
// Not yet a target of bench/CMakeLists.txt; it needs `add_executable(bench_load bench_load.cpp)`
// linked to sfc_model and sfc_sae, like bench_engines.
#include <torch/torch.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>

#include "sfc/io/npz.h"
#include "sfc/model/gemma2.h"
#include "sfc/sae/sae.h"

namespace {

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// VmHWM of /proc/self/status: the peak resident set so far, in MB (10^6 bytes).
double peak_rss_mb() {
  std::ifstream in("/proc/self/status");
  std::string key;
  while (in >> key) {
    if (key == "VmHWM:") {
      double kb = 0;  // KiB
      in >> kb;
      return kb * 1024.0 / 1e6;
    }
    std::getline(in, key);
  }
  return -1;
}

int usage() {
  std::fprintf(stderr,
               "usage: bench_load --model DIR [--dtype bf16|fp32] [--device cpu|cuda]\n"
               "       bench_load --npz FILE [--repeat N]\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  std::string model_dir, npz, dtype = "bf16", device = "cpu";
  int repeat = 1;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string key = argv[i], value = argv[i + 1];
    if (key == "--model") model_dir = value;
    else if (key == "--npz") npz = value;
    else if (key == "--dtype") dtype = value;
    else if (key == "--device") device = value;
    else if (key == "--repeat") repeat = std::stoi(value);
    else return usage();
  }
  if (model_dir.empty() == npz.empty()) return usage();

  if (!model_dir.empty()) {
    const auto start = std::chrono::steady_clock::now();
    auto model = sfc::model::load_gemma2(
        model_dir, {dtype == "bf16" ? torch::kBFloat16 : torch::kFloat32, torch::Device(device)});
    const double s = seconds_since(start);
    double bytes = 0;
    for (const auto& p : model->parameters()) bytes += double(p.numel() * p.element_size());
    std::printf("load_gemma2 %s %s: %.2f s, model %.0f MB, peak RSS %.0f MB (%.2fx the model)\n",
                model_dir.c_str(), dtype.c_str(), s, bytes / 1e6, peak_rss_mb(), peak_rss_mb() * 1e6 / bytes);
    return 0;
  }

  const double file_mb = double(std::filesystem::file_size(npz)) / 1e6;
  {
    // Warm-up outside the timing: the smallest member (a few KB: the page cache stays as cold as it
    // was) binds the code paths and starts torch's thread pool, one-time costs of any process.
    sfc::io::NpzFile file(npz);
    std::string smallest;
    uint64_t least = UINT64_MAX;
    for (const auto& name : file.names()) {
      uint64_t n = 1;
      for (int64_t d : file.info(name).shape) n *= uint64_t(d);
      if (n < least) least = n, smallest = name;
    }
    if (!smallest.empty()) (void)file.load(smallest).sum();
    (void)torch::ones({2048, 2048}).t().contiguous().sum();  // and the thread pool up
  }
  for (int r = 0; r < repeat; ++r) {
    auto start = std::chrono::steady_clock::now();
    sfc::io::NpzFile file(npz);
    double bytes = 0;
    for (const auto& name : file.names()) bytes += double(file.load(name).nbytes());
    double s = seconds_since(start);
    std::printf("NpzFile %s: %.0f MB of arrays in %.3f s = %.0f MB/s (file %.0f MB)\n", npz.c_str(), bytes / 1e6, s,
                bytes / 1e6 / s, file_mb);
    if (file.contains("W_enc")) {
      start = std::chrono::steady_clock::now();
      auto sae = sfc::sae::load_sae(npz, file.info("W_enc").shape.at(0));
      s = seconds_since(start);
      std::printf("load_sae %s: d_in %ld, d_sae %ld in %.3f s = %.0f MB/s\n", npz.c_str(), long(sae.d_in()),
                  long(sae.d_sae()), s, file_mb / s);
    }
  }
  std::printf("peak RSS %.0f MB\n", peak_rss_mb());
  return 0;
}
