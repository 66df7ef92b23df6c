// HDF5 files, groups and string attributes (File, Group, Handle), and HDF5's error stack behind
// check() (h5_detail.h). Datasets are in h5_dataset.cpp, H5Output in h5_output.cpp.
#include "sfc/h5/h5_file.h"

#include <hdf5.h>

#include <memory>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "h5_detail.h"
#include "sfc/core/error.h"
#include "sfc/mpi/comm.h"

static_assert(std::is_same_v<hid_t, sfc::h5::Id>, "sfc::h5::Id must be hid_t (HDF5 >= 1.10)");

namespace sfc::h5 {

namespace {

// HDF5 prints its error stack to stderr by default; we report one line instead. Turned off once,
// when the first file is created or opened (every HDF5 call of src/h5 comes after that).
void silence_hdf5_once() {
  static const bool done = [] {
    H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
    return true;
  }();
  (void)done;
}

}  // namespace

namespace detail {

// The innermost (most specific) description on HDF5's error stack, e.g. "unable to open file".
std::string hdf5_error_message() {
  std::string message;
  H5Ewalk2(
      H5E_DEFAULT, H5E_WALK_DOWNWARD,
      [](unsigned n, const H5E_error2_t* err, void* data) -> herr_t {
        auto* out = static_cast<std::string*>(data);
        if (n == 0 && err->desc) *out = err->desc;  // the innermost call is entry 0
        return 0;
      },
      &message);
  H5Eclear2(H5E_DEFAULT);
  return message;
}

// Splits "a/b/c" into its components (empty ones dropped).
std::vector<std::string> split_path(const std::string& path) {
  std::vector<std::string> parts;
  size_t begin = 0;
  while (begin <= path.size()) {
    const size_t end = path.find('/', begin);
    const std::string part = path.substr(begin, end == std::string::npos ? std::string::npos : end - begin);
    if (!part.empty()) parts.push_back(part);
    if (end == std::string::npos) break;
    begin = end + 1;
  }
  return parts;
}

void set_string_attribute(hid_t object, const std::string& name, const std::string& value,
                          const std::string& file, const std::string& object_path) {
  const std::string what = object_path + " attribute " + name;
  if (check(H5Aexists(object, name.c_str()), "H5Aexists", file, what) > 0)
    check(H5Adelete(object, name.c_str()), "H5Adelete", file, what);
  Handle type(check(H5Tcopy(H5T_C_S1), "H5Tcopy", file, what), H5Tclose);
  check(H5Tset_size(type.get(), H5T_VARIABLE), "H5Tset_size", file, what);
  check(H5Tset_cset(type.get(), H5T_CSET_UTF8), "H5Tset_cset", file, what);
  Handle space(check(H5Screate(H5S_SCALAR), "H5Screate", file, what), H5Sclose);
  Handle attr(check(H5Acreate2(object, name.c_str(), type.get(), space.get(), H5P_DEFAULT, H5P_DEFAULT),
                    "H5Acreate2", file, what),
              H5Aclose);
  const char* data = value.c_str();
  check(H5Awrite(attr.get(), type.get(), &data), "H5Awrite", file, what);
}

std::string get_string_attribute(hid_t object, const std::string& name, const std::string& file,
                                 const std::string& object_path) {
  const std::string what = object_path + " attribute " + name;
  if (check(H5Aexists(object, name.c_str()), "H5Aexists", file, what) == 0)
    throw Error(file + ": no attribute '" + name + "' on " + object_path);
  Handle attr(check(H5Aopen(object, name.c_str(), H5P_DEFAULT), "H5Aopen", file, what), H5Aclose);
  Handle stored(check(H5Aget_type(attr.get()), "H5Aget_type", file, what), H5Tclose);
  if (H5Tget_class(stored.get()) != H5T_STRING)
    throw Error(file + ": attribute '" + name + "' on " + object_path + " is not a string");
  if (check(H5Tis_variable_str(stored.get()), "H5Tis_variable_str", file, what) > 0) {
    Handle type(check(H5Tcopy(H5T_C_S1), "H5Tcopy", file, what), H5Tclose);
    check(H5Tset_size(type.get(), H5T_VARIABLE), "H5Tset_size", file, what);
    check(H5Tset_cset(type.get(), H5Tget_cset(stored.get())), "H5Tset_cset", file, what);
    char* data = nullptr;
    check(H5Aread(attr.get(), type.get(), &data), "H5Aread", file, what);
    std::string value = data ? data : "";
    Handle space(check(H5Aget_space(attr.get()), "H5Aget_space", file, what), H5Sclose);
    H5Dvlen_reclaim(type.get(), space.get(), H5P_DEFAULT, &data);
    return value;
  }
  // Fixed-length strings (written by other tools, e.g. numpy bytes through h5py).
  const size_t size = H5Tget_size(stored.get());
  std::string value(size, '\0');
  check(H5Aread(attr.get(), stored.get(), value.data()), "H5Aread", file, what);
  value.resize(value.find('\0') == std::string::npos ? size : value.find('\0'));
  return value;
}

}  // namespace detail

using detail::check;
using detail::get_string_attribute;
using detail::set_string_attribute;
using detail::split_path;

bool hdf5_is_parallel() {
#ifdef H5_HAVE_PARALLEL
  return true;
#else
  return false;
#endif
}

// --- Handle -------------------------------------------------------------------------------------

Handle& Handle::operator=(Handle&& other) noexcept {
  if (this != &other) {
    reset();
    id_ = other.id_;
    closer_ = other.closer_;
    other.id_ = -1;
  }
  return *this;
}

void Handle::reset() noexcept {
  if (id_ >= 0 && closer_) {
    // A destructor must not throw; an error here leaves HDF5's stack, cleared for the next check.
    if (closer_(id_) < 0) H5Eclear2(H5E_DEFAULT);
  }
  id_ = -1;
}

void Handle::close(const std::string& what) {
  if (id_ < 0) return;
  const Id id = id_;
  id_ = -1;
  check(closer_(id), "close", what, "");
}

// --- Group --------------------------------------------------------------------------------------

Group::Group(Handle handle, std::shared_ptr<FileContext> file, std::string path)
    : handle_(std::move(handle)), file_(std::move(file)), path_(std::move(path)) {}

std::string Group::full_path(const std::string& path) const {
  if (!path.empty() && path[0] == '/') return path;
  return (path_ == "/" ? "" : path_) + "/" + path;
}

bool Group::exists(const std::string& path) const {
  // H5Lexists on "a/b" fails (rather than returning false) when "a" is missing: walk level by level.
  std::string prefix = path.size() && path[0] == '/' ? "/" : "";
  for (const auto& part : split_path(path)) {
    prefix += (prefix.empty() || prefix == "/" ? "" : "/") + part;
    if (check(H5Lexists(handle_.get(), prefix.c_str(), H5P_DEFAULT), "H5Lexists", file_->name, full_path(prefix)) <= 0)
      return false;
  }
  return true;
}

Group Group::create_group(const std::string& path) {
  std::string prefix = path.size() && path[0] == '/' ? "/" : "";
  for (const auto& part : split_path(path)) {
    prefix += (prefix.empty() || prefix == "/" ? "" : "/") + part;
    if (check(H5Lexists(handle_.get(), prefix.c_str(), H5P_DEFAULT), "H5Lexists", file_->name, full_path(prefix)) <= 0)
      Handle(check(H5Gcreate2(handle_.get(), prefix.c_str(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT),
                   "H5Gcreate2", file_->name, full_path(prefix)),
             H5Gclose);
  }
  return open_group(path);
}

Group Group::open_group(const std::string& path) const {
  if (path.empty() || path == "/")
    return Group(Handle(check(H5Gopen2(handle_.get(), path.empty() ? "." : "/", H5P_DEFAULT), "H5Gopen2", file_->name,
                              full_path(path)),
                        H5Gclose),
                 file_, path.empty() ? path_ : "/");
  if (!exists(path)) throw Error(file_->name + ": no group " + full_path(path));
  return Group(Handle(check(H5Gopen2(handle_.get(), path.c_str(), H5P_DEFAULT), "H5Gopen2", file_->name, full_path(path)),
                      H5Gclose),
               file_, full_path(path));
}

void Group::set_attribute(const std::string& name, const std::string& value) {
  set_string_attribute(handle_.get(), name, value, file_->name, path_);
}

std::string Group::attribute(const std::string& name) const {
  return get_string_attribute(handle_.get(), name, file_->name, path_);
}

bool Group::has_attribute(const std::string& name) const {
  return check(H5Aexists(handle_.get(), name.c_str()), "H5Aexists", file_->name, path_ + " attribute " + name) > 0;
}

// --- File ---------------------------------------------------------------------------------------

namespace {

// Where parallel HDF5 differs: the file-access property list (MPI-IO driver), and the transfer
// property list of each read and write (make_transfer in h5_dataset.cpp).
Handle make_file_access(const FileOptions& options, const std::string& file) {
  Handle fapl(check(H5Pcreate(H5P_FILE_ACCESS), "H5Pcreate", file, ""), H5Pclose);
  // Newest format: faster appends to chunked datasets and compact attribute storage.
  check(H5Pset_libver_bounds(fapl.get(), H5F_LIBVER_V18, H5F_LIBVER_LATEST), "H5Pset_libver_bounds",
        file, "");
  if (options.comm) {
    check(H5Pset_fapl_mpio(fapl.get(), options.comm->native(), MPI_INFO_NULL), "H5Pset_fapl_mpio", file, "");
    // Metadata read once and broadcast, written once: without this every rank reads the same
    // object headers, and the calls listed in h5_file.h would not all be collective.
    check(H5Pset_all_coll_metadata_ops(fapl.get(), true), "H5Pset_all_coll_metadata_ops", file, "");
    check(H5Pset_coll_metadata_write(fapl.get(), true), "H5Pset_coll_metadata_write", file, "");
  }
  return fapl;
}

std::shared_ptr<FileContext> make_context(const std::string& name, const FileOptions& options) {
  return std::make_shared<FileContext>(FileContext{name, options.comm ? options.comm->native() : MPI_COMM_NULL, options.collective, {}});
}

}  // namespace

File::File(Handle file_handle, Handle root, std::shared_ptr<FileContext> context, const std::filesystem::path& file)
    : Group(std::move(root), std::move(context), "/"), file_handle_(std::move(file_handle)), file_path_(file) {}

File File::create(const std::filesystem::path& file, const FileOptions& options) {
  silence_hdf5_once();
  const std::string name = file.string();
  Handle fapl = make_file_access(options, name);
  Handle f(check(H5Fcreate(name.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, fapl.get()), "H5Fcreate", name, ""), H5Fclose);
  Handle root(check(H5Gopen2(f.get(), "/", H5P_DEFAULT), "H5Gopen2", name, "/"), H5Gclose);
  return File(std::move(f), std::move(root), make_context(name, options), file);
}

File File::open_existing(const std::filesystem::path& file, const FileOptions& options, unsigned flags) {
  silence_hdf5_once();
  const std::string name = file.string();
  std::error_code ec;
  if (!std::filesystem::exists(file, ec)) throw LoadError(file, "no such file");
  Handle fapl = make_file_access(options, name);
  Handle f(check(H5Fopen(name.c_str(), flags, fapl.get()), "H5Fopen", name, ""), H5Fclose);
  Handle root(check(H5Gopen2(f.get(), "/", H5P_DEFAULT), "H5Gopen2", name, "/"), H5Gclose);
  return File(std::move(f), std::move(root), make_context(name, options), file);
}

File File::open_read_only(const std::filesystem::path& file, const FileOptions& options) {
  return open_existing(file, options, H5F_ACC_RDONLY);
}

File File::open_read_write(const std::filesystem::path& file, const FileOptions& options) {
  return open_existing(file, options, H5F_ACC_RDWR);
}

void File::flush() {
  check(H5Fflush(file_handle_.get(), H5F_SCOPE_GLOBAL), "H5Fflush", file_->name, "");
}

void File::close() {
  if (!file_handle_.valid()) return;
  handle_.reset();  // the root group
  const ssize_t open = check(H5Fget_obj_count(file_handle_.get(), H5F_OBJ_ALL | H5F_OBJ_LOCAL), "H5Fget_obj_count",
                             file_->name, "");
  if (open > 1)  // the file itself counts as one
    throw Error(file_->name + ": " + std::to_string(open - 1) +
                " datasets/groups are still open when closing the file (close them first)");
  file_handle_.close(file_->name);
}

const IoStats& File::io_stats() const { return file_->stats; }

void File::require_collective(const std::string& what) const {
  const IoStats& s = file_->stats;
  if (s.independent == 0) return;
  throw Error(file_->name + ": " + what + ": " + std::to_string(s.independent) + " of " +
              std::to_string(s.independent + s.collective) +
              " data transfers were independent, not collective (last: " + s.last_cause +
              "); keep memory and stored types equal and FileOptions::collective true");
}

}  // namespace sfc::h5
