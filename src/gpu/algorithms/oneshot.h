// Launch interface of the one-shot all-reduce (oneshot.cu) and of its fused form with residual add and
// RMSNorm. Both need every rank of the communicator to be an NVLink peer (one host, at most kMaxOneShotRanks).
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

#include "gpu/device/device_wait.h"
#include "nvrar/types.h"

namespace nvrar::gpu {

constexpr int kMaxOneShotRanks = 8;
constexpr int kOneShotMaxThreads = 1024;

// The one-shot exchange area in each rank's symmetric heap: for parity p in {0, 1} and source rank src, the flagged
// cells of src's whole input (slot_units units of 32 bytes).
struct OneShotLayout {
  int64_t slot_units = 1;
  int ranks = 1;
  __host__ __device__ std::size_t slot(int parity, int src) const {
    return (static_cast<std::size_t>(parity) * ranks + src) * static_cast<std::size_t>(slot_units) * 32;
  }
  __host__ __device__ std::size_t total_bytes() const { return slot(2, 0); }
};

struct OneShotParams {
  const void* in;
  void* out;
  int64_t count;  // elements
  int64_t units;  // 16-byte units of the call
  KernelCommon common;  // rank, ranks, wait context, PDL: the same for every algorithm (set at setup)
  OneShotLayout layout;
  char* heaps[kMaxOneShotRanks];      // every rank's one-shot area, as peer pointers (mine included)
  unsigned long long* seq_counters;   // kMaxOneShotBlocks device words
  // Fused residual + RMSNorm (allreduce_add_rmsnorm); rows == 0 for a plain all-reduce.
  void* residual;
  const void* weight;
  int64_t rows;
  int64_t hidden;
  float eps;
};

constexpr int kMaxOneShotBlocks = 1024;

// Enqueues the one-shot kernel: blocks x threads (threads a multiple of 32, at most kOneShotMaxThreads).
cudaError_t launch_oneshot(const OneShotParams& params, DataType dtype, int blocks, int threads, cudaStream_t stream);

// Enqueues the fused one-shot all-reduce + residual add + RMSNorm (params.rows > 0, hidden x element size a
// multiple of 16 bytes).
cudaError_t launch_oneshot_rmsnorm(const OneShotParams& params, DataType dtype, int blocks, int threads,
                                   cudaStream_t stream);

}  // namespace nvrar::gpu
