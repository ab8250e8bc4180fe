// Skinny GEMM for decode (skinny_gemm.h).
//
// Purpose: y[m, n] = x[m, k] . w[n, k]^T with m <= 8, the shape of every linear layer in a decode step. The weights
//   (megabytes to a gigabyte) are read once; x (at most 8 x k bf16) stays in L1/L2.
// Algorithm: one warp per C output columns j .. j + C - 1 (weight rows). Lane l reads 16 bytes (8 bf16) of each row
//   at a time, U loads per row in flight (streaming, evict-first), and multiplies them with the same 8 elements of
//   each of the m rows of x (16-byte loads through the read-only cache; one x load serves the C columns),
//   accumulating C m fp32 sums. A butterfly of xor-shuffles sums the lanes; lane C r + c writes y[r, j + c] rounded
//   to bf16. Variants: 0 is C = 2, U = 4 (best for m of 1-2); 1 is C = 4, U = 2 (fewer x loads and conversions per
//   weight for larger m); Gemm times both.
// Launch shape: 256 threads (8 warps, 8 C columns) per block, ceil(n / 8 C) blocks; template on m, C, U.
// Sync: none beyond the warp shuffles; no shared memory.
#include "engine/gpu/skinny_gemm.h"

#include <cuda_runtime.h>

#include <string>

#include "core/numeric.h"
#include "engine/gpu/bf16_vector.cuh"
#include "engine/gpu/layers.h"
#include "nvrar/types.h"

namespace nvrar::engine::gpu {

namespace {

using core::Bf16;
constexpr int kWarpsPerBlock = 8;


// kColumnsPerWarp: weight rows per warp (each x load serves all of them); kUnroll: loads per row in flight.
template <int M, int kColumnsPerWarp, int kUnroll>
__global__ void __launch_bounds__(kWarpsPerBlock * 32)
    skinny_gemm_kernel(const bf16_t* __restrict__ x, const bf16_t* __restrict__ w, bf16_t* __restrict__ y, int64_t n,
                       int64_t k) {
  const int lane = threadIdx.x % 32;
  const int64_t col0 = (static_cast<int64_t>(blockIdx.x) * kWarpsPerBlock + threadIdx.x / 32) * kColumnsPerWarp;
  if (col0 >= n) return;
  const bf16_t* rows[kColumnsPerWarp];
#pragma unroll
  for (int c = 0; c < kColumnsPerWarp; ++c) rows[c] = w + (col0 + c < n ? col0 + c : col0) * k;  // past n: reread
  float sum[M][kColumnsPerWarp] = {};
  constexpr int64_t kStep = 32 * 8;  // elements one warp-wide load covers
  for (int64_t base = static_cast<int64_t>(lane) * 8; base < k; base += kStep * kUnroll) {
    uint4 wraw[kUnroll][kColumnsPerWarp];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u)
#pragma unroll
      for (int c = 0; c < kColumnsPerWarp; ++c) {
        const int64_t at = base + u * kStep;
        wraw[u][c] = at < k ? __ldcs(reinterpret_cast<const uint4*>(rows[c] + at)) : make_uint4(0, 0, 0, 0);
      }
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int64_t at = base + u * kStep;
      if (at >= k) break;
      float wv[kColumnsPerWarp][8];
#pragma unroll
      for (int c = 0; c < kColumnsPerWarp; ++c) unpack_bf16x8(wraw[u][c], wv[c]);
#pragma unroll
      for (int r = 0; r < M; ++r) {
        float xv[8];
        unpack_bf16x8(__ldg(reinterpret_cast<const uint4*>(x + r * k + at)), xv);
#pragma unroll
        for (int c = 0; c < kColumnsPerWarp; ++c)
#pragma unroll
          for (int i = 0; i < 8; ++i) sum[r][c] += wv[c][i] * xv[i];
      }
    }
  }
#pragma unroll
  for (int r = 0; r < M; ++r)
#pragma unroll
    for (int c = 0; c < kColumnsPerWarp; ++c)
#pragma unroll
      for (int o = 16; o > 0; o >>= 1) sum[r][c] += __shfl_xor_sync(0xffffffffu, sum[r][c], o);
#pragma unroll
  for (int r = 0; r < M; ++r)
#pragma unroll
    for (int c = 0; c < kColumnsPerWarp; ++c)
      if (lane == r * kColumnsPerWarp + c && col0 + c < n) y[r * n + col0 + c] = core::from_float<Bf16>(sum[r][c]).bits;
}

template <int M, int kColumnsPerWarp, int kUnroll>
void launch_shape(const void* x, const void* w, void* y, int64_t n, int64_t k, cudaStream_t stream) {
  constexpr int64_t kColumnsPerBlock = kWarpsPerBlock * kColumnsPerWarp;
  const unsigned blocks = static_cast<unsigned>((n + kColumnsPerBlock - 1) / kColumnsPerBlock);
  skinny_gemm_kernel<M, kColumnsPerWarp, kUnroll><<<blocks, kWarpsPerBlock * 32, 0, stream>>>(
      static_cast<const bf16_t*>(x), static_cast<const bf16_t*>(w), static_cast<bf16_t*>(y), n, k);
}

template <int M>
void launch(const void* x, const void* w, void* y, int64_t n, int64_t k, int variant, cudaStream_t stream) {
  if (variant == 0)
    launch_shape<M, 2, 4>(x, w, y, n, k, stream);
  else
    launch_shape<M, 4, 2>(x, w, y, n, k, stream);
}

}  // namespace

bool skinny_gemm_supports(const void* x, const void* w, const void* y, int64_t m, int64_t n, int64_t k) {
  const auto aligned = [](const void* p) { return reinterpret_cast<std::uintptr_t>(p) % 16 == 0; };
  return m >= 1 && m <= kSkinnyGemmMaxRows && n >= 1 && k >= 8 && k % 8 == 0 && aligned(x) && aligned(w) &&
         aligned(y);
}

void skinny_gemm(const void* x, const void* w, void* y, int64_t m, int64_t n, int64_t k, int variant,
                 cudaStream_t stream) {
  if (m < 1 || m > kSkinnyGemmMaxRows || variant < 0 || variant >= kSkinnyGemmVariants)
    throw Error("nvrar-llm: skinny_gemm: m " + std::to_string(m) + " variant " + std::to_string(variant) +
                " (takes 1 <= m <= " + std::to_string(kSkinnyGemmMaxRows) + " and variant < " +
                std::to_string(kSkinnyGemmVariants) + ")");
  switch (m) {
    case 1: return launch<1>(x, w, y, n, k, variant, stream);
    case 2: return launch<2>(x, w, y, n, k, variant, stream);
    case 3: return launch<3>(x, w, y, n, k, variant, stream);
    case 4: return launch<4>(x, w, y, n, k, variant, stream);
    case 5: return launch<5>(x, w, y, n, k, variant, stream);
    case 6: return launch<6>(x, w, y, n, k, variant, stream);
    case 7: return launch<7>(x, w, y, n, k, variant, stream);
    default: return launch<8>(x, w, y, n, k, variant, stream);
  }
}

}  // namespace nvrar::engine::gpu
