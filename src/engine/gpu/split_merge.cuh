// The end of a split-K decode attention block (attention_fused.cu, attention_mma.cu): a block has attended one split
// of the keys of one query row for G query heads, in `kSlots` independent parts (lane groups or warps), each with its
// own online-softmax state (max m in log2 units, sum l, accumulator acc[D]). Here the parts become the block's
// result, which is the output when the row has one split; otherwise it goes to the partials, and the block that
// completes the row's splits (an arrival counter per (query row, head group)) merges them and writes the output.
// Device code, header-only; every thread of the block calls each function (they contain __syncthreads).
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "core/numeric.h"
#include "engine/gpu/layers.h"

namespace nvrar::engine::gpu::merge {

constexpr int kMaxSplitWeights = 4096;  // G x splits of one merge: two float arrays of it in shared memory

// Shared-memory bytes the final merge needs (arrive_and_merge's arrays), for blocks of kThreads threads.
template <int kThreads>
__host__ __device__ constexpr int merge_bytes() {
  return (2 * kMaxSplitWeights + 32) * 4 + kThreads * 16;
}

__device__ __forceinline__ uint32_t pack_bf16x2(float a, float b) {
  return core::from_float<core::Bf16>(a).bits | uint32_t{core::from_float<core::Bf16>(b).bits} << 16;
}
// out[0..3] = v x scale, rounded to bf16 (one 8-byte store).
__device__ __forceinline__ void store_bf16x4(bf16_t* out, float4 v, float scale) {
  *reinterpret_cast<uint2*>(out) =
      make_uint2(pack_bf16x2(v.x * scale, v.y * scale), pack_bf16x2(v.z * scale, v.w * scale));
}

__device__ __forceinline__ void fma4(float4& a, float w, const float4& x) {
  a.x += w * x.x;
  a.y += w * x.y;
  a.z += w * x.z;
  a.w += w * x.w;
}

// Where a split's partial results go: part_acc [rows][q_heads][splits][D], then part_ml [rows][q_heads][splits][2]
// (m, l); entry0 is the entry of (query row, head0, split 0).
struct Partials {
  float* acc;
  float* ml;
  int64_t entry0;
  int64_t splits;
};

// Parts -> block: sacc [G][kSlots][D] and sml [G][kSlots][2] hold each part's acc and (m, l) in shared memory (a part
// without keys has m = -inf, l = 0, acc = 0; part 0 has a key, so the block's max is finite). Per float4 column of
// the G heads: the block's (m, l, acc), written as the output (divided by l) when `single`, else as this split's
// partial entry.
template <int G, int D, int kSlots, int kThreads>
__device__ __forceinline__ void combine_parts(const float* sacc, const float* sml, bool single, bf16_t* out_row,
                                             const Partials& p, int split) {
  constexpr int kCols = G * D / 4;
  for (int c = threadIdx.x; c < kCols; c += kThreads) {
    const int g = c / (D / 4), d4 = c % (D / 4);
    const float* ml = sml + g * kSlots * 2;
    float mb = -INFINITY;
#pragma unroll
    for (int w = 0; w < kSlots; ++w) mb = fmaxf(mb, ml[2 * w]);  // finite: part 0 holds key `begin`
    float lb = 0.0f;
    float4 a = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
#pragma unroll
    for (int w = 0; w < kSlots; ++w) {
      const float e = exp2f(ml[2 * w] - mb);  // 0 for a part without keys (m = -inf, l = acc = 0)
      lb += ml[2 * w + 1] * e;
      fma4(a, e, reinterpret_cast<const float4*>(sacc + (g * kSlots + w) * D)[d4]);
    }
    if (single) {
      store_bf16x4(out_row + g * D + d4 * 4, a, 1.0f / lb);
    } else {
      const int64_t entry = p.entry0 + g * p.splits + split;
      reinterpret_cast<float4*>(p.acc + entry * D)[d4] = a;
      if (d4 == 0) *reinterpret_cast<float2*>(p.ml + entry * 2) = make_float2(mb, lb);
    }
  }
}

// Arrival, after combine_parts wrote this split's partial entry: the block that brings the counter of (query row,
// head group) to `used` resets it to 0 (graph replays need no memset) and merges the row's used splits into the
// output. `shared` is scratch shared memory of merge_bytes<kThreads>() bytes (free to reuse: every thread is past
// combine_parts' reads of its arrays when the first barrier below returns), `last` one word of shared memory.
template <int G, int D, int kThreads>
__device__ __forceinline__ void arrive_and_merge(void* shared, unsigned* last, unsigned* counter, int64_t used,
                                                 bf16_t* out_row, const Partials& p) {
  constexpr int kCols = G * D / 4;
  const int tid = threadIdx.x;
  __threadfence();  // this thread's partials are visible device-wide before the count says so
  __syncthreads();  // ... for every thread of the block; the slot arrays are read
  if (tid == 0) {
    __threadfence();  // cumulative: orders the block's writes (seen through the barrier) before the increment
    const bool is_last = atomicAdd(counter, 1u) + 1 == static_cast<unsigned>(used);
    if (is_last) atomicExch(counter, 0u);  // every split has counted: ready for the next call
    __threadfence();  // the other blocks' partials, ordered before their increments, are read after this one
    *last = is_last ? 1u : 0u;
  }
  __syncthreads();
  if (*last == 0) return;

  // Merge: sw [G][used] (m_s, then the weight exp2(m_s - M)), sl [G][used] (l_s), sinv [G], sred [parts][kCols].
  const int n_used = static_cast<int>(used);
  float* sw = reinterpret_cast<float*>(shared);
  float* sl = sw + kMaxSplitWeights;
  float* sinv = sl + kMaxSplitWeights;
  float4* sred = reinterpret_cast<float4*>(sinv + 32);
  for (int i = tid; i < G * n_used; i += kThreads) {
    const int g = i / n_used, sp = i % n_used;
    const float2 ml = __ldcg(reinterpret_cast<const float2*>(p.ml + (p.entry0 + g * p.splits + sp) * 2));
    sw[i] = ml.x;
    sl[i] = ml.y;
  }
  __syncthreads();
  const int warp = tid / 32, lane = tid % 32;
  for (int g = warp; g < G; g += kThreads / 32) {
    float mx = -INFINITY;
    for (int sp = lane; sp < n_used; sp += 32) mx = fmaxf(mx, sw[g * n_used + sp]);
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, o));
    float total = 0.0f;
    for (int sp = lane; sp < n_used; sp += 32) {
      const float w = exp2f(sw[g * n_used + sp] - mx);
      sw[g * n_used + sp] = w;
      total += w * sl[g * n_used + sp];
    }
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) total += __shfl_xor_sync(0xffffffffu, total, o);
    if (lane == 0) sinv[g] = 1.0f / total;  // >= 1: the split holding the max has l >= 1
  }
  __syncthreads();
  constexpr int kParts = kCols >= kThreads ? 1 : kThreads / kCols;  // threads sharing one column's splits
  for (int c = tid; c < kCols * kParts; c += kThreads) {
    const int col = c % kCols, part = c / kCols, g = col / (D / 4), d4 = col % (D / 4);
    const float4* src = reinterpret_cast<const float4*>(p.acc + (p.entry0 + g * p.splits) * D) + d4;  // + sp * D / 4
    const float* w = sw + g * n_used;
    float4 a = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
    int sp = part;
    for (; sp + 7 * kParts < n_used; sp += 8 * kParts) {  // 8 independent loads in flight
      float4 x[8];
#pragma unroll
      for (int u = 0; u < 8; ++u) x[u] = __ldcg(src + static_cast<int64_t>(sp + u * kParts) * (D / 4));
#pragma unroll
      for (int u = 0; u < 8; ++u) fma4(a, w[sp + u * kParts], x[u]);
    }
    for (; sp < n_used; sp += kParts) fma4(a, w[sp], __ldcg(src + static_cast<int64_t>(sp) * (D / 4)));
    if constexpr (kParts == 1)
      store_bf16x4(out_row + g * D + d4 * 4, a, sinv[g]);
    else
      sred[part * kCols + col] = a;
  }
  if constexpr (kParts > 1) {
    __syncthreads();
    for (int col = tid; col < kCols; col += kThreads) {
      float4 a = sred[col];
#pragma unroll
      for (int q = 1; q < kParts; ++q) fma4(a, 1.0f, sred[q * kCols + col]);
      store_bf16x4(out_row + (col / (D / 4)) * D + (col % (D / 4)) * 4, a, sinv[col / (D / 4)]);
    }
  }
}

// Host: the shared-memory attributes of a split kernel instance, per call (they belong to the current device and are
// cheap to set again): `bytes` of dynamic shared memory, and the carveout that gives its resident blocks room (most of
// the SM's shared memory, little L1).
template <typename Kernel>
cudaError_t configure_shared(Kernel kernel, int bytes) {
  const cudaError_t e = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes);
  return e != cudaSuccess ? e
                          : cudaFuncSetAttribute(kernel, cudaFuncAttributePreferredSharedMemoryCarveout,
                                                 cudaSharedmemCarveoutMaxShared);
}

// Host: f.template operator()<X, G>() for the G (8, 4, 2, else 1 query heads per block) of a call: the kernels that
// end in this merge are templates on G, instantiated for those four.
template <int X, typename F>
auto with_heads_per_block(int G, F&& f) {
  switch (G) {
    case 8:
      return f.template operator()<X, 8>();
    case 4:
      return f.template operator()<X, 4>();
    case 2:
      return f.template operator()<X, 2>();
    default:
      return f.template operator()<X, 1>();
  }
}

}  // namespace nvrar::engine::gpu::merge
