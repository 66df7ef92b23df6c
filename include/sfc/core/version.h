// The software version, from one place: CMakeLists.txt's project(VERSION) compiled into
// src/core/version.cpp alone. Written into every output file and printed by `sfc --version`.
#pragma once

namespace sfc {

const char* version();

}  // namespace sfc
