// Fused split-K decode attention over the KV cache (attention.h, DecodeAttention::kFused).
//
// Purpose: decode attention at long contexts at the speed HBM streams the cache. The split-K path (attention.cu) cuts
//   batch 1 x 8192 into short splits (a block reads 32-64 KB in two loop trips) and merges them in a second kernel
//   whose threads walk up to 128 splits one after another: measured 38 us per layer for 33.5 MB (~0.9 TB/s) on an
//   H200 that copies at ~4.2 TB/s. Here fixed costs are paid once per long split and the merge is in the same kernel.
// Split (fused_split): a block serves G query heads of one KV head (G: the largest of 8, 4, 2, 1 dividing the
//   grouped-query ratio), so each K/V row is read once for all of them. The grid is sized to the SMs, not to a block
//   count: at most blocks_per_sm(G) x SMs blocks (4, or 2 at G = 8: the residency __launch_bounds__ asks for, so the
//   grid is one wave; a test checks the device grants it), and at least 256 keys per split unless that leaves fewer
//   than 2 blocks per SM. Llama-3.1-8B (8 KV heads, G 4), 132 SMs, max_len = context + 65 as `nvrar-llm bench
//   --output-len 64` sizes it:
//     batch 1 x 8192: 256 keys, 33 splits, 264 blocks | batch 1 x 32768: 512 keys, 65 splits, 520 blocks
//     batch 8 x 8192: 1056 keys, 8 splits, 512 blocks | batch 8 x 32768: 4128 keys, 8 splits, 512 blocks
//     batch 32 x 8192: 4160 keys, 2 splits, 512 blocks | batch 32 x 32768: 16448 keys, 2 splits, 512 blocks
//     batch 1 x 131072: 2016 keys, 66 splits, 528 blocks (tests/test_engine_gpu.cpp, FusedSplitPolicy). Batch 32 x
//     32768 exists only on paper: its 137 GB of KV cache do not fit an H200.
// Bytes in flight (Little's law): ~4.2 TB/s x ~0.8 us of loaded HBM latency is ~3.4 MB outstanding on the card, ~26 KB
//   per SM. Loads therefore go through a cp.async ring in shared memory, not registers: kStages = 3 stages of a tile
//   (kUnroll = 4 keys per slot: 16 KB of K and V per block at every head_dim), the next two tiles requested before a
//   tile is used, so up to 48 KB per block and 96-192 KB per SM are outstanding (264 blocks: 12.7 MB on the card), at
//   no register cost. The math per key and lane (G = 4, head_dim 128) is ~130 instructions (estimated), ~55% of the
//   SM's issue rate at 4.2 TB/s: the warps of other blocks cover one another's math, hence 2-4 blocks per SM.
// Algorithm per block: a key row is read by head_dim / 8 lanes, 16 bytes each ("slots": 128 / (head_dim / 8) per
//   block, slot s takes keys begin + s, begin + s + slots, ...). Per tile: G scores per key summed by xor-shuffles
//   within the slot's lanes, in log2 units (q pre-scaled by log2(e) / sqrt(D)); one online-softmax rescale per tile
//   (running max m, sum l, acc = sum p v over the lane's 8 dims per head). Slots merge through shared memory (which
//   the ring no longer needs). A row whose length fits one split writes its bf16 output there. Otherwise the block
//   writes (m, l) and acc[D] of each of its heads to the partials, __threadfence(), and one thread adds 1 to the
//   counter of (query row, head group); the block that brings it to the row's used split count (ceil(len / keys))
//   merges: the (m, l) of every split of its G heads into shared memory, per head the max M and the weights
//   exp2(m_s - M) (a warp per head), then each thread sums a float4 of acc over the splits, 8 independent L2 loads at
//   a time (the splits spread over several threads where G x head_dim / 4 < 128), and writes bf16. It resets the
//   counter to 0, so graph replays need no memset. Splits past a row's length return at once and are not counted.
//   The slot combine, the arrival and the merge are split_merge.cuh's (shared with attention_mma.cu).
// Launch: grid (splits, q_heads / G, n), 128 threads, 48 KB + 16 bytes of dynamic shared memory.
// Sync: per thread, cp.async groups (a thread reads back only what it copied, so the key loop has no barrier);
//   __syncthreads between the phases that reuse the ring (keys, slot merge, arrival, split merge); across blocks,
//   __threadfence by every thread before the barrier and by the counting thread around its atomicAdd, and the merging
//   block reads partials through L2 (__ldcg). No block ever waits for another (no spin: the last one merges).
//   PDL: allow_next_grid() at the start like the combine kernel (the next kernel's griddepcontrol.wait still waits
//   for this grid to finish and flush, so early is safe).
#include "engine/gpu/attention_fused.h"

