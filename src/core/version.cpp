#include "sfc/core/version.h"

// src/CMakeLists.txt defines SFC_VERSION for this file only, so no other source can bake in its own.
#ifndef SFC_VERSION
#error "SFC_VERSION must come from CMakeLists.txt's project(VERSION)"
#endif

namespace sfc {

const char* version() { return SFC_VERSION; }

}  // namespace sfc
