// Tensor-core split-K decode attention over the KV cache (attention.h, DecodeAttention::kTensorCore).
//
// Purpose: decode attention at long contexts at the rate HBM streams the cache. The fused kernel (attention_fused.cu)
//   does the dot products on CUDA cores: per key and KV head ~75 warp instructions (bf16 unpacking, G x 8 FMAs per
//   lane, a shuffle tree per score, the softmax and G x 8 FMAs of P V), which at 4.2 TB/s of K/V would need ~66% of
//   an H200's issue slots; measured, it streams 2.5-3.1 TB/s at batch 1 x 32768 and 8 x 8192 where cuDNN's decode
//   attention streams 3.3-3.8. Here the G query heads that share a KV head are the rows of an mma.m16n8k16 tile
//   (padded to 16), so a 16-key step of S = Q K^T and of O += P V is a few ldmatrix and mma instructions: with the
//   softmax, the rescale and the copies ~12 warp instructions per key (estimated), a sixth of the fused kernel's.
//   Measured (8B, one H200, the engine's default): a decode step grows over context 128 by what streams the K/V at
//   3.3 TB/s (batch 1 x 8192), 4.4 (8 x 8192) and 4.0 (1 x 32768); cuDNN's attention alone 2.2, 4.0 and 3.6.
// Algorithm: a block attends one split of one query row's keys (the split policy of the fused kernel, split_keys, with
//   64-key tiles; one split where max_len <= 256 keys, mma_split) for G query heads (heads_per_block: 8, 4, 2 or 1).
//   Two stages of 64-key K and V tiles in shared memory (16-byte chunk c of key r at chunk c ^ (r % 8),
//   tensor_core.cuh's swizzled tile): cp.async brings tile j + 1 (keys past the split zero-filled) while tile j is
//   used. Warp w takes keys 16 w .. 16 w + 15 of each tile: S (16 x 16: rows = heads, of which G are real and the rest
//   zero) from Q fragments held in registers for the whole split (A: rows g < G of the query row's heads; rows >= G
//   zero) and K fragments by ldmatrix (B); the FlashAttention-2 online softmax of the prefill kernels (tensor_core.cuh:
//   log2 units, keys at or past the split's end masked, only on a warp's last slice); O += P V with P rounded to bf16
//   (rows >= G zero) and V fragments by ldmatrix.trans. A warp whose slice starts past the split's end skips the tile
//   (warp-uniform). Each warp keeps its own (m, l, O); at the end the four warps meet in shared memory and
//   split_merge.cuh takes over: the block's result is the output when the row has one split, else a partial entry, and
//   the last of the row's splits to arrive merges them (the fused kernel's arrival counters and merge, unchanged).
// Launch: grid (splits, q_heads / G, n), 128 threads, dynamic shared memory max(64 KB of tiles at head_dim 128 or
//   32 KB at 64, the merge's 35 KB) + 16 bytes; 3 (head_dim 128) or 4 (64) blocks per SM. head_dim 64 and 128 only
//   (attention() takes the fused kernel for other head sizes).
// Sync: cp.async groups and __syncthreads before a stage is read and after it was used (before its refill); one
//   barrier before the warps' results are combined; across blocks, split_merge.cuh's fences and counters (no block
//   ever waits for another). PDL: launched with programmatic dependent launch (unless NVRAR_PDL=0), it calls
//   allow_next_grid() at the start, so that the o_proj GEMM may start streaming its weights, and requests its
//   split's first two tiles before it waits for the previous grid (the qkv GEMM with its RoPE + append epilogue, or
//   the RoPE + append kernel, which write q and each row's newest key and value): every key but the row's last is
//   final by then (attention.h), so the tiles stream while the GEMM finishes; the last key, if it falls in those
//   tiles, and q are read after the wait.
#include "engine/gpu/attention_mma.h"

#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <string>

#include "engine/gpu/attention_fused.h"
#include "engine/gpu/split_merge.cuh"
#include "engine/gpu/tensor_core.cuh"
#include "gpu/device/pdl.cuh"
#include "nvrar/types.h"

