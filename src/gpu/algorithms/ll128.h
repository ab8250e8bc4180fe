// Launch interface of the LL128 two-shot all-reduce (ll128.cu): reduce-scatter + all-gather over NVLink
// with 128-byte lines that carry their own flag, so no barrier, fence or copy-in is needed; inputs and outputs
// anywhere in device memory. One NVLink domain only (every rank load/store reachable).
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

#include "gpu/device/device_wait.h"
#include "nvrar/types.h"

namespace nvrar::gpu {

constexpr int kMaxLl128Ranks = 8;
constexpr int kMaxLl128Blocks = 128;  // grid limit; the communicator also caps it at ll128_resident_blocks()
constexpr int kLl128MaxThreads = 1024;
constexpr int kLl128LineBytes = 128;     // one line: 15 payload words of 8 bytes and one flag word
constexpr int kLl128PayloadBytes = 120;  // message bytes per line

// Lines of a message of `bytes` (at least one per rank, so that every pair of ranks exchanges data both ways in
// both phases; padding lines carry zeros nobody stores).
__host__ __device__ inline int64_t ll128_lines(int64_t bytes, int ranks) {
  const int64_t lines = (bytes + kLl128PayloadBytes - 1) / kLl128PayloadBytes;
  return lines < ranks ? ranks : lines;
}

// First line of slice s of a message of `lines` lines cut into `ranks` slices (the same on every rank).
__host__ __device__ inline int64_t ll128_slice_begin(int64_t lines, int ranks, int s) { return lines * s / ranks; }

// The LL128 exchange area in each rank's symmetric heap, for each parity of the call's sequence number: the
// all-gather region (a line slot for every line of the largest message; owners store the summed lines of their
// slice there) and one reduce-scatter slot per source rank (the source's lines of this rank's slice).
struct Ll128Layout {
  int64_t lines_max = 1;        // ll128_lines(Options::ll128_max_bytes)
  int64_t slice_lines_max = 1;  // the largest slice of such a message
  int ranks = 1;
  __host__ __device__ std::size_t region(int parity) const {
    return static_cast<std::size_t>(parity) * static_cast<std::size_t>(lines_max + ranks * slice_lines_max) *
           kLl128LineBytes;
  }
  __host__ __device__ std::size_t all_gather(int parity, int64_t line) const {
    return region(parity) + static_cast<std::size_t>(line) * kLl128LineBytes;
  }
  __host__ __device__ std::size_t reduce_scatter(int parity, int src, int64_t slice_line) const {
    return region(parity) + static_cast<std::size_t>(lines_max + src * slice_lines_max + slice_line) * kLl128LineBytes;
  }
  __host__ __device__ std::size_t total_bytes() const { return region(2); }
};

struct Ll128Params {
  const void* in;
  void* out;
  int64_t count;  // elements
  int64_t bytes;  // count x element size
  int64_t lines;  // ll128_lines(bytes, ranks)
  KernelCommon common;  // rank, ranks, wait context, PDL: the same for every algorithm (set at setup)
  Ll128Layout layout;
  char* heaps[kMaxLl128Ranks];       // every rank's LL128 area, as peer pointers (mine included)
  unsigned long long* seq_counters;  // kMaxLl128Blocks device words
};

// How many blocks of `threads` threads of the kernel for `dtype` fit on the current device at once (occupancy x SM
// count); 0 if the runtime cannot tell. Every block must be resident (the kernel's blocks wait for each other).
int ll128_resident_blocks(DataType dtype, int threads);

// Enqueues the kernel: blocks <= kMaxLl128Blocks, threads a multiple of 32 up to kLl128MaxThreads.
cudaError_t launch_ll128(const Ll128Params& params, DataType dtype, int blocks, int threads, cudaStream_t stream);

}  // namespace nvrar::gpu
