// Thin C++ owners over the HDF5 C API: files, groups, chunked n-d datasets of four numeric types,
// hyperslab reads and writes, string attributes, and crash-safe outputs (write `<out>.partial`,
// rename on commit). Not a general HDF5 binding: only what the results files need.
//
// The only public header of the project about HDF5, and it does not include <hdf5.h> (hid_t is int64_t since
// HDF5 1.10; src/h5 checks that). Every HDF5 return code is checked in one place and turned into an
// sfc::Error naming the HDF5 call, the file and the object (docs/style.md §7).
//
// Two modes, chosen per file by FileOptions: serial (sec2 driver, no MPI needed, not even MPI_Init)
// and MPI-IO (FileOptions::comm set), where every rank of the communicator opens the same file.
// In MPI-IO mode these rules hold (parallel HDF5 hangs or corrupts the file otherwise):
//   - Collective metadata: every call other than Dataset::write/read and the local getters (path,
//     shape, dtype, io_stats, require_collective) reads or writes metadata collectively: creating
//     and opening files, groups and datasets, exists, attributes, resize_rows, flush, close,
//     H5Output::commit. ALL ranks make these calls in the same order with identical arguments
//     (identical attribute values too).
//   - Data: every rank calls each Dataset::write/read the same number of times, in the same order,
//     each with its own (disjoint, for writes) hyperslab; a rank with nothing to do passes a zero
//     count ("empty participation") instead of skipping the call.
//   - File::io_stats/require_collective check afterwards that HDF5 really did collective I/O
//     (docs/style.md §9): it silently falls back to independent I/O for some layouts and conversions.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace sfc::mpi {
class Comm;
}

namespace sfc::h5 {

using Id = int64_t;  // hid_t

enum class Dtype { kFloat32, kFloat64, kInt32, kInt64 };
const char* dtype_name(Dtype dtype);

template <typename T> struct DtypeOf;
template <> struct DtypeOf<float> { static constexpr Dtype value = Dtype::kFloat32; };
template <> struct DtypeOf<double> { static constexpr Dtype value = Dtype::kFloat64; };
template <> struct DtypeOf<int32_t> { static constexpr Dtype value = Dtype::kInt32; };
template <> struct DtypeOf<int64_t> { static constexpr Dtype value = Dtype::kInt64; };

// True when the linked libhdf5 was built with MPI (H5_HAVE_PARALLEL). The serial driver used here
// works with it without MPI_Init (tests/unit/test_h5_file.cpp checks both).
bool hdf5_is_parallel();

// Data transfers (Dataset::write/read) of one file in MPI-IO mode, as HDF5 reports it did them.
// Empty selections (zero-count participation) are not counted; serial files count nothing.
struct IoStats {
  int64_t collective = 0, independent = 0;
  std::string last_cause;  // why HDF5 did the last independent transfer independently
};

// What one file's groups and datasets share with it (name, MPI-IO mode, IoStats); defined in
// src/h5/h5_detail.h. Shared ownership keeps the counters valid for a Dataset that outlives its File.
struct FileContext;

// Move-only owner of one hid_t and the H5?close function that frees it. Never closed by hand.
class Handle {
 public:
  using Closer = int (*)(Id);
  Handle() = default;
  Handle(Id id, Closer closer) : id_(id), closer_(closer) {}
  ~Handle() { reset(); }
  Handle(Handle&& other) noexcept : id_(other.id_), closer_(other.closer_) { other.id_ = -1; }
  Handle& operator=(Handle&& other) noexcept;
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;

  Id get() const { return id_; }
  bool valid() const { return id_ >= 0; }
  // Closes now; a failure is reported (an Error naming `what`) rather than ignored, unlike in the
  // destructor. Used where closing is part of success (the file before a rename).
  void close(const std::string& what);
  void reset() noexcept;

 private:
  Id id_ = -1;
  Closer closer_ = nullptr;
};

// What a dataset looks like when created.
struct DatasetSpec {
  DatasetSpec() = default;
  DatasetSpec(Dtype dtype, std::vector<int64_t> shape, std::optional<double> fill = std::nullopt)
      : dtype(dtype), shape(std::move(shape)), fill(fill) {}

  Dtype dtype = Dtype::kFloat32;
  std::vector<int64_t> shape;  // e.g. (N, L, T, D)
  // Chunk shape; empty = one row of the first dimension per chunk (rows are what batches append),
  // the other dimensions halved until a chunk is ≤ 16 MiB.
  std::vector<int64_t> chunk;
  // Value of elements never written (NaN for floats, -1 for ints marks "not computed"). Converted
  // to the dataset's type. Unset: HDF5's default, 0.
  std::optional<double> fill;
  // 0 = no compression; 1..9 = deflate level.
  int deflate = 0;
};

class Dataset {
 public:
  Dataset(Handle handle, std::shared_ptr<FileContext> file, std::string path);

  const std::string& path() const { return path_; }
  std::vector<int64_t> shape() const;
  Dtype dtype() const;  // of the stored data; reads and writes convert to the buffer's type
  // Grows (or shrinks) the first dimension; every dataset made by create_dataset can.
  void resize_rows(int64_t rows);

  // Writes `count` elements starting at `start` (one entry per dimension) from a contiguous
  // row-major host buffer of type `mem_dtype`. Appending a batch of rows = start (n0, 0, ...).
  // A zero in `count` writes nothing: a no-op in serial mode, an empty participation in the
  // (collective) transfer in MPI-IO mode, where `data` may be null.
  void write(const std::vector<int64_t>& start, const std::vector<int64_t>& count, const void* data,
             Dtype mem_dtype);
  template <typename T>
  void write(const std::vector<int64_t>& start, const std::vector<int64_t>& count, const T* data) {
    write(start, count, data, DtypeOf<T>::value);
  }
  // In MPI-IO mode every rank writes the whole dataset: give all ranks the same data.
  template <typename T>
  void write_all(const std::vector<T>& data) {
    write(std::vector<int64_t>(shape().size(), 0), shape(), data.data(), DtypeOf<T>::value);
  }