namespace nvrar::engine::gpu {

namespace {

using namespace tc;
constexpr int kWarps = 4;
constexpr int kThreads = kWarps * 32;
constexpr int kKeys = 16 * kWarps;  // keys per tile: 16 per warp

template <int D>
__host__ __device__ constexpr int tile_bytes() {
  return 2 * 2 * kKeys * D * 2;  // two stages of K and V
}
template <int D, int G>
__host__ __device__ constexpr int warp_merge_bytes() {
  return (G * kWarps * D + 2 * G * kWarps) * 4;
}
__host__ __device__ constexpr int larger(int a, int b) { return a > b ? a : b; }
// The arrival flag sits after the largest of the three uses of the shared memory.
template <int D, int G>
__host__ __device__ constexpr int flag_offset() {
  return larger(larger(tile_bytes<D>(), warp_merge_bytes<D, G>()), merge::merge_bytes<kThreads>());
}
template <int D, int G>
__host__ __device__ constexpr int shared_bytes() {
  return flag_offset<D, G>() + 16;
}
__host__ __device__ constexpr int resident_blocks(int head_dim) { return head_dim >= 128 ? 3 : 4; }

template <int D, int G>
__global__ void __launch_bounds__(kThreads, resident_blocks(D))
    mma_attention_kernel(const bf16_t* qkv, const int32_t* seq, const int32_t* lengths, const bf16_t* cache_k,
                         const bf16_t* cache_v, AttentionShape s, int64_t kps, unsigned* counters, float* partials,
                         bf16_t* out) {
  static_assert(G >= 1 && G <= 8, "the G heads are rows 0..G-1 of the 16-row tile; rows 8..15 stay padding");
  static_assert(D == 64 || D == 128, "head_dim 64 or 128");
  constexpr int kDimBlocks = D / 8;  // n8 blocks of O
  nvrar::gpu::dev::allow_next_grid();  // the GEMM after this kernel may start streaming its weights
  extern __shared__ __align__(128) unsigned char shared_raw[];
  bf16_t* sk = reinterpret_cast<bf16_t*>(shared_raw);  // [2][kKeys][D]
  bf16_t* sv = sk + 2 * kKeys * D;                      // [2][kKeys][D]
  const int split = blockIdx.x, group = blockIdx.y, head0 = group * G;
  const int64_t t = blockIdx.z, splits = gridDim.x;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int quad_row = lane / 4, quad_col = lane % 4;
  const int mi = lane / 8, mr = lane % 8;  // ldmatrix: the matrix and row this lane addresses
  // Read before griddepcontrol.wait (attention.h's contract): lengths, seq and every key but a row's last are final
  // before the previous kernel starts; lengths[t] <= s.max_len, clamped to the grid's keys (as the fused kernel: a
  // counter never falls short of `used`).
  const int64_t len = min(static_cast<int64_t>(lengths[t]), static_cast<int64_t>(gridDim.x) * kps);
  bf16_t* out_row = out + (t * s.q_heads + head0) * D;  // + g * D + d
  if (len <= 0) {  // no keys: zeros, as the other kernels write
    nvrar::gpu::dev::wait_for_previous_grid();
    if (split == 0)
      for (int i = threadIdx.x; i < G * D; i += kThreads) out_row[i] = 0;
    return;
  }
  const int64_t begin = split * kps;
  if (begin >= len) return;  // past the row's keys: not one of its counted splits
  const int64_t end = begin + kps < len ? begin + kps : len;
  const int64_t used = (len + kps - 1) / kps;
  const int tiles = static_cast<int>((end - begin + kKeys - 1) / kKeys);
  const int kv_head = head0 / (s.q_heads / s.kv_heads);
  const int64_t base = ((static_cast<int64_t>(seq[t]) * s.kv_heads + kv_head) * s.max_seq + begin) * D;
  const bf16_t* kbase = cache_k + base;
  const bf16_t* vbase = cache_v + base;
  // Positions relative to the split (int: a split is at most a few hundred thousand keys).
  const int keys = static_cast<int>(end - begin);
  // Tile j's K and V into stage j % 2, rows [0, copy) copied, rows past the split's end zero-filled.
  const auto load = [&](int j, int64_t copy) {
    const int64_t k0 = static_cast<int64_t>(j) * kKeys;
    load_tile_leaving<D, kKeys, kThreads>(sk + (j & 1) * kKeys * D, kbase + k0 * D, D, copy - k0, keys - k0);
    load_tile_leaving<D, kKeys, kThreads>(sv + (j & 1) * kKeys * D, vbase + k0 * D, D, copy - k0, keys - k0);
  };
  // Tiles 0 and 1 are requested before the wait, all but the row's last key (the decode step's new one, which the
  // previous kernel writes): that key, if it is this split's and in those tiles, is copied after the wait. On an
  // H200 this took 0.3% (batch 1 x 128) and 0.45% (1 x 8192) off a decode step (docs/perf-notes.md).
  const bool last_here = end == len;  // this split holds the row's last key, split row keys - 1
  const int early_rows = last_here ? keys - 1 : keys;
  load(0, early_rows);
  cp_async_commit();
  if (tiles > 1) load(1, early_rows);
  cp_async_commit();
  nvrar::gpu::dev::wait_for_previous_grid();  // q and the new key and value come from the previous kernel
  const int fresh = keys - 1;
  constexpr int kChunks = D / 8;
  if (last_here && fresh < 2 * kKeys && threadIdx.x < 2 * kChunks) {
    const int c = threadIdx.x % kChunks;
    const bool is_v = threadIdx.x >= kChunks;
    bf16_t* stage = (is_v ? sv : sk) + (fresh / kKeys) * kKeys * D;
    cp_async_16(shared_address(stage + swizzled<D>(fresh % kKeys, c)),
                (is_v ? vbase : kbase) + static_cast<int64_t>(fresh) * D + c * 8, true);
  }
  cp_async_commit();

  // Q as the A operand, for the whole split: lane (quad_row, quad_col) holds row quad_row's elements 2 quad_col,
  // 2 quad_col + 1 (a0) and 8 + 2 quad_col, 9 + 2 quad_col (a2) of each 16-element k step; a1 and a3 (rows 8-15)
  // are zero. Rows >= G are zero too.
  uint32_t qa[D / 16][2];
  {
    const bf16_t* q = qkv + t * s.qkv_cols + static_cast<int64_t>(head0 + quad_row) * D + 2 * quad_col;
#pragma unroll
    for (int kk = 0; kk < D / 16; ++kk) {
      qa[kk][0] = quad_row < G ? *reinterpret_cast<const uint32_t*>(q + kk * 16) : 0u;
      qa[kk][1] = quad_row < G ? *reinterpret_cast<const uint32_t*>(q + kk * 16 + 8) : 0u;
    }
  }
  float o[kDimBlocks][4];
#pragma unroll
  for (int b = 0; b < kDimBlocks; ++b) o[b][0] = o[b][1] = o[b][2] = o[b][3] = 0.0f;
  float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.0f, 0.0f};
  const float scale_log2 = softmax_scale_log2(D);

