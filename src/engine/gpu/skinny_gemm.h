// Skinny GEMM for decode (skinny_gemm.cu): y[m, n] = x[m, k] . w[n, k]^T for m <= 8 rows (the decode batch), bf16
// in, bf16 or fp32 out (SkinnyEpilogue), fp32 accumulation. At such m a linear layer is a pass over the weights, so
// the kernel is built to stream w at HBM bandwidth; Gemm times it against cuBLASLt's candidates and uses it only
// where it is faster.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "engine/gpu/layers.h"  // bf16_t

namespace nvrar::engine::gpu {

constexpr int64_t kSkinnyGemmMaxRows = 8;

// variant: 0, 1 (CUDA-core tilings), 2 or 3 (tensor cores fed from shared-memory stages, 4 or 8 warps per 16
// rows) of the same computation (skinny_gemm.cu). Launched with programmatic dependent launch unless NVRAR_PDL=0:
// the weights start streaming while the previous kernel of the stream finishes.
constexpr int kSkinnyGemmVariants = 4;

// What the GEMM does with its products. kStore writes y[m, n] (bf16); kStoreF32 writes them to an fp32 y unrounded;
// kAddF32 adds them to an fp32 y (y[r, j] += product, one fp32 add: the fp32 residual stream of
// NVRAR_LLM_ACTIVATIONS=fp32). The other two take the products in pairs of columns (a, b) and do the decode step's
// next element-wise kernel on them, so that kernel need not run (the same bits as the GEMM, then that kernel: each
// product rounded to bf16 first and layers.h's kernel; with fp32 set, kStoreF32 and activations_f32.h's kernel):
//   kSwiGlu: n = 2 inter, columns [0, inter) gate and [inter, 2 inter) up (the fused gate/up weight);
//     y[m, inter] = swiglu(gate, up) as layers.h's swiglu.
//   kRopeAppend: n = (q_heads + 2 kv_heads) head_dim, the q, k and v heads of the fused q/k/v weight; y[m, n] as
//     layers.h's rope_qk_append leaves it (q and k heads rotated, v as is), and the rotated k heads and the v heads
//     of row r written to cache_k / cache_v ([max_batch][kv_heads][max_seq][head_dim]) of sequence seq[r] at
//     position positions[r].
struct SkinnyEpilogue {
  enum class Kind { kStore, kSwiGlu, kRopeAppend, kStoreF32, kAddF32 };
  Kind kind = Kind::kStore;
  int q_heads = 0, kv_heads = 0, head_dim = 0;  // kRopeAppend
  const int32_t* positions = nullptr;           // [m]
  const float* inv_freq = nullptr;              // [head_dim / 2]
  const int32_t* seq = nullptr;                 // [m]
  bf16_t* cache_k = nullptr;
  bf16_t* cache_v = nullptr;
  int64_t max_seq = 0;
  // kSwiGlu, kRopeAppend: NVRAR_LLM_ACTIVATIONS=fp32's math (fp32 products, RoPE or SwiGLU in fp32, one rounding).
  bool fp32 = false;
};

// Whether skinny_gemm takes this call: 1 <= m <= 8, k a multiple of 8 (of 256 for variants 2 and 3),
// every pointer 16-byte aligned.
bool skinny_gemm_supports(const void* x, const void* w, const void* y, int64_t m, int64_t n, int64_t k,
                          int variant = 0);
// Throws nvrar::Error, launching nothing, for a call skinny_gemm_supports refuses or an epilogue whose shape does not
// match n (kSwiGlu: n even; kRopeAppend: n = (q_heads + 2 kv_heads) head_dim with head_dim even and every pointer
// set; fp32 set with a plain store). Gemm times the variants with the plain store of the output type it chooses for,
// or with the epilogue the step gives that GEMM (gemm.h's TuneEpilogue).
void skinny_gemm(const void* x, const void* w, void* y, int64_t m, int64_t n, int64_t k, int variant,
                 cudaStream_t stream, const SkinnyEpilogue& epilogue = {});

}  // namespace nvrar::engine::gpu
