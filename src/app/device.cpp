// Device, dtype and thread options, and the node-local rank used to pick a GPU.
#include "sfc/app/device.h"

#include <ATen/Parallel.h>
#include <torch/cuda.h>

#include <boost/program_options.hpp>
#include <cstdlib>
#include <sstream>

#include "sfc/core/error.h"

namespace po = boost::program_options;

namespace sfc::app {

int node_local_rank() {
  // OpenMPI's mpirun, then SLURM's srun; a plain single process is rank 0.
  for (const char* name : {"OMPI_COMM_WORLD_LOCAL_RANK", "SLURM_LOCALID"}) {
    if (const char* value = std::getenv(name)) {
      char* end = nullptr;
      const long rank = std::strtol(value, &end, 10);
      if (end != value && *end == '\0' && rank >= 0) return static_cast<int>(rank);
    }
  }
  return 0;
}

c10::Device parse_device(const std::string& spec) {
  if (spec == "cpu") return c10::Device(c10::kCPU);
  const bool has_cuda = torch::cuda::is_available();
  if (spec == "auto") {
    if (!has_cuda) return c10::Device(c10::kCPU);
    // One GPU per rank on a node: ranks beyond the GPU count share round-robin.
    const int n = static_cast<int>(torch::cuda::device_count());
    return c10::Device(c10::kCUDA, static_cast<c10::DeviceIndex>(node_local_rank() % n));
  }
  if (spec == "cuda" || spec.rfind("cuda:", 0) == 0) {
    if (!has_cuda)
      throw ConfigError("--device " + spec +
                        ": this LibTorch has no usable CUDA (CPU-only build or no GPU visible); "
                        "use --device cpu, or build against a CUDA LibTorch");
    if (spec == "cuda") return c10::Device(c10::kCUDA, static_cast<c10::DeviceIndex>(node_local_rank() %
                                                                                     torch::cuda::device_count()));
    const std::string index = spec.substr(5);
    char* end = nullptr;
    const long i = std::strtol(index.c_str(), &end, 10);
    if (index.empty() || *end != '\0' || i < 0)
      throw ConfigError("--device " + spec + ": expected cuda:<index>, e.g. cuda:0");
    if (i >= static_cast<long>(torch::cuda::device_count()))
      throw ConfigError("--device " + spec + ": only " + std::to_string(torch::cuda::device_count()) +
                        " CUDA devices are visible");
    return c10::Device(c10::kCUDA, static_cast<c10::DeviceIndex>(i));
  }
  throw ConfigError("--device '" + spec + "': expected cpu, cuda, cuda:N or auto");
}

c10::ScalarType parse_dtype(const std::string& spec) {
  if (spec == "fp32" || spec == "float32") return c10::kFloat;
  if (spec == "bf16" || spec == "bfloat16") return c10::kBFloat16;
  throw ConfigError("--dtype '" + spec + "': expected fp32 (float32) or bf16 (bfloat16)");
}

const char* dtype_name(c10::ScalarType dtype) {
  switch (dtype) {
    case c10::kFloat: return "fp32";
    case c10::kBFloat16: return "bf16";
    case c10::kHalf: return "fp16";
    default: return c10::toString(dtype);
  }
}

void RuntimeOptions::add_options(po::options_description& desc) {
  desc.add_options()
      ("device", po::value(&device)->default_value(device), "cpu, cuda, cuda:N, or auto (cuda:<local rank> if available)")
      ("dtype", po::value(&dtype)->default_value(dtype), "compute dtype: fp32 or bf16")
      ("threads", po::value(&threads)->default_value(threads), "CPU threads for torch (0: OMP_NUM_THREADS, else 1)");
}

void RuntimeOptions::validate_and_apply() {
  resolved_dtype = parse_dtype(dtype);
  resolved_device = parse_device(device);
  if (threads < 0) throw ConfigError("--threads must be >= 0, got " + std::to_string(threads));
  int n = threads;
  if (n == 0) {
    // mpirun binds one core per rank and torch's own default ignores that: one thread unless told.
    const char* omp = std::getenv("OMP_NUM_THREADS");
    n = omp ? std::atoi(omp) : 1;
    if (n <= 0) n = 1;
  }
  threads = n;
  at::set_num_threads(n);
}

std::string RuntimeOptions::to_string() const {
  std::ostringstream out;
  out << "device=" << device << " dtype=" << dtype << " threads=" << threads;
  return out.str();
}

}  // namespace sfc::app