#include <cuda_runtime.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cmath>
#include <string>

#include "core/numeric.h"
#include "engine/gpu/bf16_vector.cuh"
#include "engine/gpu/split_merge.cuh"
#include "engine/gpu/tensor_core.cuh"
#include "gpu/device/pdl.cuh"
#include "nvrar/types.h"

namespace nvrar::engine::gpu {

namespace {

using core::Bf16;
using tc::cp_async_16;
using tc::cp_async_commit;
using tc::cp_async_wait;
using tc::shared_address;
constexpr int kThreads = 128;
constexpr int kUnroll = 4;  // keys per slot per tile: one softmax rescale per 4 keys
constexpr int kStages = 3;  // tiles in the ring: two requested ahead of the one in use
constexpr int kRingBytes = kStages * 2 * kUnroll * kThreads * 16;  // 48 KB: [stage][K, V][unroll][thread] x 16 bytes
constexpr int kSharedBytes = kRingBytes + 16;                      // + the "last block" flag
constexpr int64_t kMinKeysPerSplit = 256;  // 128 KB of K/V per block at head_dim 128: fixed costs amortised
using merge::kMaxSplitWeights;             // G x splits of one merge

// Blocks per SM the split assumes and __launch_bounds__ asks for: 4 (<= 128 registers a thread) where q and acc
// (2 x 8 G floats) leave room, 2 at G = 8 (128 of them). 4 x 48 KB of ring fit Hopper's 228 KB of shared memory.
__host__ __device__ constexpr int blocks_per_sm(int G) { return G >= 8 ? 2 : 4; }

static_assert(merge::merge_bytes<kThreads>() <= kRingBytes, "the merge's arrays fit in the ring");

// L: lanes per key row (head_dim / 8); G: query heads per block.
template <int L, int G>
__global__ void __launch_bounds__(kThreads, blocks_per_sm(G))
    fused_attention_kernel(const bf16_t* qkv, const int32_t* seq, const int32_t* lengths, const bf16_t* cache_k,
                           const bf16_t* cache_v, AttentionShape s, int64_t kps, unsigned* counters, float* partials,
                           bf16_t* out) {
  constexpr int D = L * 8;
  constexpr int kSlots = kThreads / L;
  constexpr int kTileKeys = kSlots * kUnroll;
  static_assert((G * kSlots * D + 2 * G * kSlots) * 4 <= kRingBytes, "the slot merge's arrays fit in the ring");
  nvrar::gpu::dev::allow_next_grid();  // the GEMM after this kernel may start streaming its weights
  // A no-op as launched (<<<>>>: the stream already ordered rope_qk_append's qkv and cache rows before this grid);
  // keeps the reads below correct should the launch ever get the programmatic-serialization attribute.
  nvrar::gpu::dev::wait_for_previous_grid();
  extern __shared__ uint4 ring[];
  const int split = blockIdx.x, group = blockIdx.y, head0 = group * G;
  const int64_t t = blockIdx.z, splits = gridDim.x;
  const int tid = threadIdx.x, slot = tid / L, sub = tid % L;
  // lengths[t] <= s.max_len (attention.h); clamped to the grid's keys so that a violated precondition truncates, as
  // split-K does, instead of leaving the counter of (t, group) short of `used` (never reset: every later call of
  // that pair would then miss its merge).
  const int64_t len = min(static_cast<int64_t>(lengths[t]), static_cast<int64_t>(gridDim.x) * kps);
  bf16_t* out_row = out + (t * s.q_heads + head0) * D;  // + g * D + d
  if (len <= 0) {  // no keys: zeros, as the split-K kernel writes
    if (split == 0)
      for (int i = tid; i < G * D; i += kThreads) out_row[i] = 0;
    return;
  }
  const int64_t begin = split * kps;
  if (begin >= len) return;  // past the row's keys: not one of its counted splits
  const int64_t end = begin + kps < len ? begin + kps : len;
  const int64_t used = (len + kps - 1) / kps;
  const int tiles = static_cast<int>((end - begin + kTileKeys - 1) / kTileKeys);
  const int kv_head = head0 / (s.q_heads / s.kv_heads);
  const int64_t base = (static_cast<int64_t>(seq[t]) * s.kv_heads + kv_head) * s.max_seq;
  const bf16_t* k_rows = cache_k + base * D + sub * 8;
  const bf16_t* v_rows = cache_v + base * D + sub * 8;
  const uint32_t ring_at = shared_address(ring) + tid * 16;
  auto request = [&](int tile) {  // this thread's pieces of tile `tile` into stage tile % kStages; always one group
    if (tile < tiles) {
      const int stage = tile % kStages;
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) {
        const int64_t j = begin + static_cast<int64_t>(tile) * kTileKeys + u * kSlots + slot;
        const bool ok = j < end;  // else zero-filled: p = 0 never meets garbage (0 x NaN)
        const int64_t at = ok ? j * D : 0;
        cp_async_16(ring_at + ((stage * 2 + 0) * kUnroll + u) * kThreads * 16, k_rows + at, ok);
        cp_async_16(ring_at + ((stage * 2 + 1) * kUnroll + u) * kThreads * 16, v_rows + at, ok);
      }
    }
    cp_async_commit();
  };
#pragma unroll
  for (int i = 0; i < kStages - 1; ++i) request(i);

