// The decode step's RMSNorm moved into its skinny GEMMs (skinny_gemm.h, SkinnyInputNorm and kAddResidual), so that
// at TP 1 no norm kernel runs between layers (NVRAR_LLM_FUSE_NORM):
//   - the GEMM before a norm (o_proj, down_proj) adds its product into the residual stream h itself and writes, per
//     row and per group of kNormGroupColumns output columns, the sum of squares of the new h (its "row partials");
//   - the GEMM after it (gate/up, the next layer's q/k/v) reads h, not the normalised x: each block sums a row's
//     partials (in one fixed order, so every block and every variant gets the same inverse RMS), then normalises
//     each 8-element piece of h as it loads it.
// The arithmetic is gpu/device/rmsnorm.cuh's (Hugging Face's LlamaRMSNorm in bf16):
//   h'  = round(h + round(y))                  (the product rounded, then the residual add rounded)
//   inv = rsqrt(sum(float(h')^2) / hidden + eps)
//   x   = round(float(weight) * float(round(float(h') * inv)))
// Only the order of the sum of squares differs from the norm kernel's (groups of 16 columns, then the groups), so
// inv may differ from it in the last bit, and then an element of x by one bf16 rounding.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "engine/gpu/bf16_vector.cuh"
#include "engine/gpu/layers.h"
#include "engine/gpu/pointwise.cuh"
#include "engine/gpu/skinny_gemm.h"  // kNormGroupColumns

namespace nvrar::engine::gpu {

// The whole-block prologue of a GEMM whose input is normalised on load: rows [0, m) of inv_rms (shared memory) get
// rsqrt(sum of the row's k / 16 partials / k + eps). Warp w sums rows w, w + warps, ...: lane l adds partials l,
// l + 32, ... in order, then a butterfly. Call after griddepcontrol.wait (the partials are the previous kernel's),
// from every thread of the block; ends with a block barrier.
__device__ __forceinline__ void rms_from_partials(const float* partials, int64_t m, int64_t k, float eps,
                                                  float* inv_rms) {
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, warps = blockDim.x / 32;
  const int64_t groups = k / kNormGroupColumns;
  for (int64_t r = warp; r < m; r += warps) {
    float s = 0.0f;
    for (int64_t g = lane; g < groups; g += 32) s += __ldcg(partials + r * groups + g);  // L2: coherent
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
    if (lane == 0) inv_rms[r] = rsqrtf(s / static_cast<float>(k) + eps);
  }
  __syncthreads();
}

// Eight elements of h (raw bf16) normalised with inv and the norm weights (raw bf16): bf16 values.
__device__ __forceinline__ uint4 rmsnorm8(const uint4& h, const uint4& weight, float inv) {
  float hv[8], wv[8];
  unpack_bf16x8(h, hv);
  unpack_bf16x8(weight, wv);
  uint4 out;
  bf16_t* o = reinterpret_cast<bf16_t*>(&out);
#pragma unroll
  for (int i = 0; i < 8; ++i) o[i] = to_bf16(wv[i] * to_f32(to_bf16(hv[i] * inv)));
  return out;
}

// The GEMM's input as the previous kernel wrote it.
struct PlainInput {
  static constexpr bool kNorm = false;
  const bf16_t* x;  // [m, k]
};

// The residual stream h, normalised on load (SkinnyInputNorm).
struct NormInput {
  static constexpr bool kNorm = true;
  const bf16_t* x;         // h [m, k]
  const bf16_t* weight;    // [k] RMSNorm weights (constant for the step: read through the read-only path)
  const float* partials;   // [m][k / 16] the previous GEMM's row partials
  float eps;
};

// Output columns j .. j + 15 of a residual-adding GEMM: in place h[r, j] = round(h + round(v)); store returns the
// new value, whose square the kernel adds into partials[r][j / 16].
struct AddResidualColumns {
  static constexpr bool kPaired = false;
  static constexpr bool kRowSquares = true;
  bf16_t* residual;  // h [m, n]
  float* partials;   // [m][n / 16]
  int64_t n;
  __device__ int64_t columns() const { return n; }
  __device__ int64_t weight_row(int64_t column) const { return column; }
  __device__ float store(int r, int64_t column, float v) const {
    bf16_t* h = residual + r * n + column;
    const bf16_t sum = to_bf16(to_f32(*h) + to_f32(to_bf16(v)));
    *h = sum;
    return to_f32(sum);
  }
};

}  // namespace nvrar::engine::gpu
