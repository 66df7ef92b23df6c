#include "sfc/core/error.h"

namespace sfc {

std::string error_message(const std::exception& e) {
  std::string text = e.what();
  // c10::Error::what() is "<message>\nException raised from <function> at <file>:<line> ...\nframe #0 ...".
  const size_t backtrace = text.find("\nException raised from ");
  if (backtrace != std::string::npos) text.resize(backtrace);
  return text;
}

}  // namespace sfc
