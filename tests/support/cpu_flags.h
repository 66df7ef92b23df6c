// The CPU's feature flags as the Linux kernel reports them (/proc/cpuinfo), for tests that check
// sfc's own CPU probe and OpenBLAS hint against an independent source.
#pragma once

#include <fstream>
#include <set>
#include <sstream>
#include <string>

namespace sfc::test {

struct ProcCpuFlags {
  std::set<std::string> flags;  // of the first CPU; empty when /proc/cpuinfo has no flags line

  static ProcCpuFlags read() {
    ProcCpuFlags out;
    std::ifstream in("/proc/cpuinfo");
    for (std::string line; std::getline(in, line);) {
      if (line.rfind("flags", 0) != 0) continue;
      std::istringstream words(line.substr(line.find(':') + 1));
      for (std::string w; words >> w;) out.flags.insert(w);
      break;
    }
    return out;
  }
  bool has(const char* flag) const { return flags.count(flag) > 0; }
  bool avx2_fma() const { return has("avx2") && has("fma"); }
  bool avx512() const {  // what OpenBLAS's SkylakeX kernels need
    return has("avx512f") && has("avx512cd") && has("avx512bw") && has("avx512dq") && has("avx512vl");
  }
};

}  // namespace sfc::test
