// RoPE of one pair of a head's elements and SwiGLU of one element, with transformers' bf16 roundings, the KV cache's
// row index and the bf16 conversions they use. Shared by layers.cu's kernels and the skinny GEMM's epilogues
// (skinny_gemm.cu), so a fused and an unfused decode step give the same bits. Device code.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "core/numeric.h"
#include "engine/gpu/layers.h"

namespace nvrar::engine::gpu {

// bf16 bits as float, and a float rounded to bf16 bits (nearest even).
__device__ __forceinline__ float to_f32(bf16_t v) { return core::to_float(core::Bf16{v}); }
__device__ __forceinline__ bf16_t to_bf16(float v) { return core::from_float<core::Bf16>(v).bits; }

// (x1, x2) = (x[i], x[i + head_dim / 2]) rotated by position x inv_freq[i], rounded where transformers rounds: cos and
// sin to bf16, each partial product to bf16, each sum to bf16.
// rope_cos_sin gives the bf16-rounded cos and sin of one (position, pair), rope_rotate the rotation with them.
__device__ __forceinline__ void rope_cos_sin(int32_t position, float inv_freq, float& c, float& s) {
  const float angle = static_cast<float>(position) * inv_freq;
  c = to_f32(to_bf16(cosf(angle)));
  s = to_f32(to_bf16(sinf(angle)));
}
__device__ __forceinline__ void rope_rotate(float x1, float x2, float c, float s, bf16_t& y1, bf16_t& y2) {
  y1 = to_bf16(to_f32(to_bf16(x1 * c)) + to_f32(to_bf16(-x2 * s)));
  y2 = to_bf16(to_f32(to_bf16(x2 * c)) + to_f32(to_bf16(x1 * s)));
}
__device__ __forceinline__ void rope_pair(float x1, float x2, int32_t position, float inv_freq, bf16_t& y1,
                                          bf16_t& y2) {
  float c, s;
  rope_cos_sin(position, inv_freq, c, s);
  rope_rotate(x1, x2, c, s, y1, y2);
}

// Where KV head kv_head of sequence seq at `position` starts in a KV cache [max_batch][kv_heads][max_seq][head_dim].
__device__ __forceinline__ int64_t kv_cache_row(int32_t seq, int kv_heads, int kv_head, int64_t max_seq,
                                                int32_t position, int64_t head_dim) {
  return ((static_cast<int64_t>(seq) * kv_heads + kv_head) * max_seq + position) * head_dim;
}

// SwiGLU of one element, rounded where transformers rounds: silu(g) to bf16, then the product.
__device__ __forceinline__ bf16_t swiglu_one(float g, float u) {
  return to_bf16(to_f32(to_bf16(g / (1.0f + __expf(-g)))) * u);
}

// NVRAR_LLM_ACTIVATIONS=fp32: RoPE and SwiGLU in fp32 on fp32 inputs, rounded once to bf16 at the end. The rotation's
// and SwiGLU's products and sums go through __fmul_rn / __fadd_rn, so no call site contracts them into an FMA of its
// own (the GEMM epilogue and the fp32-input kernels give the same bits); the angle is a lone product, rounded alike.
__device__ __forceinline__ void rope_cos_sin_f32(int32_t position, float inv_freq, float& c, float& s) {
  const float angle = static_cast<float>(position) * inv_freq;
  c = cosf(angle);
  s = sinf(angle);
}
__device__ __forceinline__ void rope_rotate_f32(float x1, float x2, float c, float s, bf16_t& y1, bf16_t& y2) {
  y1 = to_bf16(__fadd_rn(__fmul_rn(x1, c), -__fmul_rn(x2, s)));
  y2 = to_bf16(__fadd_rn(__fmul_rn(x2, c), __fmul_rn(x1, s)));
}
__device__ __forceinline__ bf16_t swiglu_f32_one(float g, float u) {
  return to_bf16(__fmul_rn(g / (1.0f + __expf(-g)), u));
}

}  // namespace nvrar::engine::gpu
