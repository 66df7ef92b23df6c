# Finds every external dependency once and exposes it as an imported target.

# --- LibTorch: Debian's libtorch-dev 1.13 (CPU), or LibTorch 2.x with CUDA via CMAKE_PREFIX_PATH.
find_package(Torch 1.13 REQUIRED)
# TORCH_CXX_FLAGS carries the ABI flag (-D_GLIBCXX_USE_CXX11_ABI=…); every target must agree on it.
separate_arguments(SFC_TORCH_CXX_FLAGS UNIX_COMMAND "${TORCH_CXX_FLAGS}")
add_library(sfc_torch INTERFACE)
target_link_libraries(sfc_torch INTERFACE ${TORCH_LIBRARIES})
target_compile_options(sfc_torch INTERFACE ${SFC_TORCH_CXX_FLAGS})
add_compile_options(${SFC_TORCH_CXX_FLAGS})

# --- MPI
find_package(MPI REQUIRED COMPONENTS C)
# <mpi.h> from C++ without the deprecated C++ bindings (they would need libmpi_cxx).
add_compile_definitions(OMPI_SKIP_MPICXX MPICH_SKIP_MPICXX)

# --- Parallel HDF5. Must be asked for before find_package, or a serial libhdf5-dev wins.
set(HDF5_PREFER_PARALLEL TRUE)
find_package(HDF5 REQUIRED COMPONENTS C)
if(NOT HDF5_IS_PARALLEL)
  message(FATAL_ERROR
    "sfc-errors needs a parallel (MPI) HDF5, but found a serial one (${HDF5_INCLUDE_DIRS}). "
    "On Debian: apt-get install libhdf5-openmpi-dev; elsewhere point HDF5_ROOT at an MPI build.")
endif()
add_library(sfc_hdf5 INTERFACE)
target_include_directories(sfc_hdf5 SYSTEM INTERFACE ${HDF5_INCLUDE_DIRS})
target_link_libraries(sfc_hdf5 INTERFACE ${HDF5_C_LIBRARIES} MPI::MPI_C)
target_compile_definitions(sfc_hdf5 INTERFACE ${HDF5_DEFINITIONS})

# --- Boost.Program_options, nlohmann-json, libzip (npz files are zip archives)
find_package(Boost 1.74 REQUIRED COMPONENTS program_options)
find_package(nlohmann_json 3.10 REQUIRED)
find_package(PkgConfig REQUIRED)
pkg_check_modules(LIBZIP REQUIRED IMPORTED_TARGET libzip)

# --- sentencepiece, linked statically against the system protobuf.
# Debian's shared libsentencepiece exports a bundled protobuf 3.14 that clashes with the protobuf
# libtorch loads: any program linking both crashes before main (docs/building.md). scripts/setup-debian.sh
# builds the static library; on a cluster, point SFC_SENTENCEPIECE_ROOT at any sentencepiece install.
set(SFC_SENTENCEPIECE_ROOT "${SFC_DEPS_PREFIX}/sentencepiece" CACHE PATH "sentencepiece install prefix")
find_path(SFC_SPM_INCLUDE sentencepiece_processor.h
  HINTS ${SFC_SENTENCEPIECE_ROOT}/include NO_DEFAULT_PATH)
find_library(SFC_SPM_LIB NAMES libsentencepiece.a sentencepiece
  HINTS ${SFC_SENTENCEPIECE_ROOT}/lib ${SFC_SENTENCEPIECE_ROOT}/lib64 NO_DEFAULT_PATH)
find_library(SFC_SPM_TRAIN_LIB NAMES libsentencepiece_train.a sentencepiece_train
  HINTS ${SFC_SENTENCEPIECE_ROOT}/lib ${SFC_SENTENCEPIECE_ROOT}/lib64 NO_DEFAULT_PATH)
if(NOT SFC_SPM_INCLUDE OR NOT SFC_SPM_LIB OR NOT SFC_SPM_TRAIN_LIB)
  message(FATAL_ERROR
    "sentencepiece not found under SFC_SENTENCEPIECE_ROOT=${SFC_SENTENCEPIECE_ROOT}. "
    "Run scripts/setup-debian.sh (builds it statically against the system protobuf), "
    "or pass -DSFC_SENTENCEPIECE_ROOT=<prefix of a sentencepiece install>.")
endif()
find_package(Protobuf REQUIRED)
add_library(sfc_sentencepiece INTERFACE)
target_include_directories(sfc_sentencepiece SYSTEM INTERFACE ${SFC_SPM_INCLUDE})
target_link_libraries(sfc_sentencepiece INTERFACE ${SFC_SPM_TRAIN_LIB} ${SFC_SPM_LIB} protobuf::libprotobuf)

# --- Optional CUDA / NCCL (compiled in CI when /usr/local/cuda exists; run only on a GPU machine).
if(SFC_WITH_NCCL)
  set(SFC_WITH_CUDA ON)
endif()
if(SFC_WITH_CUDA)
  find_package(CUDAToolkit REQUIRED)
endif()
if(SFC_WITH_NCCL)
  find_library(SFC_NCCL_LIB nccl HINTS ${CUDAToolkit_LIBRARY_DIR} ${CUDAToolkit_LIBRARY_ROOT}/lib64 ENV NCCL_HOME PATH_SUFFIXES lib lib64)
  find_path(SFC_NCCL_INCLUDE nccl.h HINTS ${CUDAToolkit_INCLUDE_DIRS} ENV NCCL_HOME PATH_SUFFIXES include)
  if(NOT SFC_NCCL_LIB OR NOT SFC_NCCL_INCLUDE)
    message(FATAL_ERROR "SFC_WITH_NCCL=ON but nccl.h / libnccl were not found (set NCCL_HOME).")
  endif()
endif()

# --- GoogleTest
if(SFC_BUILD_TESTS)
  find_package(GTest REQUIRED)
endif()

# Warnings for our own code only.
set(SFC_WARNINGS -Wall -Wextra -Wno-unused-parameter)
