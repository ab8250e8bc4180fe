# CUDA parts of NVRAR. Compiled wherever nvcc is found (CI compiles them; only the GPU machine runs them).

# Device build of the shared schedule and conversions, checked against the host build by test_gpu_schedule.
add_library(nvrar_cuda_check STATIC src/gpu/device/schedule_device_check.cu)
target_include_directories(nvrar_cuda_check PUBLIC ${CMAKE_CURRENT_SOURCE_DIR}/src ${CMAKE_CURRENT_SOURCE_DIR}/include)
target_link_libraries(nvrar_cuda_check PUBLIC CUDA::cudart)

# NCCL: the CUDA toolkit's copy (or NCCL_HOME).
find_path(NVRAR_NCCL_INCLUDE nccl.h HINTS $ENV{NCCL_HOME}/include ${CUDAToolkit_INCLUDE_DIRS} /usr/include)
find_library(NVRAR_NCCL_LIB nccl HINTS $ENV{NCCL_HOME}/lib ${CUDAToolkit_LIBRARY_DIR} /usr/lib/x86_64-linux-gnu)
if(NOT NVRAR_NCCL_INCLUDE OR NOT NVRAR_NCCL_LIB)
  message(FATAL_ERROR "NCCL not found (looked in NCCL_HOME and the CUDA toolkit)")
endif()
add_library(nvrar_nccl INTERFACE)
target_include_directories(nvrar_nccl INTERFACE ${NVRAR_NCCL_INCLUDE})
target_link_libraries(nvrar_nccl INTERFACE ${NVRAR_NCCL_LIB})

# The GPU library: communicator, bootstrap, kernels. Shared, so NVSHMEM's device code is linked (device link)
# once into it, next to the host calls that initialise it.
set(_gpu_sources
  src/gpu/communicator.cpp
  src/gpu/setup.cpp
  src/gpu/first_use_tune.cpp
  src/gpu/runtime/bootstrap.cpp
  src/gpu/runtime/nvshmem_runtime.cu
  src/gpu/runtime/nvshmem_heap.cpp
  src/gpu/runtime/device_failure.cpp
  src/gpu/runtime/registered_buffers.cpp
  src/gpu/device/residual_rmsnorm.cu)
# Every algorithm entry (docs/algorithms.md, "Adding an algorithm"): its kernel, its host class, the registry.
file(GLOB _algorithm_sources CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/src/gpu/algorithms/*.cu
     ${CMAKE_CURRENT_SOURCE_DIR}/src/gpu/algorithms/*.cpp)
list(APPEND _gpu_sources ${_algorithm_sources})
if(NVRAR_HAVE_MPI)
  list(APPEND _gpu_sources src/gpu/runtime/bootstrap_mpi.cpp)
else()
  list(APPEND _gpu_sources src/gpu/runtime/bootstrap_no_mpi.cpp)
endif()
add_library(nvrar_gpu SHARED ${_gpu_sources})
add_library(nvrar::gpu ALIAS nvrar_gpu)
target_include_directories(nvrar_gpu
  PUBLIC $<BUILD_INTERFACE:${CMAKE_CURRENT_SOURCE_DIR}/include> $<INSTALL_INTERFACE:include>
  PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/src)
target_link_libraries(nvrar_gpu PUBLIC nvrar CUDA::cudart nvrar_nccl PRIVATE fmt::fmt)
# Tuning tables shipped with NVRAR (NVRAR_TUNING_DIR overrides at run time).
include(GNUInstallDirs)
target_compile_definitions(nvrar_gpu PRIVATE NVRAR_DEFAULT_TUNING_DIR="${CMAKE_CURRENT_SOURCE_DIR}/tuning"
                                             NVRAR_INSTALLED_TUNING_DIR="${CMAKE_INSTALL_FULL_DATADIR}/nvrar/tuning")
if(NVRAR_HAVE_MPI)
  target_link_libraries(nvrar_gpu PRIVATE MPI::MPI_CXX)
endif()
if(NVRAR_HAVE_NVSHMEM)
  target_compile_definitions(nvrar_gpu PRIVATE NVRAR_HAVE_NVSHMEM=1)
  target_include_directories(nvrar_gpu PRIVATE ${NVRAR_NVSHMEM_ROOT}/include)
  set_target_properties(nvrar_gpu PROPERTIES CUDA_SEPARABLE_COMPILATION ON CUDA_RESOLVE_DEVICE_SYMBOLS ON)
  target_link_libraries(nvrar_gpu PRIVATE ${NVRAR_NVSHMEM_ROOT}/lib/libnvshmem_device.a ${NVRAR_NVSHMEM_HOST_LIB}
                        CUDA::cuda_driver)
  # NVSHMEM's headers use volatile compound assignments that C++20 deprecates.
  target_compile_options(nvrar_gpu PRIVATE $<$<COMPILE_LANGUAGE:CUDA>:-diag-suppress=3012,3013>)
else()
  target_compile_definitions(nvrar_gpu PRIVATE NVRAR_HAVE_NVSHMEM=0)
endif()

include(NvrarEngineGpu)
include(NvrarCApi)
