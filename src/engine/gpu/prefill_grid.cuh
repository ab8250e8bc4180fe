// The grid of the tensor-core prefill attention kernels (flash_prefill.cu, flash_prefill_wgmma.cu,
// flash_prefill_wgmma_overlap.cu, flash_prefill_wgmma_ws.cu): one block per (query tile, query head), in one
// dimension, in an order that shortens the kernel's tail without giving up L2 reuse of K and V.
//
// Blocks start in about the order of their index. The heads are cut into sections of whole KV groups whose K and V
// (max_len keys each) fit in ~70% of L2; the sections run one after another, and inside a section the index runs
// over the plan's tiles with the section's heads fastest. plan_prefill orders a chunk's tiles in groups of
// sequences whose K and V fit the same ~70% of L2, longest attention first inside each group. So the longest blocks
// of a group start first and its shortest end it (longest-processing-time-first), and the blocks that run together
// read the K and V of a few sequences and KV heads, which stay in L2. Before, the grid was (tiles, heads), one head
// after another: a CPU model of the schedule (docs/perf-notes.md) puts the kernel at 1.2-1.5x the time of its work
// spread evenly over the SMs at 1 x 2048 - 8 x 2048 - 1 x 8192, ~1.03x with sections.
#pragma once

#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <string>

#include "engine/gpu/attention.h"
#include "engine/prefill_plan.h"
#include "nvrar/types.h"

namespace nvrar::engine::gpu {

struct PrefillGrid {
  unsigned blocks = 0;         // tiles x q_heads
  unsigned tiles = 0;          // query tiles of the chunk
  unsigned section_heads = 0;  // query heads per section (whole KV groups; divides q_heads)
};

// The query tile and head of block `index` (blockIdx.x in the kernels; host-callable for the tests).
struct PrefillBlock {
  PrefillTile tile;
  int head;
};
__host__ __device__ __forceinline__ PrefillBlock prefill_block(const PrefillTile* tiles, const PrefillGrid& g,
                                                               unsigned index) {
  const unsigned per_section = g.tiles * g.section_heads;
  const unsigned section = index / per_section, within = index % per_section;
  return PrefillBlock{tiles[within / g.section_heads],
                      static_cast<int>(section * g.section_heads + within % g.section_heads)};
}

// The KV heads of one section: the most whose K and V (s.max_len keys of s.head_dim bf16 each) fit in 70% of
// l2_bytes, at least 1, a divisor of s.kv_heads.
inline int prefill_section_kv_heads(const AttentionShape& s, int64_t l2_bytes) {
  const int64_t per_kv_head = std::max<int64_t>(1, s.max_len) * s.head_dim * 2 * 2;
  int k = static_cast<int>(std::clamp<int64_t>(l2_bytes * kPrefillL2SharePercent / 100 / per_kv_head, 1,
                                               std::max(1, s.kv_heads)));
  while (k > 1 && s.kv_heads % k != 0) --k;
  return k;
}

// The current GPU's L2 size in bytes; 0 where it cannot be read (the error is cleared, not left for a later check).
inline int64_t current_l2_bytes() {
  int device = 0, l2 = 0;
  if (cudaGetDevice(&device) != cudaSuccess ||
      cudaDeviceGetAttribute(&l2, cudaDevAttrL2CacheSize, device) != cudaSuccess) {
    (void)cudaGetLastError();
    return 0;
  }
  return l2;
}

// The grid for num_tiles x s.q_heads blocks on the current GPU; throws nvrar::Error, starting with `what`, past
// 2^31 - 1 blocks.
inline PrefillGrid prefill_grid(int64_t num_tiles, const AttentionShape& s, const std::string& what) {
  const int64_t blocks = num_tiles * s.q_heads;
  if (num_tiles < 1 || s.q_heads < 1 || s.kv_heads < 1 || s.q_heads % s.kv_heads != 0 ||
      blocks > std::numeric_limits<int32_t>::max())
    throw Error(what + ": " + std::to_string(num_tiles) + " query tiles x " + std::to_string(s.q_heads) + " heads (" +
                std::to_string(s.kv_heads) + " KV heads; takes 1 to 2^31 - 1 blocks: use a smaller --prefill-chunk)");
  const int kv = prefill_section_kv_heads(s, current_l2_bytes());  // L2 unknown: one KV group per section
  return PrefillGrid{static_cast<unsigned>(blocks), static_cast<unsigned>(num_tiles),
                     static_cast<unsigned>(kv * (s.q_heads / s.kv_heads))};
}

}  // namespace nvrar::engine::gpu