  // Copy groups: tile 0, tile 1, the new key, then one per step j (tile j + 2, possibly empty).
  for (int j = 0; j < tiles; ++j) {
    const int stage = j & 1;
    if (j == 0)
      cp_async_wait<0>();  // tile 0 (and 1) and the new key
    else
      cp_async_wait<1>();  // all but step j - 1's group: tile j
    __syncthreads();
    const int key0 = j * kKeys + warp * 16;  // this warp's first key, relative to the split
    if (key0 < keys) {  // warp-uniform; then its first key exists, so the running max becomes finite
      const bf16_t* tk = sk + stage * kKeys * D;
      const bf16_t* tv = sv + stage * kKeys * D;
      float sc[2][4] = {{0.0f, 0.0f, 0.0f, 0.0f}, {0.0f, 0.0f, 0.0f, 0.0f}};  // keys 0-7, 8-15 of the slice
#pragma unroll
      for (int kk = 0; kk < D / 16; ++kk) {
        const uint32_t a[4] = {qa[kk][0], 0u, qa[kk][1], 0u};
        uint32_t b[4];
        ldmatrix_x4(shared_address(tk + swizzled<D>(warp * 16 + mr + (mi >> 1) * 8, kk * 2 + (mi & 1))), b);
        mma_bf16(sc[0], a, b[0], b[1]);
        mma_bf16(sc[1], a, b[2], b[3]);
      }
      float corr[2];
      // Masked only on the slice that reaches the split's end: key key0 + i is visible to "query position"
      // keys - 1, so keys past the end get -inf (rows 8-15, padding, see 8 more; their P is never used).
      online_softmax<2>([&](int b, int e) -> float& { return sc[b][e]; }, scale_log2, key0 + 16 > keys, key0,
                        keys - 1, quad_col, m, l, corr);
#pragma unroll
      for (int b = 0; b < kDimBlocks; ++b) {  // rows 8-15 of O stay zero (their P is zero below)
        o[b][0] *= corr[0];
        o[b][1] *= corr[0];
      }
      const uint32_t a[4] = {pack_bf16(sc[0][0], sc[0][1]), 0u, pack_bf16(sc[1][0], sc[1][1]), 0u};
#pragma unroll
      for (int db = 0; db < D / 16; ++db) {
        uint32_t b[4];
        ldmatrix_x4_trans(shared_address(tv + swizzled<D>(warp * 16 + mr + (mi & 1) * 8, db * 2 + (mi >> 1))), b);
        mma_bf16(o[2 * db], a, b[0], b[1]);
        mma_bf16(o[2 * db + 1], a, b[2], b[3]);
      }
    }
    __syncthreads();  // every warp is done with this stage before it is refilled
    if (j + 2 < tiles) load(j + 2, keys);
    cp_async_commit();
  }
  cp_async_wait<0>();  // only empty groups are left

