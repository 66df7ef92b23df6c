// Run-time options shared by every command: device, compute dtype, CPU threads. Parses the
// strings users type ("cuda:1", "bf16") into LibTorch types. Not for model or data options.
#pragma once

#include <c10/core/Device.h>
#include <c10/core/ScalarType.h>

#include <string>

namespace boost::program_options {
class options_description;
class variables_map;
}  // namespace boost::program_options

namespace sfc::app {

// "cpu", "cuda", "cuda:N" or "auto" (cuda:<node-local rank> when LibTorch sees a GPU, else cpu).
// Asking for CUDA from a CPU-only LibTorch is a ConfigError that says so.
c10::Device parse_device(const std::string& spec);
// "fp32"/"float32" or "bf16"/"bfloat16"; anything else is a ConfigError naming the value.
c10::ScalarType parse_dtype(const std::string& spec);
const char* dtype_name(c10::ScalarType dtype);  // "fp32", "bf16"
// The rank of this process on its node, from OMPI_COMM_WORLD_LOCAL_RANK, else SLURM_LOCALID, else 0.
int node_local_rank();

// --device, --dtype, --threads (docs/style.md §6: add_options / validate / to_string).
struct RuntimeOptions {
  std::string device = "cpu";
  std::string dtype = "fp32";
  int threads = 0;  // 0 = OMP_NUM_THREADS, or 1 when unset

  void add_options(boost::program_options::options_description& desc);
  // Resolves the strings (throws ConfigError) and sets torch's intra-op thread count.
  void validate_and_apply();
  std::string to_string() const;

  // Resolved by validate_and_apply().
  c10::Device resolved_device{c10::kCPU};
  c10::ScalarType resolved_dtype = c10::kFloat;
};

}  // namespace sfc::app
