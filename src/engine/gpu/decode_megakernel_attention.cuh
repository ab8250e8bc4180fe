// The attention phase of the persistent decode step (decode_megakernel.cu): one work item of split-K decode
// attention, done by a whole 256-thread block of that kernel. Device code, header-only.
//
// Purpose: token t's G query heads of KV head kv (G = q_heads / kv_heads) attend to one split of its keys, [begin,
//   end) of cache positions [0, lengths[t]); the block leaves its result for split_merge.cuh, which writes the output
//   row when the token has one split, or stores a partial entry and lets the last split to arrive merge them (the
//   fused and tensor-core decode kernels' merge, unchanged).
// Algorithm: q (G x D, bf16 from the q/k/v buffer) goes to shared memory as fp32, scaled by log2(e) / sqrt(D). Warp
//   w takes keys begin + 32 w + 256 i + lane: a lane computes its key's G scores on CUDA cores (16-byte K loads,
//   q broadcast from shared memory), the warp updates its online softmax (max and sum in log2 units, over the 32
//   lanes by shuffles), then walks the 32 keys once more for O += P V, each lane holding D / 32 of the G heads' output
//   columns (a V row is one coalesced warp load; P broadcast by shuffles). The eight warps are split_merge's eight
//   parts (warp 0 holds key `begin`, so the block's max is finite).
// Shared memory: `scratch` (attention_scratch_bytes<G, D>(): q, then the parts' acc [G][8][D] and (m, l) [G][8][2];
//   the merge reuses it). Reads of data this launch wrote (q, the cache's new row) go through L2 (__ldcg): another
//   SM wrote them, and this SM's L1 is not coherent with it.
// Sync: __syncthreads around the shared arrays; across blocks, split_merge.cuh's fences and arrival counters.
#pragma once

#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>

#include "engine/gpu/bf16_vector.cuh"
#include "engine/gpu/pointwise.cuh"
#include "engine/gpu/split_merge.cuh"

