// Skinny GEMM for decode (skinny_gemm.h).
//
// Purpose: y[m, n] = x[m, k] . w[n, k]^T with m <= 8, the shape of every linear layer in a decode step. The weights
//   (megabytes to a gigabyte) are read once; x (at most 8 x k bf16) stays in L1/L2.
// Algorithm: one warp per C output columns j .. j + C - 1 (weight rows). Lane l reads 16 bytes (8 bf16) of each row
//   at a time, U loads per row in flight (streaming, evict-first), and multiplies them with the same 8 elements of
//   each of the m rows of x (16-byte loads through the read-only cache; one x load serves the C columns),
//   accumulating C m fp32 sums. A butterfly of xor-shuffles sums the lanes; lane C r + c writes y[r, j + c] rounded
//   to bf16. Variants: 0 is C = 2, U = 4 (best for m of 1-2); 1 is C = 4, U = 2 (fewer x loads and conversions per
//   weight for larger m); variants 2 and 3 (tensor cores) are described at their kernel below; Gemm times all four.
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


// Variant 2, tensor cores: mma.sync m16n8k16 (bf16 in, fp32 accumulate) with the weights as A (16 rows of n) and
//   x^T as B (its 8 columns are the batch rows; rows >= m are zeros).
// Algorithm: a block of 4 warps owns 16 weight rows; warp w takes a quarter of k. The dot products sum over k, so
//   any order of k works as long as A and B use the same one: lane (g = lane / 4, t = lane % 4) loads 16 contiguous
//   bytes (8 bf16) of weight rows g and g + 8 and of x row g at offset 8 t of each 32-element chunk, and feeds
//   elements 0-3 to one mma and 4-7 to the next as its k-slots (2t, 2t + 1, 2t + 8, 2t + 9). Four chunks' loads are
//   in flight before their mmas. The warps' fp32 accumulators meet in shared memory; warp 0 adds them and writes
//   y[r, row] for r < m (fragment: lane holds rows g, g + 8 x batch columns 2t, 2t + 1).
// Launch shape: kWarps x 32 threads per block (variant 2: 4 warps, variant 3: 8 warps), ceil(n / 16) blocks; k must
//   be a multiple of 32 x kWarps.
// Sync: one __syncthreads before the cross-warp sum.
constexpr int kMmaUnroll = 4;
constexpr int mma_warps(int variant) { return variant == 2 ? 4 : 8; }

__device__ __forceinline__ void mma_bf16_16816(float (&c)[4], uint32_t a0, uint32_t a1, uint32_t a2, uint32_t a3,
                                               uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%0,%1,%2,%3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
}

template <int kMmaWarps>
__global__ void __launch_bounds__(kMmaWarps * 32)
    skinny_gemm_mma_kernel(const bf16_t* __restrict__ x, const bf16_t* __restrict__ w, bf16_t* __restrict__ y,
                           int64_t m, int64_t n, int64_t k) {
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int g = lane / 4, t = lane % 4;
  const int64_t row0 = static_cast<int64_t>(blockIdx.x) * 16;
  const int64_t r_lo = row0 + g < n ? row0 + g : n - 1;  // rows past n reread the last row; never stored
  const int64_t r_hi = row0 + g + 8 < n ? row0 + g + 8 : n - 1;
  const bf16_t* w_lo = w + r_lo * k;
  const bf16_t* w_hi = w + r_hi * k;
  const bool x_row = g < m;
  const bf16_t* xr = x + (x_row ? g : 0) * k;
  const int64_t span = k / kMmaWarps;
  const int64_t begin = warp * span, end = begin + span;
  float c[4] = {0.0f, 0.0f, 0.0f, 0.0f};
  for (int64_t chunk = begin; chunk < end; chunk += 32 * kMmaUnroll) {
    uint4 lo[kMmaUnroll], hi[kMmaUnroll], xv[kMmaUnroll];
#pragma unroll
    for (int u = 0; u < kMmaUnroll; ++u) {
      const int64_t at = chunk + u * 32 + t * 8;
      const bool in = at < end;
      lo[u] = in ? __ldcs(reinterpret_cast<const uint4*>(w_lo + at)) : make_uint4(0, 0, 0, 0);
      hi[u] = in ? __ldcs(reinterpret_cast<const uint4*>(w_hi + at)) : make_uint4(0, 0, 0, 0);
      xv[u] = in && x_row ? __ldg(reinterpret_cast<const uint4*>(xr + at)) : make_uint4(0, 0, 0, 0);
    }
#pragma unroll
    for (int u = 0; u < kMmaUnroll; ++u) {
      mma_bf16_16816(c, lo[u].x, hi[u].x, lo[u].y, hi[u].y, xv[u].x, xv[u].y);
      mma_bf16_16816(c, lo[u].z, hi[u].z, lo[u].w, hi[u].w, xv[u].z, xv[u].w);
    }
  }
  __shared__ float partial[kMmaWarps][32][4];
#pragma unroll
  for (int i = 0; i < 4; ++i) partial[warp][lane][i] = c[i];
  __syncthreads();
  if (warp != 0) return;
#pragma unroll
  for (int i = 0; i < 4; ++i)
    for (int v = 1; v < kMmaWarps; ++v) c[i] += partial[v][lane][i];
  // c0: (row g, batch 2t), c1: (row g, batch 2t + 1), c2: (row g + 8, batch 2t), c3: (row g + 8, batch 2t + 1).
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const int64_t batch = 2 * t + (i & 1);
    const int64_t row = row0 + g + (i >= 2 ? 8 : 0);
    if (batch < m && row < n) y[batch * n + row] = core::from_float<Bf16>(c[i]).bits;
  }
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

bool skinny_gemm_supports(const void* x, const void* w, const void* y, int64_t m, int64_t n, int64_t k, int variant) {
  const auto aligned = [](const void* p) { return reinterpret_cast<std::uintptr_t>(p) % 16 == 0; };
  const int64_t k_multiple = variant >= 2 ? 32 * mma_warps(variant) : 8;
  return variant >= 0 && variant < kSkinnyGemmVariants && m >= 1 && m <= kSkinnyGemmMaxRows && n >= 1 && k >= 8 &&
         k % k_multiple == 0 && aligned(x) && aligned(w) && aligned(y);
}

void skinny_gemm(const void* x, const void* w, void* y, int64_t m, int64_t n, int64_t k, int variant,
                 cudaStream_t stream) {
  if (m < 1 || m > kSkinnyGemmMaxRows || variant < 0 || variant >= kSkinnyGemmVariants)
    throw Error("nvrar-llm: skinny_gemm: m " + std::to_string(m) + " variant " + std::to_string(variant) +
                " (takes 1 <= m <= " + std::to_string(kSkinnyGemmMaxRows) + " and variant < " +
                std::to_string(kSkinnyGemmVariants) + ")");
  const unsigned mma_blocks = static_cast<unsigned>((n + 15) / 16);
  if (variant == 2) {
    skinny_gemm_mma_kernel<4><<<mma_blocks, 4 * 32, 0, stream>>>(
        static_cast<const bf16_t*>(x), static_cast<const bf16_t*>(w), static_cast<bf16_t*>(y), m, n, k);
    return;
  }
  if (variant == 3) {
    skinny_gemm_mma_kernel<8><<<mma_blocks, 8 * 32, 0, stream>>>(
        static_cast<const bf16_t*>(x), static_cast<const bf16_t*>(w), static_cast<bf16_t*>(y), m, n, k);
    return;
  }
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
