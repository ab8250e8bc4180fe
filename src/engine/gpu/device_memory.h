// Device memory and CUDA errors for the engine's host code: cuda_check turns a failed CUDA call into an
// nvrar::Error naming the rank and the call; DeviceMemory owns a set of cudaMalloc allocations (weights,
// activations, the KV cache, sampling buffers) and frees them together, in reverse order, when it goes.
// Allocation happens once, when the engine is built; nothing here runs per step.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>
#include <vector>

#include "engine/gpu/layers.h"

namespace nvrar::engine::gpu {

// Throws nvrar::Error "nvrar-llm: rank R WHAT: <CUDA's message>" unless e is cudaSuccess; where a prefill kernel's
// bounded wait gave up (copy_wait.h), its message follows.
void cuda_check(cudaError_t e, const char* what, int rank);

class DeviceMemory {
 public:
  explicit DeviceMemory(int rank) : rank_(rank) {}
  ~DeviceMemory();
  DeviceMemory(const DeviceMemory&) = delete;
  DeviceMemory& operator=(const DeviceMemory&) = delete;

  // `bytes` of device memory, freed with this object; Error naming `what` and the MiB asked for when out of memory.
  void* allocate(std::size_t bytes, const char* what);
  bf16_t* bf16(int64_t elements, const char* what) {
    return static_cast<bf16_t*>(allocate(static_cast<std::size_t>(elements) * sizeof(bf16_t), what));
  }
  float* f32(int64_t elements, const char* what) {
    return static_cast<float*>(allocate(static_cast<std::size_t>(elements) * sizeof(float), what));
  }
  int32_t* i32(int64_t elements, const char* what) {
    return static_cast<int32_t*>(allocate(static_cast<std::size_t>(elements) * sizeof(int32_t), what));
  }

 private:
  int rank_;
  std::vector<void*> allocations_;
};

}  // namespace nvrar::engine::gpu
