// HDF5 datasets: creating them (Group::create_dataset: chunks, fill values), hyperslab reads and writes,
// and counting how MPI-IO really did each transfer (collective or not, and why).
#include <hdf5.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "h5_detail.h"
#include "sfc/core/error.h"
#include "sfc/core/shapes.h"
#include "sfc/h5/h5_file.h"

static_assert(std::is_same_v<hid_t, sfc::h5::Id>, "sfc::h5::Id must be hid_t (HDF5 >= 1.10)");
static_assert(std::is_same_v<hsize_t, unsigned long long> || sizeof(hsize_t) == 8, "hsize_t is 64-bit");

namespace sfc::h5 {

using detail::check;
using detail::get_string_attribute;
using detail::set_string_attribute;
using detail::split_path;

namespace {

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

// The transfer property list of each read and write (collective MPI-IO): with make_file_access in
// h5_file.cpp, where parallel HDF5 differs.
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

// Counts one non-empty MPI-IO transfer as HDF5 says it was done (docs/style.md §9). Collective means:
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

// --- Group: creating and opening datasets --------------------------------------------------------

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

}  // namespace sfc::h5
