#include "sfc/job/phase_times.h"

#include <sys/resource.h>

#include <algorithm>

#include "sfc/core/error.h"

namespace sfc::job {

PhaseTimes::PhaseTimes(std::vector<std::string> names) : names_(std::move(names)), seconds_(names_.size(), 0.0) {
  load_ = index("load");
  comm_ = index("comm");
  io_ = index("io");
}

int PhaseTimes::index(const std::string& name) const {
  const auto it = std::find(names_.begin(), names_.end(), name);
  if (it == names_.end()) throw Error("phase '" + name + "' is not among the job's phases");
  return static_cast<int>(it - names_.begin());
}

int64_t peak_rss_bytes() {
  struct rusage usage {};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<int64_t>(usage.ru_maxrss) * 1024;  // Linux reports KiB
}

}  // namespace sfc::job