namespace nvrar::engine::gpu::mega {

constexpr int kAttnThreads = 256;
constexpr int kAttnWarps = kAttnThreads / 32;

template <int G, int D>
__host__ __device__ constexpr int attention_scratch_bytes() {
  const int parts = G * D * 4 + G * kAttnWarps * D * 4 + G * kAttnWarps * 2 * 4;
  const int merge = merge::merge_bytes<kAttnThreads>();
  return G * D * 4 + (parts - G * D * 4 > merge ? parts - G * D * 4 : merge);
}

struct AttentionItem {
  const bf16_t* q;        // token t's first query head of the group (G x D contiguous)
  const bf16_t* cache_k;  // kv_cache_row(seq, kv_heads, kv, max_seq, 0, D): the group's keys, position 0
  const bf16_t* cache_v;
  int begin, end;         // keys of this split
  bool single;            // the token's only split: write the output directly
  bf16_t* out_row;        // attn + t x q_heads x D + kv x G x D
  merge::Partials partials;
  int split;
  unsigned* counter;      // arrival counter of (t, kv)
  int64_t used;           // the token's splits
};

template <int G, int D>
__device__ __forceinline__ void attend_split(const AttentionItem& it, char* scratch, unsigned* last) {
  constexpr int kPer = D / 32;  // output columns per lane
  float* qs = reinterpret_cast<float*>(scratch);
  float* sacc = qs + G * D;
  float* sml = sacc + G * kAttnWarps * D;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const float scale = 1.4426950408889634f / sqrtf(static_cast<float>(D));
  __syncthreads();  // the previous item's merge is done with the scratch
  for (int i = threadIdx.x; i < G * D / 8; i += kAttnThreads) {
    float v[8];
    unpack_bf16x8(__ldcg(reinterpret_cast<const uint4*>(it.q) + i), v);
#pragma unroll
    for (int e = 0; e < 8; ++e) qs[i * 8 + e] = v[e] * scale;
  }
  __syncthreads();

  float m[G], l[G], acc[G][kPer];
#pragma unroll
  for (int g = 0; g < G; ++g) {
    m[g] = -INFINITY;
    l[g] = 0.0f;
#pragma unroll
    for (int e = 0; e < kPer; ++e) acc[g][e] = 0.0f;
  }
  for (int base = it.begin + warp * 32; base < it.end; base += kAttnThreads) {
    const int key = base + lane;
    const bool valid = key < it.end;
    float s[G];
#pragma unroll
    for (int g = 0; g < G; ++g) s[g] = 0.0f;
    if (valid) {  // the key's loads eight at a time in flight, then their products
      const uint4* krow = reinterpret_cast<const uint4*>(it.cache_k + static_cast<int64_t>(key) * D);
      constexpr int kBatch = D / 8 < 8 ? D / 8 : 8;
#pragma unroll
      for (int c0 = 0; c0 < D / 8; c0 += kBatch) {
        uint4 kraw[kBatch];
#pragma unroll
        for (int c = 0; c < kBatch; ++c) kraw[c] = __ldcg(krow + c0 + c);
#pragma unroll
        for (int cc = 0; cc < kBatch; ++cc) {
          float kv[8];
          unpack_bf16x8(kraw[cc], kv);
#pragma unroll
          for (int g = 0; g < G; ++g)
#pragma unroll
            for (int e = 0; e < 8; ++e) s[g] += qs[g * D + (c0 + cc) * 8 + e] * kv[e];
        }
      }
    }
    float p[G];
#pragma unroll
    for (int g = 0; g < G; ++g) {
      float mx = valid ? s[g] : -INFINITY;
#pragma unroll
      for (int o = 16; o > 0; o >>= 1) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, o));
      const float m_new = fmaxf(m[g], mx);  // finite: lane 0's key is valid
      const float alpha = exp2f(m[g] - m_new);
      p[g] = valid ? exp2f(s[g] - m_new) : 0.0f;
      float sum = p[g];
#pragma unroll
      for (int o = 16; o > 0; o >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, o);
      l[g] = l[g] * alpha + sum;
      m[g] = m_new;
#pragma unroll
      for (int e = 0; e < kPer; ++e) acc[g][e] *= alpha;
    }
    const int keys = min(32, it.end - base);
    const bf16_t* vrow = it.cache_v + static_cast<int64_t>(base) * D + lane * kPer;
    for (int j0 = 0; j0 < keys; j0 += 8) {  // eight V rows' loads in flight, then their products
      float v[8][kPer];
#pragma unroll
      for (int u = 0; u < 8; ++u) {
        const int64_t at = static_cast<int64_t>(j0 + u) * D;
        if constexpr (kPer == 4) {
          const uint2 raw = j0 + u < keys ? __ldcg(reinterpret_cast<const uint2*>(vrow + at)) : make_uint2(0, 0);
          const bf16_t* h = reinterpret_cast<const bf16_t*>(&raw);
#pragma unroll
          for (int e = 0; e < 4; ++e) v[u][e] = to_f32(h[e]);
        } else {
          const unsigned raw = j0 + u < keys ? __ldcg(reinterpret_cast<const unsigned*>(vrow + at)) : 0u;
          v[u][0] = to_f32(static_cast<bf16_t>(raw & 0xffffu));
          v[u][1] = to_f32(static_cast<bf16_t>(raw >> 16));
        }
      }
#pragma unroll
      for (int u = 0; u < 8; ++u)
#pragma unroll
        for (int g = 0; g < G; ++g) {
          const float pj = __shfl_sync(0xffffffffu, p[g], j0 + u);  // 0 past the split's end: the zeros add nothing
#pragma unroll
          for (int e = 0; e < kPer; ++e) acc[g][e] += pj * v[u][e];
        }
    }
  }
#pragma unroll
  for (int g = 0; g < G; ++g) {
#pragma unroll
    for (int e = 0; e < kPer; ++e) sacc[(g * kAttnWarps + warp) * D + lane * kPer + e] = acc[g][e];
    if (lane == 0) {
      sml[(g * kAttnWarps + warp) * 2] = m[g];
      sml[(g * kAttnWarps + warp) * 2 + 1] = l[g];
    }
  }
  __syncthreads();
  merge::combine_parts<G, D, kAttnWarps, kAttnThreads>(sacc, sml, it.single, it.out_row, it.partials, it.split);
  if (!it.single) merge::arrive_and_merge<G, D, kAttnThreads>(sacc, last, it.counter, it.used, it.out_row, it.partials);
}

}  // namespace nvrar::engine::gpu::mega
