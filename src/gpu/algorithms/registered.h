// Launch interface of the zero-copy (registered-buffer) two-shot all-reduce (registered.cu). The
// input lies in a buffer of Communicator::allocate_buffer(), so every rank can load its peers' inputs where they
// are; one NVLink domain only (every rank load/store reachable).
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

#include "gpu/device/device_wait.h"
#include "nvrar/types.h"

namespace nvrar::gpu {

constexpr int kMaxRegisteredRanks = 8;
constexpr int kMaxRegisteredBlocks = 256;
constexpr int kRegisteredMaxThreads = 512;

// The synchronisation area in each rank's symmetric heap. Slot (src, block) of "ready" is written by rank src's
// block `block` when its input of the call is final: one 64-bit word, the call's sequence number (low 32 bits) in
// the high half and src's agreement hash (RegisteredParams::agreement) in the low half, stored with release
// semantics. Slot (src, block) of "done": src's block has stored its share of the sums into this rank's output or
// gather area (the sequence number).
struct RegisteredSyncLayout {
  static constexpr std::size_t kReadySlotBytes = 8;
  static constexpr std::size_t kDoneSlotBytes = 8;
  __host__ __device__ static std::size_t ready(int src, int block) {
    return (static_cast<std::size_t>(src) * kMaxRegisteredBlocks + block) * kReadySlotBytes;
  }
  __host__ __device__ static std::size_t done(int src, int block) {
    return ready(kMaxRegisteredRanks, 0) + (static_cast<std::size_t>(src) * kMaxRegisteredBlocks + block) * kDoneSlotBytes;
  }
  __host__ __device__ static std::size_t total_bytes() { return done(kMaxRegisteredRanks, 0); }
};

struct RegisteredParams {
  const char* in[kMaxRegisteredRanks];   // every rank's input of this call (mine at [rank]), load/store pointers
  char* out;                             // my output
  char* out_peers[kMaxRegisteredRanks];  // direct form: every rank's output (mine at [rank]); else unused
  char* gather[kMaxRegisteredRanks];     // copy-out form: every rank's gather area (>= the message); else unused
  char* sync[kMaxRegisteredRanks];       // every rank's RegisteredSyncLayout area
  bool direct;                           // the output lies in a registered buffer too: sums go straight there
  int64_t count;                         // elements
  int64_t units;                         // 16-byte units of the call
  KernelCommon common;  // rank, ranks, wait context, PDL: the same for every algorithm (set at setup)
  // What every rank must agree on, compared by the GPU before any data moves: a 32-bit hash of the input's and the
  // output's place (buffer number and offset; none for an unregistered output) and the call's count, type and grid
  // (registered_agreement()).
  uint32_t agreement;
  unsigned long long* seq_counters;  // kMaxRegisteredBlocks device words
};

// The agreement hash of a call's descriptors: in = buffer number << 40 | offset, out likewise or ~0 for an
// unregistered output, shape = count << 20 | dtype << 16 | blocks.
uint32_t registered_agreement(unsigned long long in, unsigned long long out, unsigned long long shape);

// Blocks for a call: one per `threads` x 4 units of the largest slice, at least 1, at most max_blocks (and
// kMaxRegisteredBlocks).
int registered_blocks(int64_t units, int ranks, int threads, int max_blocks);

// Enqueues the kernel: blocks x threads (threads a multiple of 32, at most kRegisteredMaxThreads).
cudaError_t launch_registered(const RegisteredParams& params, DataType dtype, int blocks, int threads,
                              cudaStream_t stream);

}  // namespace nvrar::gpu