  // q after the first copies are on their way (its latency hides behind theirs).
  const float scale = tc::softmax_scale_log2(D);
  float q[G][8];
#pragma unroll
  for (int g = 0; g < G; ++g) {
    unpack_bf16x8(
        *reinterpret_cast<const uint4*>(qkv + t * s.qkv_cols + static_cast<int64_t>(head0 + g) * D + sub * 8), q[g]);
#pragma unroll
    for (int i = 0; i < 8; ++i) q[g][i] *= scale;
  }
  float m[G], l[G], acc[G][8];
#pragma unroll
  for (int g = 0; g < G; ++g) {
    m[g] = -INFINITY;
    l[g] = 0.0f;
#pragma unroll
    for (int i = 0; i < 8; ++i) acc[g][i] = 0.0f;
  }
  for (int tile = 0; tile < tiles; ++tile) {  // uniform trip count: every lane takes part in the shuffles
    request(tile + kStages - 1);  // into the stage this thread emptied in the previous trip
    cp_async_wait<kStages - 1>();  // this thread's copies of `tile` have landed
    const uint4* stage = ring + (tile % kStages) * 2 * kUnroll * kThreads + tid;
    const int64_t j0 = begin + static_cast<int64_t>(tile) * kTileKeys + slot;
    float sc[kUnroll][G];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      float k[8];
      unpack_bf16x8(stage[u * kThreads], k);
#pragma unroll
      for (int g = 0; g < G; ++g) {
        float dot = 0.0f;
#pragma unroll
        for (int i = 0; i < 8; ++i) dot += q[g][i] * k[i];
        sc[u][g] = dot;
      }
    }
#pragma unroll
    for (int o = L / 2; o > 0; o >>= 1)
#pragma unroll
      for (int u = 0; u < kUnroll; ++u)
#pragma unroll
        for (int g = 0; g < G; ++g) sc[u][g] += __shfl_xor_sync(0xffffffffu, sc[u][g], o);
#pragma unroll
    for (int u = 0; u < kUnroll; ++u)
      if (j0 + u * kSlots >= end)
#pragma unroll
        for (int g = 0; g < G; ++g) sc[u][g] = -INFINITY;
#pragma unroll
    for (int g = 0; g < G; ++g) {
      float m_new = m[g];
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) m_new = fmaxf(m_new, sc[u][g]);
      const float m_use = m_new == -INFINITY ? 0.0f : m_new;  // a slot with no key yet: everything stays 0
      const float correction = exp2f(m[g] - m_use);          // 0 while m = -inf
      l[g] *= correction;
#pragma unroll
      for (int i = 0; i < 8; ++i) acc[g][i] *= correction;
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) {
        sc[u][g] = exp2f(sc[u][g] - m_use);
        l[g] += sc[u][g];
      }
      m[g] = m_new;
    }
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      float v[8];
      unpack_bf16x8(stage[(kUnroll + u) * kThreads], v);
