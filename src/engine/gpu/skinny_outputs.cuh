// The skinny decode GEMMs' outputs (skinny_gemm.cu) and the persistent decode kernel's (decode_megakernel.cu): a
// kernel computes "output columns"; an Out type maps each to the weight row it multiplies and stores its result.
// kPaired outputs take columns two by two: column 2 p is the first element of pair p and 2 p + 1 the second (a gate
// row and its up row; a head's elements e and e + head_dim / 2), and store(r, p, a, b) gets both sums of pair p.
// Device code, header-only.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "engine/gpu/layers.h"
#include "engine/gpu/pointwise.cuh"
#include "engine/gpu/skinny_gemm.h"

namespace nvrar::engine::gpu {

// The tensor-core skinny GEMMs' 16-row tiles (skinny_gemm.cu's staged variants, the persistent decode kernel's units):
// tile row r of the tile starting at output column col0 holds column col0 + r, or for paired outputs element r / 8 of
// pair col0 / 2 + r % 8, so that rows g and g + 8 (one lane's mma accumulators) are a pair's two elements.
__host__ __device__ __forceinline__ int64_t tile_column(bool paired, int64_t col0, int r) {
  return paired ? col0 + 2 * (r % 8) + r / 8 : col0 + r;
}

// Plain output: column j is weight row j, stored to y[r, j]: bf16 (kStore), fp32 (kStoreF32) or added to fp32
// (kAddF32). A runtime choice (one lane per output stores), so the three share each kernel's instantiations.
struct StoreColumns {
  static constexpr bool kPaired = false;
  void* y;
  int64_t n;
  SkinnyEpilogue::Kind kind;
  __device__ int64_t columns() const { return n; }
  __device__ int64_t weight_row(int64_t column) const { return column; }
  __device__ void store(int r, int64_t column, float v) const {
    if (kind == SkinnyEpilogue::Kind::kStore)
      static_cast<bf16_t*>(y)[r * n + column] = to_bf16(v);
    else if (kind == SkinnyEpilogue::Kind::kStoreF32)
      static_cast<float*>(y)[r * n + column] = v;
    else
      static_cast<float*>(y)[r * n + column] += v;
  }
};

// SwiGLU pairs: pair p is gate row p and up row inter + p; y[r, p] = swiglu(gate, up).
struct SwiGluPairs {
  static constexpr bool kPaired = true;
  bf16_t* y;
  int64_t inter;
  bool fp32;  // NVRAR_LLM_ACTIVATIONS=fp32: fp32 products and SwiGLU, rounded once
  __device__ int64_t columns() const { return 2 * inter; }
  __device__ int64_t weight_row(int64_t column) const { return column / 2 + (column % 2) * inter; }
  __device__ void store(int r, int64_t pair, float gate, float up) const {
    y[r * inter + pair] = fp32 ? swiglu_f32_one(gate, up) : swiglu_one(to_f32(to_bf16(gate)), to_f32(to_bf16(up)));
  }
};

// RoPE + KV append pairs: pair p is element e and e + half of head p / half (q heads, then k heads, then v heads).
struct RopeAppendPairs {
  static constexpr bool kPaired = true;
  bf16_t* y;
  int64_t n;  // (q_heads + 2 kv_heads) x head_dim
  int q_heads, kv_heads, half;
  const int32_t* positions;
  const float* inv_freq;
  const int32_t* seq;
  bf16_t *cache_k, *cache_v;
  int64_t max_seq;
  bool fp32;  // NVRAR_LLM_ACTIVATIONS=fp32: fp32 products and RoPE, rounded once
  __device__ int64_t columns() const { return n; }
  __device__ int64_t weight_row(int64_t column) const {
    const int64_t pair = column / 2;
    return pair / half * 2 * half + pair % half + (column % 2) * half;
  }
  __device__ void store(int r, int64_t pair, float a, float b) const {
    const int head = static_cast<int>(pair / half), e = static_cast<int>(pair % half);
    bf16_t y1 = to_bf16(a), y2 = to_bf16(b);
    if (head < q_heads + kv_heads) {
      if (fp32) {
        float c, s;
        rope_cos_sin_f32(positions[r], inv_freq[e], c, s);
        rope_rotate_f32(a, b, c, s, y1, y2);
      } else {
        rope_pair(to_f32(y1), to_f32(y2), positions[r], inv_freq[e], y1, y2);
      }
    }
    bf16_t* out = y + r * n + static_cast<int64_t>(head) * 2 * half + e;
    out[0] = y1;
    out[half] = y2;
    if (head < q_heads) return;
    const int kv_head = (head - q_heads) % kv_heads;
    bf16_t* cache = head < q_heads + kv_heads ? cache_k : cache_v;
    bf16_t* row = cache + kv_cache_row(seq[r], kv_heads, kv_head, max_seq, positions[r], int64_t{2} * half);
    row[e] = y1;
    row[e + half] = y2;
  }
};

}  // namespace nvrar::engine::gpu
