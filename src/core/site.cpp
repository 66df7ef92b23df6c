#include "sfc/core/site.h"

#include "sfc/core/error.h"

namespace sfc {

const char* site_name(Site site) {
  switch (site) {
    case Site::kResid: return "resid";
    case Site::kMlp: return "mlp";
    case Site::kAttn: return "attn";
  }
  return "?";
}

const char* gemma_scope_suffix(Site site) {
  switch (site) {
    case Site::kResid: return "res";
    case Site::kMlp: return "mlp";
    case Site::kAttn: return "att";
  }
  return "?";
}

Site parse_site(const std::string& name) {
  for (Site s : kAllSites)
    if (name == site_name(s)) return s;
  throw ConfigError("unknown site '" + name + "' (expected resid, mlp or attn)");
}

}  // namespace sfc
