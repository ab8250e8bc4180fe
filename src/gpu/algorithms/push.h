// Launch interface of the plain-data push two-shot all-reduce (push.cu): reduce-scatter +
// all-gather over NVLink for inputs and outputs anywhere in device memory, the data moved as plain 16-byte units
// (no flag words in it) behind one flag per piece of the message. One NVLink domain only (every rank load/store
// reachable). Capacity: Options::ll128_max_bytes, else the larger of 16 MiB and the tuning table's largest push size.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

#include "gpu/device/device_wait.h"
#include "nvrar/types.h"

namespace nvrar::gpu {

constexpr int kMaxPushRanks = 8;
constexpr int kMaxPushBlocks = 128;   // grid limit; the communicator also caps it at push_resident_blocks()
constexpr int kPushMaxThreads = 512;
constexpr int kPushUnitsPerLane = 4;  // 16-byte units a lane keeps in flight per round
constexpr int64_t kPushRoundUnits = 32 * kPushUnitsPerLane;  // a warp's round: 128 units (2 KB)

// First 16-byte unit of slice s of a message of `units` units cut into `ranks` slices (the same on every rank).
__host__ __device__ inline int64_t push_slice_begin(int64_t units, int ranks, int s) { return units * s / ranks; }

// The slot of rank `src`'s data in rank `holder`'s area: the P - 1 other ranks in the order holder + 1, holder + 2, ...
__host__ __device__ inline int push_slot(int holder, int src, int ranks) { return (src - holder - 1 + ranks) % ranks; }

// The push exchange area in each rank's symmetric heap (one buffer, no parity: see the Sync note of the kernel):
//   reduce-scatter slots k = 0..P-2: slot k holds rank (me + 1 + k)'s units of my slice;
//   all-gather slots k = 0..P-2: slot k holds rank (me + 1 + k)'s summed units of its own slice;
//   then one 8-byte flag per (slot, piece) for each of the two: the call's sequence number once the piece is there.
// Pieces are counted at the smallest piece (kPushRoundUnits), so every piece size fits the flag arrays.
struct PushLayout {
  int64_t slice_units_max = 1;  // the largest slice of the largest message
  int64_t pieces_max = 1;       // ceil(slice_units_max / kPushRoundUnits)
  int ranks = 1;
  __host__ __device__ std::size_t slot_bytes() const { return static_cast<std::size_t>(slice_units_max) * 16; }
  __host__ __device__ std::size_t reduce_scatter(int slot, int64_t slice_unit) const {
    return static_cast<std::size_t>(slot) * slot_bytes() + static_cast<std::size_t>(slice_unit) * 16;
  }
  __host__ __device__ std::size_t all_gather(int slot, int64_t slice_unit) const {
    return static_cast<std::size_t>(ranks - 1 + slot) * slot_bytes() + static_cast<std::size_t>(slice_unit) * 16;
  }
  __host__ __device__ std::size_t data_bytes() const {
    return static_cast<std::size_t>(2 * (ranks - 1)) * slot_bytes();
  }
  __host__ __device__ std::size_t reduce_scatter_flag(int slot, int64_t piece) const {
    return data_bytes() + (static_cast<std::size_t>(slot) * pieces_max + piece) * 8;
  }
  __host__ __device__ std::size_t all_gather_flag(int slot, int64_t piece) const {
    return data_bytes() + (static_cast<std::size_t>(ranks - 1 + slot) * pieces_max + piece) * 8;
  }
  __host__ __device__ std::size_t total_bytes() const {
    return data_bytes() + static_cast<std::size_t>(2 * (ranks - 1)) * pieces_max * 8;
  }
};

// The layout for messages up to max_bytes on `ranks` ranks.
PushLayout push_layout(std::size_t max_bytes, int ranks);

struct PushParams {
  const void* in;
  void* out;
  int64_t count;        // elements
  int64_t units;        // 16-byte units of the message
  int64_t piece_units;  // units per piece (a multiple of kPushRoundUnits), the same on every rank: one flag per piece
                        // and slot
  KernelCommon common;  // rank, ranks, wait context, PDL: the same for every algorithm (set at setup)
  PushLayout layout;
  char* areas[kMaxPushRanks];        // every rank's push area, as peer pointers (mine included)
  unsigned long long* seq_counters;  // kMaxPushBlocks device words
};

// How many blocks of `threads` threads of the kernel for `dtype` and `ranks` fit on the current device at once
// (occupancy x SM count); 0 if the runtime cannot tell. Every block must be resident (warps wait for each other).
int push_resident_blocks(DataType dtype, int ranks, int threads);

// Enqueues the kernel: blocks <= kMaxPushBlocks, threads a multiple of 32 up to kPushMaxThreads, piece_units a
// positive multiple of kPushRoundUnits.
cudaError_t launch_push(const PushParams& params, DataType dtype, int blocks, int threads, cudaStream_t stream);

}  // namespace nvrar::gpu
