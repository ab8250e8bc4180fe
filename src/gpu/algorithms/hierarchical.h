// Launch interface of the fused hierarchical all-reduce kernel (hierarchical.cu). Host code fills a
// HierarchicalParams per call; everything the kernel needs travels by value, so calls are graph-capturable.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "core/schedule.h"
#include "core/topology.h"
#include "gpu/device/device_wait.h"
#include "nvrar/types.h"

namespace nvrar::gpu {

constexpr int kMaxGpusPerNode = 8;     // NVLink domains of today's nodes (HGX: 8); a larger G is rejected at setup
constexpr int kMaxInterSteps = 2 + 20;  // fold-in, up to 2^20 nodes of doubling, fold-out
constexpr int kMaxBlocks = 128;         // below the 132 SMs of an H100 SXM, so every block is resident at once

struct HierarchicalParams {
  const void* in;
  void* out;
  core::Topology topo;
  core::HeapLayout layout;
  core::CallShape shape;
  char* heap;                                // this rank's symmetric heap (its symmetric address)
  char* local_heaps[kMaxGpusPerNode];        // heaps of this node's ranks by local rank, as peer pointers
  char* inter_direct[kMaxInterSteps];        // partner's heap per inter-node step when stored to directly;
                                             // nullptr: the step uses an NVSHMEM put
  int inter_pe[kMaxInterSteps];              // partner rank (PE) per inter-node step, -1 when the step is unused
  unsigned long long* seq_counters;          // kMaxBlocks device words: the last call's sequence number
  KernelCommon common;  // rank, ranks, wait context, PDL: the same for every algorithm (set at setup)
  int bulk_sync;                             // dev::BulkSync: how the bulk form publishes and awaits flags
};

// One 16-byte unit per thread per chunk: a block has shape.chunk_units threads, at most kMaxThreadsPerBlock.
constexpr int kMaxThreadsPerBlock = 512;
constexpr int kMinChunkUnits = 32;  // one warp

// Chunk size for a call: `forced` (NVRAR_CHUNK_UNITS) when positive, else the smallest multiple of a warp that
// spreads the largest slice over at most max_blocks blocks (more blocks keep more NVLink stores in flight).
int hierarchical_chunk_units(int64_t slice_units, int max_blocks, int forced);

// Blocks for a call of this shape: one per chunk of the largest slice, at most max_blocks.
int hierarchical_blocks(const core::CallShape& shape, int max_blocks);

// Enqueues the kernel on `stream` with shape.chunk_units threads per block. Returns the launch error, if any.
cudaError_t launch_hierarchical(const HierarchicalParams& params, DataType dtype, int blocks, cudaStream_t stream);

}  // namespace nvrar::gpu
