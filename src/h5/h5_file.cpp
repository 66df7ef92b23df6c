// HDF5 owners and the one place that checks HDF5 return codes. The only file including <hdf5.h>.
#include "sfc/h5/h5_file.h"

#include <hdf5.h>

#include <cmath>
#include <limits>
#include <type_traits>

#include "sfc/core/error.h"
#include "sfc/core/shapes.h"

static_assert(std::is_same_v<hid_t, sfc::h5::Id>, "sfc::h5::Id must be hid_t (HDF5 >= 1.10)");
static_assert(std::is_same_v<hsize_t, unsigned long long> || sizeof(hsize_t) == 8, "hsize_t is 64-bit");

namespace sfc::h5 {
namespace {

// HDF5 prints its error stack to stderr by default; we report one line instead. Turned off once,
// before the first call through this file.
void silence_hdf5_once() {
  static const bool done = [] {
    H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
    return true;
  }();
  (void)done;
}

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

hid_t file_type(Dtype dtype) {
  switch (dtype) {
    case Dtype::kFloat32: return H5T_IEEE_F32LE;
    case Dtype::kFloat64: return H5T_IEEE_F64LE;
    case Dtype::kInt32: return H5T_STD_I32LE;
    case Dtype::kInt64: return H5T_STD_I64LE;
  }
  return -1;
}

hid_t memory_type(Dtype dtype) {
  switch (dtype) {
    case Dtype::kFloat32: return H5T_NATIVE_FLOAT;
    case Dtype::kFloat64: return H5T_NATIVE_DOUBLE;
    case Dtype::kInt32: return H5T_NATIVE_INT32;
    case Dtype::kInt64: return H5T_NATIVE_INT64;
  }
  return -1;
}

size_t dtype_size(Dtype dtype) {
  return (dtype == Dtype::kFloat32 || dtype == Dtype::kInt32) ? 4 : 8;
}

std::vector<hsize_t> to_hsize(const std::vector<int64_t>& v) { return {v.begin(), v.end()}; }

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

// Where parallel HDF5 will differ: the file-access property list (MPI-IO driver) ...
Handle make_file_access(const FileOptions&, const std::string& file) {
  Handle fapl(check(H5Pcreate(H5P_FILE_ACCESS), "H5Pcreate", file, ""), H5Pclose);
  // Newest format: faster appends to chunked datasets and compact attribute storage.
  check(H5Pset_libver_bounds(fapl.get(), H5F_LIBVER_V18, H5F_LIBVER_LATEST), "H5Pset_libver_bounds",
        file, "");
  return fapl;
}

// ... and the transfer property list of each read and write (collective MPI-IO).
Handle make_transfer(const std::string& file) {
  return Handle(check(H5Pcreate(H5P_DATASET_XFER), "H5Pcreate", file, ""), H5Pclose);
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

}  // namespace

const char* dtype_name(Dtype dtype) {
  switch (dtype) {
    case Dtype::kFloat32: return "float32";
    case Dtype::kFloat64: return "float64";
    case Dtype::kInt32: return "int32";
    case Dtype::kInt64: return "int64";
  }
  return "?";
}

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

// --- Dataset ------------------------------------------------------------------------------------

Dataset::Dataset(Handle handle, std::string file, std::string path)
    : handle_(std::move(handle)), file_(std::move(file)), path_(std::move(path)) {}

int64_t Dataset::element_count(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

std::vector<int64_t> Dataset::shape() const {
  Handle space(check(H5Dget_space(handle_.get()), "H5Dget_space", file_, path_), H5Sclose);
  const int rank = check(H5Sget_simple_extent_ndims(space.get()), "H5Sget_simple_extent_ndims", file_, path_);
  std::vector<hsize_t> dims(rank);
  check(H5Sget_simple_extent_dims(space.get(), dims.data(), nullptr), "H5Sget_simple_extent_dims", file_,
        path_);
  return {dims.begin(), dims.end()};
}

Dtype Dataset::dtype() const {
  Handle type(check(H5Dget_type(handle_.get()), "H5Dget_type", file_, path_), H5Tclose);
  const H5T_class_t cls = H5Tget_class(type.get());
  const size_t size = H5Tget_size(type.get());
  if (cls == H5T_FLOAT && size == 4) return Dtype::kFloat32;
  if (cls == H5T_FLOAT && size == 8) return Dtype::kFloat64;
  if (cls == H5T_INTEGER && size == 4) return Dtype::kInt32;
  if (cls == H5T_INTEGER && size == 8) return Dtype::kInt64;
  throw Error(file_ + ": dataset " + path_ + " has a type other than float32/64 or int32/64");
}

void Dataset::resize_rows(int64_t rows) {
  auto dims = shape();
  if (dims.empty()) throw Error(file_ + ": cannot resize scalar dataset " + path_);
  dims[0] = rows;
  const auto hdims = to_hsize(dims);
  check(H5Dset_extent(handle_.get(), hdims.data()), "H5Dset_extent", file_, path_);
}

Handle Dataset::file_selection(const std::vector<int64_t>& start, const std::vector<int64_t>& count,
                               const char* op) const {
  const auto dims = shape();
  bool ok = start.size() == dims.size() && count.size() == dims.size();
  for (size_t i = 0; ok && i < dims.size(); ++i)
    ok = start[i] >= 0 && count[i] >= 0 && start[i] + count[i] <= dims[i];
  if (!ok)
    throw Error(file_ + ": " + op + " of " + path_ + " at start " + shape_str(start) + " count " +
                shape_str(count) + " is outside its shape " + shape_str(dims));
  Handle space(check(H5Dget_space(handle_.get()), "H5Dget_space", file_, path_), H5Sclose);
  if (!dims.empty()) {
    const auto hstart = to_hsize(start), hcount = to_hsize(count);
    check(H5Sselect_hyperslab(space.get(), H5S_SELECT_SET, hstart.data(), nullptr, hcount.data(), nullptr),
          "H5Sselect_hyperslab", file_, path_);
  }
  return space;
}

// A contiguous host buffer of shape `count`, as HDF5 sees it.
Handle Dataset::memory_space(const std::vector<int64_t>& count) const {
  const auto hcount = to_hsize(count);
  return Handle(check(H5Screate_simple(static_cast<int>(hcount.size()), hcount.data(), nullptr), "H5Screate_simple",
                      file_, path_),
                H5Sclose);
}

void Dataset::write(const std::vector<int64_t>& start, const std::vector<int64_t>& count, const void* data,
                    Dtype mem_dtype) {
  Handle file_space = file_selection(start, count, "write");
  if (element_count(count) == 0) return;
  Handle mem_space = memory_space(count);
  Handle xfer = make_transfer(file_);
  check(H5Dwrite(handle_.get(), memory_type(mem_dtype), mem_space.get(), file_space.get(), xfer.get(), data),
        "H5Dwrite", file_, path_);
}

void Dataset::read(const std::vector<int64_t>& start, const std::vector<int64_t>& count, void* out,
                   Dtype mem_dtype) const {
  Handle file_space = file_selection(start, count, "read");
  if (element_count(count) == 0) return;
  Handle mem_space = memory_space(count);
  Handle xfer = make_transfer(file_);
  check(H5Dread(handle_.get(), memory_type(mem_dtype), mem_space.get(), file_space.get(), xfer.get(), out),
        "H5Dread", file_, path_);
}

void Dataset::set_attribute(const std::string& name, const std::string& value) {
  set_string_attribute(handle_.get(), name, value, file_, path_);
}

std::string Dataset::attribute(const std::string& name) const {
  return get_string_attribute(handle_.get(), name, file_, path_);
}

// --- Group --------------------------------------------------------------------------------------

Group::Group(Handle handle, std::string file, std::string path)
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
    if (check(H5Lexists(handle_.get(), prefix.c_str(), H5P_DEFAULT), "H5Lexists", file_, full_path(prefix)) <= 0)
      return false;
  }
  return true;
}

Group Group::create_group(const std::string& path) {
  std::string prefix = path.size() && path[0] == '/' ? "/" : "";
  for (const auto& part : split_path(path)) {
    prefix += (prefix.empty() || prefix == "/" ? "" : "/") + part;
    if (check(H5Lexists(handle_.get(), prefix.c_str(), H5P_DEFAULT), "H5Lexists", file_, full_path(prefix)) <= 0)
      Handle(check(H5Gcreate2(handle_.get(), prefix.c_str(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT),
                   "H5Gcreate2", file_, full_path(prefix)),
             H5Gclose);
  }
  return open_group(path);
}

Group Group::open_group(const std::string& path) const {
  if (path.empty() || path == "/")
    return Group(Handle(check(H5Gopen2(handle_.get(), path.empty() ? "." : "/", H5P_DEFAULT), "H5Gopen2", file_,
                              full_path(path)),
                        H5Gclose),
                 file_, path.empty() ? path_ : "/");
  if (!exists(path)) throw Error(file_ + ": no group " + full_path(path));
  return Group(Handle(check(H5Gopen2(handle_.get(), path.c_str(), H5P_DEFAULT), "H5Gopen2", file_, full_path(path)),
                      H5Gclose),
               file_, full_path(path));
}

Dataset Group::create_dataset(const std::string& path, const DatasetSpec& spec) {
  const std::string where = full_path(path);
  const auto parts = split_path(path);
  if (parts.empty()) throw Error(file_ + ": empty dataset name");
  if (exists(path)) throw Error(file_ + ": dataset " + where + " already exists");
  const size_t slash = path.find_last_of('/');
  if (slash != std::string::npos && slash > 0) create_group(path.substr(0, slash));

  const size_t rank = spec.shape.size();
  if (rank == 0) throw Error(file_ + ": dataset " + where + " needs at least one dimension");
  for (int64_t d : spec.shape)
    if (d < 0) throw Error(file_ + ": dataset " + where + " has a negative dimension " + shape_str(spec.shape));

  // The first dimension (rows) can always grow; a zero-sized dimension must be growable too,
  // because HDF5 refuses a chunk larger than a fixed dimension.
  std::vector<hsize_t> dims = to_hsize(spec.shape), maxdims = dims;
  maxdims[0] = H5S_UNLIMITED;
  for (size_t i = 0; i < rank; ++i)
    if (dims[i] == 0) maxdims[i] = H5S_UNLIMITED;

  std::vector<int64_t> chunk = spec.chunk;
  if (chunk.empty()) {
    chunk = spec.shape;
    chunk[0] = 1;
    const int64_t kMaxChunkBytes = int64_t(16) << 20;
    auto bytes = [&] { return Dataset::element_count(chunk) * int64_t(dtype_size(spec.dtype)); };
    while (bytes() > kMaxChunkBytes) {
      size_t largest = 1;
      for (size_t i = 1; i < rank; ++i)
        if (chunk[i] > chunk[largest]) largest = i;
      if (chunk[largest] <= 1) break;
      chunk[largest] = (chunk[largest] + 1) / 2;
    }
  }
  if (chunk.size() != rank) throw Error(file_ + ": chunk " + shape_str(chunk) + " of " + where + " has the wrong rank");
  for (size_t i = 0; i < rank; ++i) {
    chunk[i] = std::max<int64_t>(chunk[i], 1);
    if (maxdims[i] != H5S_UNLIMITED) chunk[i] = std::min<int64_t>(chunk[i], spec.shape[i]);
  }
  const auto hchunk = to_hsize(chunk);

  Handle space(check(H5Screate_simple(static_cast<int>(rank), dims.data(), maxdims.data()), "H5Screate_simple",
                     file_, where),
               H5Sclose);
  Handle dcpl(check(H5Pcreate(H5P_DATASET_CREATE), "H5Pcreate", file_, where), H5Pclose);
  check(H5Pset_chunk(dcpl.get(), static_cast<int>(rank), hchunk.data()), "H5Pset_chunk", file_, where);
  if (spec.fill) {
    // Stored in the dataset's own type, so NaN stays NaN and -1 stays -1.
    const double f = *spec.fill;
    float f32 = static_cast<float>(f);
    int32_t i32 = std::isnan(f) ? 0 : static_cast<int32_t>(f);
    int64_t i64 = std::isnan(f) ? 0 : static_cast<int64_t>(f);
    const void* value = spec.dtype == Dtype::kFloat32   ? static_cast<const void*>(&f32)
                        : spec.dtype == Dtype::kFloat64 ? static_cast<const void*>(&f)
                        : spec.dtype == Dtype::kInt32   ? static_cast<const void*>(&i32)
                                                        : static_cast<const void*>(&i64);
    check(H5Pset_fill_value(dcpl.get(), memory_type(spec.dtype), value), "H5Pset_fill_value", file_, where);
    check(H5Pset_fill_time(dcpl.get(), H5D_FILL_TIME_IFSET), "H5Pset_fill_time", file_, where);
  }
  if (spec.deflate > 0) check(H5Pset_deflate(dcpl.get(), spec.deflate), "H5Pset_deflate", file_, where);

  Handle dataset(check(H5Dcreate2(handle_.get(), path.c_str(), file_type(spec.dtype), space.get(), H5P_DEFAULT,
                                  dcpl.get(), H5P_DEFAULT),
                       "H5Dcreate2", file_, where),
                 H5Dclose);
  return Dataset(std::move(dataset), file_, where);
}

Dataset Group::open_dataset(const std::string& path) const {
  if (!exists(path)) throw Error(file_ + ": no dataset " + full_path(path));
  return Dataset(
      Handle(check(H5Dopen2(handle_.get(), path.c_str(), H5P_DEFAULT), "H5Dopen2", file_, full_path(path)), H5Dclose),
      file_, full_path(path));
}

void Group::set_attribute(const std::string& name, const std::string& value) {
  set_string_attribute(handle_.get(), name, value, file_, path_);
}

std::string Group::attribute(const std::string& name) const {
  return get_string_attribute(handle_.get(), name, file_, path_);
}

bool Group::has_attribute(const std::string& name) const {
  return check(H5Aexists(handle_.get(), name.c_str()), "H5Aexists", file_, path_ + " attribute " + name) > 0;
}

// --- File ---------------------------------------------------------------------------------------

File::File(Handle file_handle, Handle root, const std::filesystem::path& file)
    : Group(std::move(root), file.string(), "/"), file_handle_(std::move(file_handle)), file_path_(file) {}

File File::create(const std::filesystem::path& file, const FileOptions& options) {
  silence_hdf5_once();
  const std::string name = file.string();
  Handle fapl = make_file_access(options, name);
  Handle f(check(H5Fcreate(name.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, fapl.get()), "H5Fcreate", name, ""), H5Fclose);
  Handle root(check(H5Gopen2(f.get(), "/", H5P_DEFAULT), "H5Gopen2", name, "/"), H5Gclose);
  return File(std::move(f), std::move(root), file);
}

File File::open_existing(const std::filesystem::path& file, const FileOptions& options, unsigned flags) {
  silence_hdf5_once();
  const std::string name = file.string();
  std::error_code ec;
  if (!std::filesystem::exists(file, ec)) throw LoadError(file, "no such file");
  Handle fapl = make_file_access(options, name);
  Handle f(check(H5Fopen(name.c_str(), flags, fapl.get()), "H5Fopen", name, ""), H5Fclose);
  Handle root(check(H5Gopen2(f.get(), "/", H5P_DEFAULT), "H5Gopen2", name, "/"), H5Gclose);
  return File(std::move(f), std::move(root), file);
}

File File::open_read_only(const std::filesystem::path& file, const FileOptions& options) {
  return open_existing(file, options, H5F_ACC_RDONLY);
}

File File::open_read_write(const std::filesystem::path& file, const FileOptions& options) {
  return open_existing(file, options, H5F_ACC_RDWR);
}

void File::flush() {
  check(H5Fflush(file_handle_.get(), H5F_SCOPE_GLOBAL), "H5Fflush", file_, "");
}

void File::close() {
  if (!file_handle_.valid()) return;
  handle_.reset();  // the root group
  const ssize_t open = check(H5Fget_obj_count(file_handle_.get(), H5F_OBJ_ALL | H5F_OBJ_LOCAL), "H5Fget_obj_count",
                             file_, "");
  if (open > 1)  // the file itself counts as one
    throw Error(file_ + ": " + std::to_string(open - 1) +
                " datasets/groups are still open when closing the file (close them first)");
  file_handle_.close(file_);
}

// --- H5Output -----------------------------------------------------------------------------------

std::filesystem::path H5Output::partial_name(const std::filesystem::path& out) {
  return std::filesystem::path(out.string() + ".partial");
}

H5Output::H5Output(const std::filesystem::path& out, const FileOptions& options)
    : final_(out), partial_(partial_name(out)) {
  file_.emplace(File::create(partial_, options));
}

void H5Output::commit() {
  if (committed_) return;
  file_->close();
  std::error_code ec;
  std::filesystem::rename(partial_, final_, ec);
  if (ec) throw Error("cannot rename " + partial_.string() + " to " + final_.string() + ": " + ec.message());
  committed_ = true;
}

H5Output::~H5Output() {
  if (committed_) return;
  // Unfinished: close what we can and remove the partial file so nothing looks like a result.
  file_.reset();
  std::error_code ec;
  std::filesystem::remove(partial_, ec);
}

}  // namespace sfc::h5