  // Warps -> block: wacc [G][kWarps][D], wml [G][kWarps][2] (the layout of merge::combine_parts). The loop's last
  // barrier has passed and no copy is pending, so the tiles' memory is free.
  float* wacc = reinterpret_cast<float*>(shared_raw);
  float* wml = wacc + G * kWarps * D;
#pragma unroll
  for (int i = 1; i <= 2; i <<= 1) l[0] += __shfl_xor_sync(0xffffffffu, l[0], i);  // the row's sum over the quad
  if (quad_row < G) {
    float* row = wacc + (quad_row * kWarps + warp) * D + 2 * quad_col;
#pragma unroll
    for (int b = 0; b < kDimBlocks; ++b) *reinterpret_cast<float2*>(row + b * 8) = make_float2(o[b][0], o[b][1]);
    if (quad_col == 0) {  // a warp without keys: m = -inf, l = 0, O = 0
      wml[(quad_row * kWarps + warp) * 2] = m[0];
      wml[(quad_row * kWarps + warp) * 2 + 1] = l[0];
    }
  }
  __syncthreads();
  const bool single = used == 1;  // the row's only split: the output is final here
  const merge::Partials parts{partials, partials + static_cast<int64_t>(gridDim.z) * s.q_heads * splits * D,
                              (t * s.q_heads + head0) * splits, splits};  // [n][q_heads][splits][D], then (m, l)
  merge::combine_parts<G, D, kWarps, kThreads>(wacc, wml, single, out_row, parts, split);
  if (single) return;
  unsigned* last = reinterpret_cast<unsigned*>(shared_raw + flag_offset<D, G>());
  merge::arrive_and_merge<G, D, kThreads>(shared_raw, last, counters + t * gridDim.y + group, used, out_row, parts);
}

// f.template operator()<D, G>() for the kernel instance of (head_dim 64 or 128, G 8, 4, 2 or 1).
template <typename F>
auto with_kernel(int head_dim, int G, F&& f) {
  auto by_group = [&]<int D>() { return merge::with_heads_per_block<D>(G, f); };
  return head_dim == 64 ? by_group.template operator()<64>() : by_group.template operator()<128>();
}

// shared_bytes<D, G>() of dynamic shared memory (over 48 KB at head_dim 128) and room for resident_blocks(D) blocks.
template <int D, int G>
cudaError_t configure() {
  return merge::configure_shared(mma_attention_kernel<D, G>, shared_bytes<D, G>());
}

}  // namespace

