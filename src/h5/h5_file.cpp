// HDF5 owners and the one place that checks HDF5 return codes. The only file including <hdf5.h>.
#include "sfc/h5/h5_file.h"

#include <hdf5.h>

#include <cmath>
#include <limits>
#include <type_traits>
#include <utility>

#include "sfc/core/error.h"
#include "sfc/core/shapes.h"

static_assert(std::is_same_v<hid_t, sfc::h5::Id>, "sfc::h5::Id must be hid_t (HDF5 >= 1.10)");
static_assert(std::is_same_v<hsize_t, unsigned long long> || sizeof(hsize_t) == 8, "hsize_t is 64-bit");

namespace sfc::h5 {

struct FileContext {
  std::string name;               // for messages
  MPI_Comm comm = MPI_COMM_NULL;  // null: serial (sec2)
  bool collective = true;
  IoStats stats;
  bool parallel() const { return comm != MPI_COMM_NULL; }
};

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

// The MPI twin of check(). sfc_h5 cannot use sfc::dist's (that stage comes later and needs torch).
void check_mpi(int status, const char* call, const std::string& file) {
  if (status == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING];
  int length = 0;
  MPI_Error_string(status, text, &length);
  throw Error(std::string(call) + " failed for " + file + ": " + std::string(text, length));
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

// Where parallel HDF5 differs: the file-access property list (MPI-IO driver) ...
Handle make_file_access(const FileOptions& options, const std::string& file) {
  Handle fapl(check(H5Pcreate(H5P_FILE_ACCESS), "H5Pcreate", file, ""), H5Pclose);
  // Newest format: faster appends to chunked datasets and compact attribute storage.
  check(H5Pset_libver_bounds(fapl.get(), H5F_LIBVER_V18, H5F_LIBVER_LATEST), "H5Pset_libver_bounds",
        file, "");
  if (options.comm != MPI_COMM_NULL) {
    check(H5Pset_fapl_mpio(fapl.get(), options.comm, MPI_INFO_NULL), "H5Pset_fapl_mpio", file, "");
    // Metadata read once and broadcast, written once: without this every rank reads the same
    // object headers, and the calls listed in h5_file.h would not all be collective.
    check(H5Pset_all_coll_metadata_ops(fapl.get(), true), "H5Pset_all_coll_metadata_ops", file, "");
    check(H5Pset_coll_metadata_write(fapl.get(), true), "H5Pset_coll_metadata_write", file, "");
  }
  return fapl;
}

std::shared_ptr<FileContext> make_context(const std::string& name, const FileOptions& options) {
  return std::make_shared<FileContext>(FileContext{name, options.comm, options.collective, {}});
}

// ... and the transfer property list of each read and write (collective MPI-IO).
Handle make_transfer(const FileContext& file) {
  Handle dxpl(check(H5Pcreate(H5P_DATASET_XFER), "H5Pcreate", file.name, ""), H5Pclose);
  if (file.parallel())
    check(H5Pset_dxpl_mpio(dxpl.get(), file.collective ? H5FD_MPIO_COLLECTIVE : H5FD_MPIO_INDEPENDENT),
          "H5Pset_dxpl_mpio", file.name, "");
  return dxpl;
}

// Why HDF5 did a transfer independently, in words, from its actual I/O mode and the OR of the
// causes of all ranks (H5D_mpio_no_collective_cause_t bits).
std::string independent_cause(H5D_mpio_actual_io_mode_t mode, uint32_t causes) {
  static const std::pair<uint32_t, const char*> kCauses[] = {
      {H5D_MPIO_SET_INDEPENDENT, "independent I/O was requested (FileOptions::collective = false)"},
      {H5D_MPIO_DATATYPE_CONVERSION, "the memory type needs conversion to the stored type"},
      {H5D_MPIO_DATA_TRANSFORMS, "a data transform is set"},
      {H5D_MPIO_MPI_OPT_TYPES_ENV_VAR_DISABLED, "HDF5_MPI_OPT_TYPES is 0 in the environment"},
      {H5D_MPIO_NOT_SIMPLE_OR_SCALAR_DATASPACES, "a dataspace is neither simple nor scalar"},
      {H5D_MPIO_NOT_CONTIGUOUS_OR_CHUNKED_DATASET, "the dataset is neither contiguous nor chunked"},
      {H5D_MPIO_PARALLEL_FILTERED_WRITES_DISABLED, "parallel writes to filtered datasets are disabled"},
      {H5D_MPIO_ERROR_WHILE_CHECKING_COLLECTIVE_POSSIBLE, "an error while checking whether collective I/O is possible"},
  };
  std::string text;
  for (const auto& [bit, words] : kCauses)
    if (causes & bit) text += (text.empty() ? "" : "; ") + std::string(words);
  if (text.empty())
    text = mode == H5D_MPIO_CHUNK_INDEPENDENT ? "HDF5 chose independent I/O for every chunk of this rank"
                                              : "HDF5 reports no collective I/O and no cause";
  return text;
}

// Counts one non-empty MPI-IO transfer as HDF5 says it was done (STYLE.md §9). Collective means:
// no rank had a cause to break it, and this rank's chunks (or contiguous data) went collectively.
void count_transfer(hid_t dxpl, FileContext& file, const std::string& path) {
  H5D_mpio_actual_io_mode_t mode = H5D_MPIO_NO_COLLECTIVE;
  uint32_t local = 0, global = 0;
  check(H5Pget_mpio_actual_io_mode(dxpl, &mode), "H5Pget_mpio_actual_io_mode", file.name, path);
  check(H5Pget_mpio_no_collective_cause(dxpl, &local, &global), "H5Pget_mpio_no_collective_cause", file.name, path);
  const uint32_t causes = local | global;
  if (causes == H5D_MPIO_COLLECTIVE && mode != H5D_MPIO_NO_COLLECTIVE && mode != H5D_MPIO_CHUNK_INDEPENDENT) {
    ++file.stats.collective;
  } else {
    ++file.stats.independent;
    file.stats.last_cause = path + ": " + independent_cause(mode, causes);
  }
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

Dataset::Dataset(Handle handle, std::shared_ptr<FileContext> file, std::string path)
    : handle_(std::move(handle)), file_(std::move(file)), path_(std::move(path)) {}

int64_t Dataset::element_count(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

std::vector<int64_t> Dataset::shape() const {
  Handle space(check(H5Dget_space(handle_.get()), "H5Dget_space", file_->name, path_), H5Sclose);
  const int rank = check(H5Sget_simple_extent_ndims(space.get()), "H5Sget_simple_extent_ndims", file_->name, path_);
  std::vector<hsize_t> dims(rank);
  check(H5Sget_simple_extent_dims(space.get(), dims.data(), nullptr), "H5Sget_simple_extent_dims", file_->name,
        path_);
  return {dims.begin(), dims.end()};
}

Dtype Dataset::dtype() const {
  Handle type(check(H5Dget_type(handle_.get()), "H5Dget_type", file_->name, path_), H5Tclose);
  const H5T_class_t cls = H5Tget_class(type.get());
  const size_t size = H5Tget_size(type.get());
  if (cls == H5T_FLOAT && size == 4) return Dtype::kFloat32;
  if (cls == H5T_FLOAT && size == 8) return Dtype::kFloat64;
  if (cls == H5T_INTEGER && size == 4) return Dtype::kInt32;
  if (cls == H5T_INTEGER && size == 8) return Dtype::kInt64;
  throw Error(file_->name + ": dataset " + path_ + " has a type other than float32/64 or int32/64");
}

void Dataset::resize_rows(int64_t rows) {
  auto dims = shape();
  if (dims.empty()) throw Error(file_->name + ": cannot resize scalar dataset " + path_);
  dims[0] = rows;
  const auto hdims = to_hsize(dims);
  check(H5Dset_extent(handle_.get(), hdims.data()), "H5Dset_extent", file_->name, path_);
}

Handle Dataset::file_selection(const std::vector<int64_t>& start, const std::vector<int64_t>& count,
                               const char* op) const {
  const auto dims = shape();
  bool ok = start.size() == dims.size() && count.size() == dims.size();
  for (size_t i = 0; ok && i < dims.size(); ++i)
    ok = start[i] >= 0 && count[i] >= 0 && start[i] + count[i] <= dims[i];
  if (!ok)
    throw Error(file_->name + ": " + op + " of " + path_ + " at start " + shape_str(start) + " count " +
                shape_str(count) + " is outside its shape " + shape_str(dims));
  Handle space(check(H5Dget_space(handle_.get()), "H5Dget_space", file_->name, path_), H5Sclose);
  if (element_count(count) == 0) {
    check(H5Sselect_none(space.get()), "H5Sselect_none", file_->name, path_);
  } else if (!dims.empty()) {
    const auto hstart = to_hsize(start), hcount = to_hsize(count);
    check(H5Sselect_hyperslab(space.get(), H5S_SELECT_SET, hstart.data(), nullptr, hcount.data(), nullptr),
          "H5Sselect_hyperslab", file_->name, path_);
  }
  return space;
}

// A contiguous host buffer of shape `count`, as HDF5 sees it; zero elements select none.
Handle Dataset::memory_space(const std::vector<int64_t>& count) const {
  const auto hcount = to_hsize(count);
  Handle space(check(H5Screate_simple(static_cast<int>(hcount.size()), hcount.data(), nullptr), "H5Screate_simple",
                     file_->name, path_),
               H5Sclose);
  if (element_count(count) == 0) check(H5Sselect_none(space.get()), "H5Sselect_none", file_->name, path_);
  return space;
}

void Dataset::transfer(bool write, const std::vector<int64_t>& start, const std::vector<int64_t>& count,
                       void* buffer, Dtype mem_dtype) const {
  Handle file_space = file_selection(start, count, write ? "write" : "read");
  const bool empty = element_count(count) == 0;
  // Serial: nothing to do. MPI-IO: the other ranks wait in the same H5Dwrite/H5Dread, so an empty
  // rank still calls it with nothing selected.
  if (empty && !file_->parallel()) return;
  Handle mem_space = memory_space(count);
  Handle xfer = make_transfer(*file_);
  if (write)
    check(H5Dwrite(handle_.get(), memory_type(mem_dtype), mem_space.get(), file_space.get(), xfer.get(), buffer),
          "H5Dwrite", file_->name, path_);
  else
    check(H5Dread(handle_.get(), memory_type(mem_dtype), mem_space.get(), file_space.get(), xfer.get(), buffer),
          "H5Dread", file_->name, path_);
  // An empty rank may report "no collective" for its own (absent) part: not counted.
  if (file_->parallel() && !empty) count_transfer(xfer.get(), *file_, path_);
}

void Dataset::write(const std::vector<int64_t>& start, const std::vector<int64_t>& count, const void* data,
                    Dtype mem_dtype) {
  // H5Dwrite takes const void*; transfer() shares one signature with read.
  transfer(true, start, count, const_cast<void*>(data), mem_dtype);
}

void Dataset::read(const std::vector<int64_t>& start, const std::vector<int64_t>& count, void* out,
                   Dtype mem_dtype) const {
  transfer(false, start, count, out, mem_dtype);
}

void Dataset::set_attribute(const std::string& name, const std::string& value) {
  set_string_attribute(handle_.get(), name, value, file_->name, path_);
}

std::string Dataset::attribute(const std::string& name) const {
  return get_string_attribute(handle_.get(), name, file_->name, path_);
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

Dataset Group::create_dataset(const std::string& path, const DatasetSpec& spec) {
  const std::string where = full_path(path);
  const auto parts = split_path(path);
  if (parts.empty()) throw Error(file_->name + ": empty dataset name");
  if (exists(path)) throw Error(file_->name + ": dataset " + where + " already exists");
  const size_t slash = path.find_last_of('/');
  if (slash != std::string::npos && slash > 0) create_group(path.substr(0, slash));

  const size_t rank = spec.shape.size();
  if (rank == 0) throw Error(file_->name + ": dataset " + where + " needs at least one dimension");
  for (int64_t d : spec.shape)
    if (d < 0) throw Error(file_->name + ": dataset " + where + " has a negative dimension " + shape_str(spec.shape));

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
  if (chunk.size() != rank) throw Error(file_->name + ": chunk " + shape_str(chunk) + " of " + where + " has the wrong rank");
  for (size_t i = 0; i < rank; ++i) {
    chunk[i] = std::max<int64_t>(chunk[i], 1);
    if (maxdims[i] != H5S_UNLIMITED) chunk[i] = std::min<int64_t>(chunk[i], spec.shape[i]);
  }
  const auto hchunk = to_hsize(chunk);

  Handle space(check(H5Screate_simple(static_cast<int>(rank), dims.data(), maxdims.data()), "H5Screate_simple",
                     file_->name, where),
               H5Sclose);
  Handle dcpl(check(H5Pcreate(H5P_DATASET_CREATE), "H5Pcreate", file_->name, where), H5Pclose);
  check(H5Pset_chunk(dcpl.get(), static_cast<int>(rank), hchunk.data()), "H5Pset_chunk", file_->name, where);
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
    check(H5Pset_fill_value(dcpl.get(), memory_type(spec.dtype), value), "H5Pset_fill_value", file_->name, where);
    check(H5Pset_fill_time(dcpl.get(), H5D_FILL_TIME_IFSET), "H5Pset_fill_time", file_->name, where);
  }
  if (spec.deflate > 0) check(H5Pset_deflate(dcpl.get(), spec.deflate), "H5Pset_deflate", file_->name, where);
  // Parallel HDF5 allocates file space collectively: all chunks (and their fill values) now, while
  // all ranks are here, not later inside a write that only some ranks' selections reach.
  if (file_->parallel())
    check(H5Pset_alloc_time(dcpl.get(), H5D_ALLOC_TIME_EARLY), "H5Pset_alloc_time", file_->name, where);

  Handle dataset(check(H5Dcreate2(handle_.get(), path.c_str(), file_type(spec.dtype), space.get(), H5P_DEFAULT,
                                  dcpl.get(), H5P_DEFAULT),
                       "H5Dcreate2", file_->name, where),
                 H5Dclose);
  return Dataset(std::move(dataset), file_, where);
}

Dataset Group::open_dataset(const std::string& path) const {
  if (!exists(path)) throw Error(file_->name + ": no dataset " + full_path(path));
  return Dataset(
      Handle(check(H5Dopen2(handle_.get(), path.c_str(), H5P_DEFAULT), "H5Dopen2", file_->name, full_path(path)), H5Dclose),
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

// --- H5Output -----------------------------------------------------------------------------------

std::filesystem::path H5Output::partial_name(const std::filesystem::path& out) {
  return std::filesystem::path(out.string() + ".partial");
}

H5Output::H5Output(const std::filesystem::path& out, const FileOptions& options)
    : final_(out), partial_(partial_name(out)), comm_(options.comm) {
  if (comm_ != MPI_COMM_NULL) check_mpi(MPI_Comm_rank(comm_, &rank_), "MPI_Comm_rank", partial_.string());
  file_.emplace(File::create(partial_, options));  // collective in MPI-IO mode
}

void H5Output::commit() {
  if (committed_) return;
  file_->close();
  const bool parallel = comm_ != MPI_COMM_NULL;
  // MPI-IO: every rank's data is in the file only once all ranks have closed it.
  if (parallel) check_mpi(MPI_Barrier(comm_), "MPI_Barrier", partial_.string());
  std::error_code ec;
  if (rank_ == 0) std::filesystem::rename(partial_, final_, ec);
  // A broadcast of rank 0's result instead of a second barrier: it holds every rank back until the
  // rename is done just the same, and makes a failed rename an error on all ranks, not only on 0.
  int failed = ec ? 1 : 0;
  if (parallel) check_mpi(MPI_Bcast(&failed, 1, MPI_INT, 0, comm_), "MPI_Bcast", partial_.string());
  if (failed)
    throw Error("cannot rename " + partial_.string() + " to " + final_.string() +
                (rank_ == 0 ? ": " + ec.message() : std::string(" (on rank 0)")));
  committed_ = true;
}

H5Output::~H5Output() {
  if (committed_) return;
  // Unfinished: close what we can (collectively in MPI-IO mode) and remove the partial file so
  // nothing looks like a result; one rank removes it, the others would race it.
  file_.reset();
  if (rank_ != 0) return;
  std::error_code ec;
  std::filesystem::remove(partial_, ec);
}

}  // namespace sfc::h5
