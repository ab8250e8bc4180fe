// Device helpers shared by the engine kernels that stage data in shared memory (flash_prefill.cu,
// flash_prefill_wgmma.cu, flash_prefill_wgmma_overlap.cu, attention_fused.cu, attention_mma.cu): shared-memory
// addresses, cp.async with zero fill, swizzled tiles, ldmatrix, the m16n8k16 bf16 MMA, bf16 packing. Header-only,
// device code.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>
#include <type_traits>

namespace nvrar::engine::gpu::tc {

__device__ __forceinline__ uint32_t shared_address(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

// 16 bytes global -> shared, asynchronously; valid = false writes 16 zero bytes (src is not read but must still be a
// valid address).
__device__ __forceinline__ void cp_async_16(uint32_t dst, const void* src, bool valid) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src), "r"(valid ? 16 : 0)
               : "memory");
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
// Waits until at most N of this thread's committed groups are pending (its own copies only: other threads' copies
// need a barrier after their wait).
template <int N>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
}

__device__ __forceinline__ void ldmatrix_x4(uint32_t addr, uint32_t (&r)[4]) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(addr));
}
__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t addr, uint32_t (&r)[4]) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(addr));
}

// Element offset of 16-byte chunk c of row r in a swizzled [rows][D] bf16 tile: chunk c of row r sits at chunk
// c ^ (r % 8), so ldmatrix's eight row reads of one chunk column hit distinct banks.
template <int D>
__device__ __forceinline__ int swizzled(int r, int c) {
  return r * D + ((c ^ (r & 7)) << 3);
}

// Starts the copy (cp.async, no commit) of rows [0, kTileRows) of a [rows][D] bf16 tile (row r at src + r * stride
// elements) into a swizzled shared tile, kThreads threads of the block sharing the 16-byte chunks: rows < valid are
// copied, rows [valid, zero_from) are left as they are (another copy fills them later), rows >= zero_from are
// zero-filled.
template <int D, int kTileRows, int kThreads, typename T>
__device__ __forceinline__ void load_tile_leaving(T* tile, const T* src, int64_t stride, int64_t valid,
                                                  int64_t zero_from) {
  static_assert(sizeof(T) == 2, "a bf16 tile");
  constexpr int kChunks = D / 8;
  for (int i = threadIdx.x; i < kTileRows * kChunks; i += kThreads) {
    const int r = i / kChunks, c = i % kChunks;
    const bool ok = r < valid;
    if (!ok && r < zero_from) continue;
    cp_async_16(shared_address(tile + swizzled<D>(r, c)), ok ? src + r * stride + c * 8 : src, ok);
  }
}

// load_tile_leaving with every row past `valid` zero-filled.
template <int D, int kTileRows, int kThreads, typename T>
__device__ __forceinline__ void load_tile(T* tile, const T* src, int64_t stride, int64_t valid) {
  load_tile_leaving<D, kTileRows, kThreads>(tile, src, stride, valid, valid);
}

// The factor that turns a q . k dot product into softmax scores in log2 units: 1 / sqrt(head_dim) x log2(e).
__device__ __forceinline__ float softmax_scale_log2(int head_dim) {
  return rsqrtf(static_cast<float>(head_dim)) * 1.4426950408889634f;
}

// c += a . b for a 16x16 (row) by 16x8 (col) bf16 product with fp32 accumulation.
__device__ __forceinline__ void mma_bf16(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
      "{%0, %1, %2, %3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

__device__ __forceinline__ uint32_t pack_bf16(float lo, float hi) {
  const __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
  return *reinterpret_cast<const uint32_t*>(&v);
}

// The online-softmax step (FlashAttention-2) of one warp's 16 query rows over one key tile, on scores in the m16n8
// MMA accumulator layout (mma.sync's, and wgmma's per warp): score(b, e) is element e of n8 block b, the score of row
// qpos + 8 (e >> 1) and key key0 + 8 b + 2 quad_col + (e & 1). Scales the scores to log2 units, masks keys past the
// row's position when `mask`, updates the running max m and this lane's share of the running sum l (summed over the
// quad at the end), turns the scores into P = exp2(s - m) in place and returns in corr the factor by which the rows'
// accumulators must be rescaled (0 on the first tile, where m was -inf; the new max is finite: key 0 is in every row).
template <int kBlocks, typename Score>
__device__ __forceinline__ void online_softmax(Score score, float scale_log2, bool mask, int key0, int qpos,
                                               int quad_col, float (&m)[2], float (&l)[2], float (&corr)[2]) {
  float mx[2] = {m[0], m[1]};
  // Two copies of the scaling loop, so that tiles off the diagonal (mask false, warp-uniform) do no index arithmetic.
  const auto scale_and_max = [&](auto masked) {
    constexpr bool kMasked = decltype(masked)::value;
#pragma unroll
    for (int b = 0; b < kBlocks; ++b)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        // __fmul_rn: never contracted into an FMA with the later "- m", so both copies give the same bits (a row
        // may fall in a masked tile in one chunking and an unmasked one in another; the chunked test is bitwise).
        float x = __fmul_rn(score(b, e), scale_log2);
        if (kMasked && key0 + b * 8 + 2 * quad_col + (e & 1) > qpos + (e >> 1) * 8) x = -INFINITY;
        score(b, e) = x;
        mx[e >> 1] = fmaxf(mx[e >> 1], x);
      }
  };
  if (mask)
    scale_and_max(std::true_type{});
  else
    scale_and_max(std::false_type{});
  float sum[2] = {0.0f, 0.0f};
#pragma unroll
  for (int i = 0; i < 2; ++i) {
    mx[i] = fmaxf(mx[i], __shfl_xor_sync(0xffffffffu, mx[i], 1));
    mx[i] = fmaxf(mx[i], __shfl_xor_sync(0xffffffffu, mx[i], 2));
    corr[i] = exp2f(m[i] - mx[i]);
    m[i] = mx[i];
  }
#pragma unroll
  for (int b = 0; b < kBlocks; ++b)
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      const float p = exp2f(score(b, e) - m[e >> 1]);
      score(b, e) = p;
      sum[e >> 1] += p;
    }
#pragma unroll
  for (int i = 0; i < 2; ++i) l[i] = l[i] * corr[i] + sum[i];
}

}  // namespace nvrar::engine::gpu::tc
