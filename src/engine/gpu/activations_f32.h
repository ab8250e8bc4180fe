// The element-wise steps of NVRAR_LLM_ACTIVATIONS=fp32 on fp32 GEMM outputs: RoPE + KV append of the q/k/v
// GEMM's fp32 output, SwiGLU of the gate/up GEMM's. Each computes in fp32 (fp32 cos and sin; silu and the product)
// and rounds once to bf16, where transformers' bf16 Llama rounds its GEMM outputs and each step inside RoPE and
// SwiGLU (layers.h's kernels); the pair "fp32 GEMM output, then this kernel" gives the same bits as the skinny GEMM's
// epilogue with fp32 set (skinny_gemm.h; both use pointwise.cuh's fp32 helpers). Stream-ordered,
// graph-capturable, no allocation; 0 rows launch nothing.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "engine/gpu/layers.h"

namespace nvrar::engine::gpu {

// qkv32: [n][qkv_cols] fp32 with q heads at column h * head_dim, then kv_heads k heads, then kv_heads v heads.
// Writes qkv [n][qkv_cols] (bf16, the same layout): q and k heads rotated in fp32 and rounded once, v heads rounded
// once; the rotated k heads and the v heads also to cache_k / cache_v [max_batch][kv_heads][max_seq][head_dim] of
// sequence seq[t] at positions[t]. Throws nvrar::Error for an odd head_dim, rows too short for the heads, or (rows
// > 0) a pointer not set.
void rope_qk_append_f32(const float* qkv32, int64_t n, int64_t qkv_cols, int q_heads, int kv_heads, int head_dim,
                        const int32_t* positions, const float* inv_freq, const int32_t* seq, bf16_t* cache_k,
                        bf16_t* cache_v, int64_t max_seq, bf16_t* qkv, cudaStream_t stream);

// out[t, i] = round(silu(gate) * up) in fp32 of gate = gate_up[t, i] and up = gate_up[t, inter + i].
void swiglu_f32(const float* gate_up, int64_t n, int64_t inter, bf16_t* out, cudaStream_t stream);

}  // namespace nvrar::engine::gpu