  void read(const std::vector<int64_t>& start, const std::vector<int64_t>& count, void* out,
            Dtype mem_dtype) const;
  template <typename T>
  std::vector<T> read(const std::vector<int64_t>& start, const std::vector<int64_t>& count) const {
    std::vector<T> out(element_count(count));
    read(start, count, out.data(), DtypeOf<T>::value);
    return out;
  }
  template <typename T>
  std::vector<T> read_all() const {
    return read<T>(std::vector<int64_t>(shape().size(), 0), shape());
  }

  void set_attribute(const std::string& name, const std::string& value);
  std::string attribute(const std::string& name) const;

  static int64_t element_count(const std::vector<int64_t>& shape);

 private:
  // Dataspace selecting [start, start+count) in the file, after checking bounds.
  Handle memory_space(const std::vector<int64_t>& count) const;
  Handle file_selection(const std::vector<int64_t>& start, const std::vector<int64_t>& count,
                        const char* op) const;
  // H5Dwrite (write = true) or H5Dread with the file's transfer mode, counted in its IoStats.
  void transfer(bool write, const std::vector<int64_t>& start, const std::vector<int64_t>& count, void* buffer,
                Dtype mem_dtype) const;

  Handle handle_;
  std::shared_ptr<FileContext> file_;
  std::string path_;
};

// A group (the root group of a file too). Paths are relative to it, "a/b/c" style; "/x" is absolute.
class Group {
 public:
  Group(Handle handle, std::shared_ptr<FileContext> file, std::string path);

  const std::string& path() const { return path_; }
  // Creates the group and any missing intermediate groups; an existing group is opened.
  Group create_group(const std::string& path);
  Group open_group(const std::string& path) const;
  // Creates intermediate groups as needed; the dataset itself must not exist yet.
  Dataset create_dataset(const std::string& path, const DatasetSpec& spec);
  Dataset open_dataset(const std::string& path) const;
  bool exists(const std::string& path) const;  // a link at every level of the path

  void set_attribute(const std::string& name, const std::string& value);  // UTF-8 string
  std::string attribute(const std::string& name) const;
  bool has_attribute(const std::string& name) const;

  Id id() const { return handle_.get(); }

 protected:
  std::string full_path(const std::string& path) const;
  Handle handle_;
  std::shared_ptr<FileContext> file_;
  std::string path_;
};

// How a file is opened. Default: serial. With a communicator: MPI-IO, all of its ranks take part in
// every call listed at the top of this header; `comm` must stay valid while the file is open.
struct FileOptions {
  const mpi::Comm* comm = nullptr;  // null: serial
  // Collective data transfers (H5FD_MPIO_COLLECTIVE); false = independent, for comparison and tests
  // (HDF5 then refuses writes to deflated datasets).
  bool collective = true;
};

// An open HDF5 file; its root group's methods work on it directly.
class File : public Group {
 public:
  // Creates (truncating) a file.
  static File create(const std::filesystem::path& file, const FileOptions& options = {});
  static File open_read_only(const std::filesystem::path& file, const FileOptions& options = {});
  static File open_read_write(const std::filesystem::path& file, const FileOptions& options = {});

  const std::filesystem::path& file_path() const { return file_path_; }
  void flush();
  // Closes the file and checks that nothing inside it is still open (a Dataset that outlives its
  // File would otherwise keep it open, and a rename after close would race with its last writes).
  void close();
  bool is_open() const { return file_handle_.valid(); }

  // MPI-IO mode: how the non-empty transfers of this rank so far were done (nothing in serial mode).
  const IoStats& io_stats() const;
  // Throws an Error naming the file, `what` and HDF5's cause if any transfer counted in io_stats()
  // was independent. Local to this rank: call it on every rank (or reduce the counts yourself).
  void require_collective(const std::string& what) const;

 private:
  // H5Fopen of an existing file with `flags` (H5F_ACC_RDONLY or H5F_ACC_RDWR).
  static File open_existing(const std::filesystem::path& file, const FileOptions& options, unsigned flags);
  File(Handle file_handle, Handle root, std::shared_ptr<FileContext> context, const std::filesystem::path& file);
  Handle file_handle_;
  std::filesystem::path file_path_;
};

// A results file that only appears under its final name when the run finishes: writes go to
// `<out>.partial`; commit() closes it and renames it over `<out>`. Destroyed without commit()
// (an exception, a crash), the partial file is removed, or left behind by a hard crash, but never
// under the final name. With a communicator all ranks create the partial file together; commit()
// closes it on all ranks, then rank 0 alone renames it (no rank returns before the rename).
class H5Output {
 public:
  explicit H5Output(const std::filesystem::path& out, const FileOptions& options = {});
  ~H5Output();
  H5Output(const H5Output&) = delete;
  H5Output& operator=(const H5Output&) = delete;

  File& file() { return *file_; }
  const std::filesystem::path& final_path() const { return final_; }
  const std::filesystem::path& partial_path() const { return partial_; }
  void commit();

  static std::filesystem::path partial_name(const std::filesystem::path& out);

 private:
  std::filesystem::path final_, partial_;
  const mpi::Comm* comm_ = nullptr;  // from FileOptions; null in serial mode
  std::optional<File> file_;
  bool committed_ = false;
};

}  // namespace sfc::h5