#pragma unroll
      for (int g = 0; g < G; ++g)
#pragma unroll
        for (int i = 0; i < 8; ++i) acc[g][i] += sc[u][g] * v[i];
    }
  }
  cp_async_wait<0>();
  __syncthreads();  // every thread is done with the ring: it holds the slot merge from here

  // Slots -> block: sacc [G][kSlots][D], sml [G][kSlots][2].
  float* sacc = reinterpret_cast<float*>(ring);
  float* sml = sacc + G * kSlots * D;
#pragma unroll
  for (int g = 0; g < G; ++g) {
    float4* to = reinterpret_cast<float4*>(sacc + (g * kSlots + slot) * D + sub * 8);
    to[0] = make_float4(acc[g][0], acc[g][1], acc[g][2], acc[g][3]);
    to[1] = make_float4(acc[g][4], acc[g][5], acc[g][6], acc[g][7]);
    if (sub == 0) {
      sml[(g * kSlots + slot) * 2] = m[g];
      sml[(g * kSlots + slot) * 2 + 1] = l[g];
    }
  }
  __syncthreads();
  const bool single = used == 1;  // the row's only split: the output is final here
  const merge::Partials parts{partials, partials + static_cast<int64_t>(gridDim.z) * s.q_heads * splits * D,
                              (t * s.q_heads + head0) * splits, splits};  // [n][q_heads][splits][D], then (m, l)
  merge::combine_parts<G, D, kSlots, kThreads>(sacc, sml, single, out_row, parts, split);
  if (single) return;
  unsigned* last = reinterpret_cast<unsigned*>(reinterpret_cast<char*>(ring) + kRingBytes);
  merge::arrive_and_merge<G, D, kThreads>(ring, last, counters + t * gridDim.y + group, used, out_row, parts);
}

}  // namespace

int heads_per_block(const AttentionShape& s) {
  const int ratio = s.q_heads / s.kv_heads;
  for (int g = 8; g > 1; g /= 2)
    if (ratio % g == 0) return g;
  return 1;
}

namespace {

// f.template operator()<L, G>() for the kernel instance of (head_dim, G); head_dim 32, 64, 128 or 256
// (attention_supports_head_dim), G 8, 4, 2 or 1.
template <typename F>
auto with_kernel(int head_dim, int G, F&& f) {
  auto by_group = [&]<int L>() { return merge::with_heads_per_block<L>(G, f); };
  switch (head_dim) {
    case 32:
      return by_group.template operator()<4>();
    case 64:
      return by_group.template operator()<8>();
    case 128:
      return by_group.template operator()<16>();
    default:
      return by_group.template operator()<32>();
  }
}

// 48 KB + 16 bytes of dynamic shared memory and room for blocks_per_sm(G) rings.
template <typename Kernel>
cudaError_t configure(Kernel kernel) {
  return merge::configure_shared(kernel, kSharedBytes);
}

}  // namespace

int sm_count() {
  static std::array<std::atomic<int>, 64> cached{};  // per device ordinal; 0: not read yet
  int device = 0;
  cudaError_t e = cudaGetDevice(&device);
  int sms = 0;
  if (e == cudaSuccess && device >= 0 && device < static_cast<int>(cached.size()))
    sms = cached[device].load(std::memory_order_relaxed);
  if (sms > 0) return sms;
  if (e == cudaSuccess) e = cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device);
  if (e != cudaSuccess || sms < 1)
    throw Error(std::string("nvrar-llm: decode attention: the GPU's SM count cannot be read: ") +
                cudaGetErrorString(e));
  if (device < static_cast<int>(cached.size())) cached[device].store(sms, std::memory_order_relaxed);
  return sms;
}

