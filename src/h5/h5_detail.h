// What the sources of src/h5 share (private to src/h5): FileContext, the check() every HDF5 call
// goes through, and the path and string-attribute helpers. Does not include <hdf5.h> (Id is hid_t).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "sfc/core/error.h"
#include "sfc/h5/h5_file.h"
#include "sfc/mpi/comm.h"

namespace sfc::h5 {

struct FileContext {
  std::string name;               // for messages
  MPI_Comm comm = MPI_COMM_NULL;  // null: serial (sec2)
  bool collective = true;
  IoStats stats;
  bool parallel() const { return comm != MPI_COMM_NULL; }
};

namespace detail {

// The innermost (most specific) description on HDF5's error stack, e.g. "unable to open file";
// clears the stack. In h5_file.cpp.
std::string hdf5_error_message();

// The thin wrapper every HDF5 call goes through: a negative return is an Error naming the call,
// the file and the object.
template <typename R>
R check(R ret, const char* call, const std::string& file, const std::string& object) {
  if (ret < 0) {
    std::string msg = std::string("HDF5 ") + call + " failed on " + file;
    if (!object.empty()) msg += " (" + object + ")";
    const std::string why = hdf5_error_message();
    if (!why.empty()) msg += ": " + why;
    throw Error(msg);
  }
  return ret;
}

// Splits "a/b/c" into its components (empty ones dropped).
std::vector<std::string> split_path(const std::string& path);

// A UTF-8 string attribute of a group or dataset (`object_path` names it in messages); setting one
// replaces an existing attribute, reading accepts variable- and fixed-length strings.
void set_string_attribute(Id object, const std::string& name, const std::string& value, const std::string& file,
                          const std::string& object_path);
std::string get_string_attribute(Id object, const std::string& name, const std::string& file,
                                 const std::string& object_path);

}  // namespace detail
}  // namespace sfc::h5
