// Internal to the GPU backend of nvrar-bench (gpu_backend.cpp, gpu_backend_algorithms.cpp, gpu_backend_measure.cpp):
// the check macros that turn a failed CUDA or NCCL call into an nvrar::Error "nvrar-bench: rank R <call> failed at
// file:line: <cause>".
#pragma once

#include <cuda_runtime_api.h>
#include <nccl.h>

#include <cstring>
#include <string>

#include <fmt/format.h>

#include "nvrar/types.h"

namespace nvrar::bench {

inline const char* base_name(const char* path) {
  const char* slash = std::strrchr(path, '/');
  return slash != nullptr ? slash + 1 : path;
}

[[noreturn]] inline void throw_call_error(int rank, const char* call, const char* file, int line,
                                          const std::string& cause) {
  throw Error(fmt::format("nvrar-bench: rank {} {} failed at {}:{}: {}", rank, call, base_name(file), line, cause));
}

inline std::string nccl_cause(ncclResult_t result) {
  const char* last = ncclGetLastError(nullptr);
  return last != nullptr && *last != '\0' ? fmt::format("{} ({})", ncclGetErrorString(result), last)
                                          : std::string(ncclGetErrorString(result));
}

}  // namespace nvrar::bench

#define BENCH_CUDA_CHECK(rank, call)                                                                     \
  do {                                                                                                   \
    const cudaError_t bench_err_ = (call);                                                               \
    if (bench_err_ != cudaSuccess)                                                                       \
      ::nvrar::bench::throw_call_error(rank, #call, __FILE__, __LINE__, cudaGetErrorString(bench_err_)); \
  } while (0)

#define BENCH_NCCL_CHECK(rank, call)                                                                             \
  do {                                                                                                           \
    const ncclResult_t bench_res_ = (call);                                                                      \
    if (bench_res_ != ncclSuccess)                                                                               \
      ::nvrar::bench::throw_call_error(rank, #call, __FILE__, __LINE__, ::nvrar::bench::nccl_cause(bench_res_)); \
  } while (0)