bool mma_attention_supports(int head_dim) { return head_dim == 64 || head_dim == 128; }

// Rows of at most this many keys take one split (up to 4 tiles in one block): at Llama-3.1-8B's decode with max_len
// 193 one split instead of four of 64 keys took 1.0% (batch 1) and 1.2% (batch 8) off an H100's decode step, and
// two splits of 128 keys gained nothing: the partial entries, fence and merge cost more than the tiles run side by
// side save while the whole row is this short.
constexpr int64_t kOneSplitMaxKeys = 256;

FusedSplit mma_split(const AttentionShape& s, int sms) {
  FusedSplit f = split_keys(s, sms, heads_per_block(s), resident_blocks(s.head_dim), kKeys);
  const int64_t max_len = s.max_len > 0 ? s.max_len : 1;
  if (max_len <= kOneSplitMaxKeys && f.splits > 1) {
    f.keys_per_split = (max_len + kKeys - 1) / kKeys * kKeys;
    f.blocks /= f.splits;
    f.splits = 1;
  }
  return f;
}

int64_t mma_attention_partial_floats(const AttentionShape& s) {
  // As the fused kernel's: several splits only within one wave, so entries <= resident x SMs x G, D + 2 floats each.
  if (!mma_attention_supports(s.head_dim)) return 0;
  const int g = heads_per_block(s);
  return static_cast<int64_t>(resident_blocks(s.head_dim)) * sm_count() * g * (s.head_dim + 2);
}

int mma_attention_resident_blocks(int head_dim, int heads_per_block) {
  if (!mma_attention_supports(head_dim)) return -1;
  return with_kernel(head_dim, heads_per_block, [&]<int D, int G>() {
    int blocks = 0;
    if (configure<D, G>() != cudaSuccess ||
        cudaOccupancyMaxActiveBlocksPerMultiprocessor(&blocks, mma_attention_kernel<D, G>, kThreads,
                                                      shared_bytes<D, G>()) != cudaSuccess)
      return -1;
    return blocks;
  });
}

void mma_attention(const bf16_t* qkv, const int32_t* seq, const int32_t* lengths, const bf16_t* cache_k,
                   const bf16_t* cache_v, const AttentionShape& s, unsigned* counters, float* partials, bf16_t* out,
                   cudaStream_t stream) {
  if (s.n < 1) return;
  if (!mma_attention_supports(s.head_dim))
    throw Error("nvrar-llm: tensor-core decode attention: head_dim " + std::to_string(s.head_dim) +
                " (takes 64 or 128)");
  const FusedSplit f = mma_split(s, sm_count());
  const SplitGrid call = split_grid("tensor-core", s, f);
  with_kernel(s.head_dim, f.heads_per_block, [&]<int D, int G>() {
    cudaError_t e = configure<D, G>();
    if (e != cudaSuccess)
      throw Error(call.context + std::to_string(shared_bytes<D, G>()) + " bytes of shared memory refused: " +
                  cudaGetErrorString(e));
    e = nvrar::gpu::dev::launch_kernel_shared(mma_attention_kernel<D, G>, call.grid, kThreads, shared_bytes<D, G>(),
                                              stream, pdl_enabled(), qkv, seq, lengths, cache_k, cache_v, s,
                                              f.keys_per_split, counters, partials, out);
    if (e == cudaSuccess) e = cudaGetLastError();
    if (e != cudaSuccess) throw Error(call.context + "launch failed: " + cudaGetErrorString(e));
  });
}

}  // namespace nvrar::engine::gpu