FusedSplit split_keys(const AttentionShape& s, int sms, int heads, int resident, int64_t tile_keys) {
  FusedSplit f;
  f.heads_per_block = heads;
  f.blocks_per_sm = resident;
  const int64_t rows = std::max<int64_t>(1, s.n * (s.q_heads / f.heads_per_block));  // (query, head group) pairs
  const int64_t max_len = s.max_len > 0 ? s.max_len : 1;
  // Keys per split (whole tiles) that keep the grid within `blocks` blocks.
  auto keys_for = [&](int64_t blocks) {
    const int64_t splits = std::clamp<int64_t>(blocks / rows, 1, kMaxSplitWeights / f.heads_per_block);
    const int64_t keys = (max_len + splits - 1) / splits;
    return (keys + tile_keys - 1) / tile_keys * tile_keys;
  };
  const int64_t at_most = keys_for(static_cast<int64_t>(f.blocks_per_sm) * sms);  // the fewest keys: one wave
  const int64_t at_least = keys_for(2 * static_cast<int64_t>(sms));               // the most: still 2 per SM
  f.keys_per_split = std::max(at_most, std::min(kMinKeysPerSplit, at_least));
  f.splits = (max_len + f.keys_per_split - 1) / f.keys_per_split;
  f.blocks = f.splits * rows;
  return f;
}

SplitGrid split_grid(const std::string& name, const AttentionShape& s, const FusedSplit& f) {
  const dim3 grid(static_cast<unsigned>(f.splits), static_cast<unsigned>(s.q_heads / f.heads_per_block),
                  static_cast<unsigned>(s.n));
  const std::string context = "nvrar-llm: " + name + " decode attention (head_dim " + std::to_string(s.head_dim) +
                              ", " + std::to_string(f.heads_per_block) + " heads per block, grid " +
                              std::to_string(grid.x) + " x " + std::to_string(grid.y) + " x " +
                              std::to_string(grid.z) + "): ";
  // Counters of (query, head group) exist for 4 x SMs pairs; several splits happen only below blocks_per_sm x SMs / 2.
  if (f.splits > 1 && f.blocks / f.splits > attention_counter_floats())
    throw Error(context + std::to_string(f.blocks / f.splits) +
                " (query, head group) pairs with several splits exceed the scratch's counters");
  return {grid, context};
}

FusedSplit fused_split(const AttentionShape& s, int sms) {
  const int g = heads_per_block(s);
  return split_keys(s, sms, g, blocks_per_sm(g), static_cast<int64_t>(kUnroll) * kThreads / (s.head_dim / 8));
}

int64_t attention_counter_floats() { return (4 * static_cast<int64_t>(sm_count()) + 3) / 4 * 4; }

int64_t fused_attention_partial_floats(const AttentionShape& s) {
  // A call writes partials only when a row has several splits, and then fused_split keeps splits x n x q_heads / G
  // <= blocks_per_sm x SMs: entries (query, head, split) <= blocks_per_sm x SMs x G, each D + 2 floats.
  const int g = heads_per_block(s);
  return static_cast<int64_t>(blocks_per_sm(g)) * sm_count() * g * (s.head_dim + 2);
}

int fused_attention_resident_blocks(int head_dim, int heads_per_block) {
  return with_kernel(head_dim, heads_per_block, [&]<int L, int G>() {  // [&]: no function-pointer conversion
    int blocks = 0;
    if (configure(fused_attention_kernel<L, G>) != cudaSuccess ||
        cudaOccupancyMaxActiveBlocksPerMultiprocessor(&blocks, fused_attention_kernel<L, G>, kThreads,
                                                      kSharedBytes) != cudaSuccess)
      return -1;
    return blocks;
  });
}

void fused_attention(const bf16_t* qkv, const int32_t* seq, const int32_t* lengths, const bf16_t* cache_k,
                     const bf16_t* cache_v, const AttentionShape& s, unsigned* counters, float* partials, bf16_t* out,
                     cudaStream_t stream) {
  if (s.n < 1) return;
  const FusedSplit f = fused_split(s, sm_count());
  const SplitGrid call = split_grid("fused", s, f);
  with_kernel(s.head_dim, f.heads_per_block, [&]<int L, int G>() {
    cudaError_t e = configure(fused_attention_kernel<L, G>);
    if (e != cudaSuccess)
      throw Error(call.context + std::to_string(kSharedBytes) + " bytes of shared memory refused: " +
                  cudaGetErrorString(e));
    fused_attention_kernel<L, G><<<call.grid, kThreads, kSharedBytes, stream>>>(
        qkv, seq, lengths, cache_k, cache_v, s, f.keys_per_split, counters, partials, out);
    e = cudaGetLastError();
    if (e != cudaSuccess) throw Error(call.context + "launch failed: " + cudaGetErrorString(e));
  });
}

}  // namespace nvrar::engine::gpu
