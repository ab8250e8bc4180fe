// Device memory and CUDA errors for the engine's host code (device_memory.h).
#include "engine/gpu/device_memory.h"

#include <cuda_runtime.h>

#include <fmt/format.h>

#include <string>

#include "engine/gpu/copy_wait.h"
#include "nvrar/types.h"

namespace nvrar::engine::gpu {

void cuda_check(cudaError_t e, const char* what, int rank) {
  if (e == cudaSuccess) return;
  const std::string timed_out = copy_wait_failure();  // a prefill kernel that gave up on a wait trapped
  throw Error(fmt::format("nvrar-llm: rank {} {}: {}{}{}", rank, what, cudaGetErrorString(e),
                          timed_out.empty() ? "" : "; ", timed_out));
}

DeviceMemory::~DeviceMemory() {
  for (auto it = allocations_.rbegin(); it != allocations_.rend(); ++it) cudaFree(*it);
}

void* DeviceMemory::allocate(std::size_t bytes, const char* what) {
  void* p = nullptr;
  const cudaError_t e = cudaMalloc(&p, bytes);
  if (e != cudaSuccess)
    throw Error(fmt::format("nvrar-llm: rank {}: cannot allocate {} MiB for {}: {}", rank_, bytes >> 20, what,
                            cudaGetErrorString(e)));
  allocations_.push_back(p);
  return p;
}

}  // namespace nvrar::engine::gpu
