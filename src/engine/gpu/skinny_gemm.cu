// Skinny GEMM for decode (skinny_gemm.h).
//
// Purpose: y[m, n] = x[m, k] . w[n, k]^T with m <= 8, the shape of every linear layer in a decode step. The weights
//   (megabytes to a gigabyte) are read once; x (at most 8 x k bf16) stays in L1/L2.
// Algorithm: one warp per C output columns j .. j + C - 1 (weight rows). Lane l reads 16 bytes (8 bf16) of each row
//   at a time, U loads per row in flight (streaming, evict-first), and multiplies them with the same 8 elements of
//   each of the m rows of x (16-byte coherent loads, L1-cached; one x load serves the C columns),
//   accumulating C m fp32 sums. A butterfly of xor-shuffles sums the lanes; lane C r + c writes y[r, j + c] (bf16,
//   or fp32: StoreColumns). Variants: 0 is C = 2, U = 4 (best for m of 1-2); 1 is C = 4, U = 2 (fewer x loads and
//   conversions per weight for larger m); variants 2 and 3 (tensor cores, weights staged through shared memory) are
//   described at their kernel below; Gemm times all four.
// Launch shape: 256 threads (8 warps, 8 C columns) per block, ceil(n / 8 C) blocks; template on m, C, U.
// Epilogues (SkinnyEpilogue, skinny_gemm.h): the kernels compute "output columns" and an Out type maps them to weight
//   rows and stores them. StoreColumns: column j is weight row j, stored to y. The paired outputs (SwiGluPairs,
//   RopeAppendPairs) take their columns two by two: column 2 p is the first element of pair p and 2 p + 1 the second
//   (a gate row and its up row; a head's element e and e + head_dim / 2), so both products of a pair meet in one
//   warp (after the butterfly every lane holds both) or, in variants 2 and 3, in one lane (tile rows g and g + 8),
//   and that lane applies SwiGLU or RoPE + KV append (pointwise.cuh, the formulas of layers.cu's kernels).
// Sync (variants 0 and 1): none beyond the warp shuffles; no shared memory. Programmatic dependent launch
//   (gpu/device/pdl.cuh, off with NVRAR_PDL=0): every variant requests its first weights before griddepcontrol.wait,
//   and reads x and writes y (and the KV cache) only after it. Each releases the next kernel (launch_dependents) once
//   its weights are all read, before its epilogue: a PDL-launched successor (the tensor-core decode attention after
//   qkv, the residual + RMSNorm at TP 1 or a collective at TP > 1 after o_proj and down, the down GEMM after gate/up)
//   may start, and its own wait, before its first load, still covers this kernel's stores (H200: -1% per decode step
//   at batch 1, neutral at 8).
#include "engine/gpu/skinny_gemm.h"

#include <cuda_runtime.h>

#include <string>

#include "config/settings.h"
#include "engine/gpu/bf16_vector.cuh"
#include "engine/gpu/layers.h"
#include "engine/gpu/pointwise.cuh"
#include "engine/gpu/skinny_outputs.cuh"
#include "gpu/device/pdl.cuh"
#include "nvrar/types.h"

namespace nvrar::engine::gpu {

namespace {

namespace pdl = ::nvrar::gpu::dev;
constexpr int kWarpsPerBlock = 8;

// 16 bytes of x, the activations the previous kernel wrote. A coherent load, issued only after
// griddepcontrol.wait: x is neither __restrict__ nor read through the read-only path (ld.global.nc), since under
// programmatic dependent launch it is written while this kernel already runs, and a compiler that takes x for
// read-only may move such loads above the wait (a stale-x failure seen in the engine check with variant 2).
__device__ __forceinline__ uint4 load_activation(const bf16_t* p) {
  uint4 v;
  // volatile: stays after the (volatile) griddepcontrol.wait; no memory clobber, so other loads still schedule freely.
  asm volatile("ld.global.v4.u32 {%0, %1, %2, %3}, [%4];" : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w) : "l"(p));
  return v;
}

// kColumnsPerWarp: weight rows per warp (each x load serves all of them); kUnroll: loads per row in flight.
template <int M, int kColumnsPerWarp, int kUnroll, class Out>
__global__ void __launch_bounds__(kWarpsPerBlock * 32)
    skinny_gemm_kernel(const bf16_t* x, const bf16_t* __restrict__ w, Out out, int64_t k) {
  static_assert(!Out::kPaired || kColumnsPerWarp % 2 == 0, "a pair's two columns in one warp");
  const int lane = threadIdx.x % 32;
  const int64_t n = out.columns();
  const int64_t col0 = (static_cast<int64_t>(blockIdx.x) * kWarpsPerBlock + threadIdx.x / 32) * kColumnsPerWarp;
  if (col0 >= n) return;  // reads nothing, writes nothing: no need to wait for the previous kernel
  const bf16_t* rows[kColumnsPerWarp];
#pragma unroll
  for (int c = 0; c < kColumnsPerWarp; ++c)
    rows[c] = w + out.weight_row(col0 + c < n ? col0 + c : col0) * k;  // past n: reread
  float sum[M][kColumnsPerWarp] = {};
  constexpr int64_t kStep = 32 * 8;  // elements one warp-wide load covers
  bool waited = false;
  for (int64_t base = static_cast<int64_t>(lane) * 8; base < k; base += kStep * kUnroll) {
    uint4 wraw[kUnroll][kColumnsPerWarp];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u)
#pragma unroll
      for (int c = 0; c < kColumnsPerWarp; ++c) {
        const int64_t at = base + u * kStep;
        wraw[u][c] = at < k ? __ldcs(reinterpret_cast<const uint4*>(rows[c] + at)) : make_uint4(0, 0, 0, 0);
      }
    if (!waited) {  // the first weights are requested before the previous kernel (which writes x) has finished
      pdl::wait_for_previous_grid();
      waited = true;
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
        unpack_bf16x8(load_activation(x + r * k + at), xv);
#pragma unroll
        for (int c = 0; c < kColumnsPerWarp; ++c)
#pragma unroll
          for (int i = 0; i < 8; ++i) sum[r][c] += wv[c][i] * xv[i];
      }
    }
  }
  if (!waited) pdl::wait_for_previous_grid();  // a lane past k (k < 256) still writes y below
  pdl::allow_next_grid();  // weights all read: a PDL-launched GEMM after this one may start streaming its own
#pragma unroll
  for (int r = 0; r < M; ++r)
#pragma unroll
    for (int c = 0; c < kColumnsPerWarp; ++c)
#pragma unroll
      for (int o = 16; o > 0; o >>= 1) sum[r][c] += __shfl_xor_sync(0xffffffffu, sum[r][c], o);
  if constexpr (Out::kPaired) {  // every lane holds every sum: lane r C + c stores pair (col0 + c) / 2 of row r
#pragma unroll
    for (int r = 0; r < M; ++r)
#pragma unroll
      for (int c = 0; c < kColumnsPerWarp; c += 2)
        if (lane == r * kColumnsPerWarp + c && col0 + c < n) out.store(r, (col0 + c) / 2, sum[r][c], sum[r][c + 1]);
  } else {
#pragma unroll
    for (int r = 0; r < M; ++r)
#pragma unroll
      for (int c = 0; c < kColumnsPerWarp; ++c)
        if (lane == r * kColumnsPerWarp + c && col0 + c < n) out.store(r, col0 + c, sum[r][c]);
  }
}


// Variants 2 and 3, tensor cores with the weights staged through shared memory: mma.sync m16n8k16 (bf16 in, fp32
//   accumulate) with the weights as A (16 rows of n) and x^T as B (its 8 columns are the batch rows; rows >= m are
//   zeros).
// Algorithm: a block owns 16 weight rows and walks k in chunks of kChunk = 256 elements through a ring of kStages
//   shared-memory stages. cp.async copies a chunk (16 rows x 512 bytes) with each warp reading whole 512-byte row
//   segments (fully coalesced, L2 only), kStages - 1 chunks ahead of the chunk being multiplied. The dot products sum
//   over k, so any order of k works as long as A and B use the same one: lane (g = lane / 4, t = lane % 4) takes 16
//   contiguous bytes (8 bf16) of rows g and g + 8 from shared memory and of x row g from global memory at
//   offset 8 t of a 32-element group, and feeds elements 0-3 to one mma and 4-7 to the next as its k-slots (2t,
//   2t + 1, 2t + 8, 2t + 9). A chunk's 8 groups are split over the warps; x is loaded one chunk ahead. The warps'
//   accumulators meet in shared memory; warp 0 adds them and writes y[r, row] for r < m (fragment: lane holds rows
//   g, g + 8 x batch columns 2t, 2t + 1).
// Programmatic dependent launch: the first kStages - 1 chunks of weights are requested before
//   griddepcontrol.wait, so they stream while the previous kernel (which writes x) finishes; x is read and y written
//   only after the wait.
// Launch shape: kWarps x 32 threads (variant 2: 4 warps, variant 3: 8), ceil(n / 16) blocks; k a multiple of 256.
//   Shared memory: kStages x 16 rows x 576 bytes (512 + 64 bytes of padding, so that the 8 lanes of a 16-byte
//   shared load phase hit 32 distinct banks: rows g and g + 1 land 64 bytes apart modulo 128).
// Sync: cp.async groups and one __syncthreads per chunk (a stage is refilled only after every warp used it), one
//   before the cross-warp sum.
constexpr int kStagedChunk = 256;                       // elements of k per stage
constexpr int kStagedRowBytes = kStagedChunk * 2 + 64;  // a row of a stage in shared memory, padded
constexpr int kStagedStages = 5;

__device__ __forceinline__ void mma_bf16_16816(float (&c)[4], uint32_t a0, uint32_t a1, uint32_t a2, uint32_t a3,
                                               uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%0,%1,%2,%3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
}

__device__ __forceinline__ void cp_async_16(void* smem, const void* gmem) {
  const unsigned to = static_cast<unsigned>(__cvta_generic_to_shared(smem));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(to), "l"(gmem) : "memory");
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
template <int kPending>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(kPending) : "memory");
}

template <int kWarps, class Out>
__global__ void __launch_bounds__(kWarps * 32)
    skinny_gemm_staged_kernel(const bf16_t* x, const bf16_t* __restrict__ w, Out out, int64_t m, int64_t k) {
  constexpr int kThreads = kWarps * 32;
  constexpr int kPiecesPerRow = kStagedChunk * 2 / 16;          // 16-byte pieces of a row's chunk: 32
  constexpr int kPiecesPerThread = 16 * kPiecesPerRow / kThreads;  // 4 (4 warps) or 2 (8 warps)
  constexpr int kGroupsPerWarp = kStagedChunk / 32 / kWarps;     // 32-element groups per warp per chunk: 2 or 1
  __shared__ __align__(16) char stage[kStagedStages][16 * kStagedRowBytes];

  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int g = lane / 4, t = lane % 4;
  const int64_t n = out.columns();
  const int64_t col0 = static_cast<int64_t>(blockIdx.x) * 16;  // this block's 16 output columns
  const auto column_of = [&](int r) { return tile_column(Out::kPaired, col0, r); };  // skinny_outputs.cuh
  const int64_t chunks = k / kStagedChunk;

  // Thread i copies piece i % 32 of rows i / 32 + (kThreads / 32) j: a warp reads whole 512-byte row segments.
  const bf16_t* src[kPiecesPerThread];
  int dst[kPiecesPerThread];
#pragma unroll
  for (int j = 0; j < kPiecesPerThread; ++j) {
    const int r = threadIdx.x / kPiecesPerRow + j * (kThreads / kPiecesPerRow);
    const int piece = threadIdx.x % kPiecesPerRow;
    const int64_t column = column_of(r) < n ? column_of(r) : n - 1;  // past n: reread the last; never stored
    src[j] = w + out.weight_row(column) * k + piece * 8;
    dst[j] = r * kStagedRowBytes + piece * 16;
  }
  const auto load_chunk = [&](int64_t chunk) {
    char* s = stage[chunk % kStagedStages];
#pragma unroll
    for (int j = 0; j < kPiecesPerThread; ++j) cp_async_16(s + dst[j], src[j] + chunk * kStagedChunk);
  };
#pragma unroll
  for (int c = 0; c < kStagedStages - 1; ++c) {
    if (c < chunks) load_chunk(c);
    cp_async_commit();
  }
  pdl::wait_for_previous_grid();  // x comes from the previous kernel; y may still be read by it

  const bool x_row = g < m;
  const bf16_t* xr = x + (x_row ? g : 0) * k + t * 8;
  const auto load_x = [&](int64_t chunk, uint4 (&xv)[kGroupsPerWarp]) {
#pragma unroll
    for (int i = 0; i < kGroupsPerWarp; ++i) {
      const int group = warp * kGroupsPerWarp + i;
      xv[i] = x_row && chunk < chunks ? load_activation(xr + chunk * kStagedChunk + group * 32)
                                      : make_uint4(0, 0, 0, 0);
    }
  };
  uint4 x_next[kGroupsPerWarp];
  load_x(0, x_next);
  float c[4] = {0.0f, 0.0f, 0.0f, 0.0f};
  for (int64_t chunk = 0; chunk < chunks; ++chunk) {
    uint4 xv[kGroupsPerWarp];
#pragma unroll
    for (int i = 0; i < kGroupsPerWarp; ++i) xv[i] = x_next[i];
    load_x(chunk + 1, x_next);
    cp_async_wait<kStagedStages - 2>();  // this chunk's copies (of this thread) have landed
    __syncthreads();                     // ... and everyone's; the stage refilled below is no longer read
    if (chunk + kStagedStages - 1 < chunks) load_chunk(chunk + kStagedStages - 1);
    cp_async_commit();
    const char* s = stage[chunk % kStagedStages];
#pragma unroll
    for (int i = 0; i < kGroupsPerWarp; ++i) {
      const int offset = (warp * kGroupsPerWarp + i) * 64 + t * 16;
      const uint4 lo = *reinterpret_cast<const uint4*>(s + g * kStagedRowBytes + offset);
      const uint4 hi = *reinterpret_cast<const uint4*>(s + (g + 8) * kStagedRowBytes + offset);
      mma_bf16_16816(c, lo.x, hi.x, lo.y, hi.y, xv[i].x, xv[i].y);
      mma_bf16_16816(c, lo.z, hi.z, lo.w, hi.w, xv[i].z, xv[i].w);
    }
  }
  cp_async_wait<0>();
  pdl::allow_next_grid();  // weights all read: a PDL-launched GEMM after this one may start streaming its own
  __syncthreads();  // every warp is done with the stages: reuse stage 0 for the partial sums
  float* partial = reinterpret_cast<float*>(stage[0]);
#pragma unroll
  for (int i = 0; i < 4; ++i) partial[(warp * 32 + lane) * 4 + i] = c[i];
  __syncthreads();
  if (warp != 0) return;
#pragma unroll
  for (int i = 0; i < 4; ++i)
    for (int v = 1; v < kWarps; ++v) c[i] += partial[(v * 32 + lane) * 4 + i];
  // c0: (row g, batch 2t), c1: (row g, batch 2t + 1), c2: (row g + 8, batch 2t), c3: (row g + 8, batch 2t + 1).
#pragma unroll
  for (int i = 0; i < (Out::kPaired ? 2 : 4); ++i) {
    const int batch = 2 * t + (i & 1);
    const int64_t column = column_of(g + (i >= 2 ? 8 : 0));
    if (batch >= m || column >= n) continue;
    if constexpr (Out::kPaired)
      out.store(batch, column / 2, c[i], c[i + 2]);  // rows g and g + 8: the pair's two elements
    else
      out.store(batch, column, c[i]);
  }
}

template <int M, int kColumnsPerWarp, int kUnroll, class Out>
void launch_shape(const bf16_t* x, const bf16_t* w, const Out& out, int64_t n, int64_t k, cudaStream_t stream) {
  constexpr int64_t kColumnsPerBlock = kWarpsPerBlock * kColumnsPerWarp;
  const unsigned blocks = static_cast<unsigned>((n + kColumnsPerBlock - 1) / kColumnsPerBlock);
  pdl::launch_kernel(skinny_gemm_kernel<M, kColumnsPerWarp, kUnroll, Out>, blocks, kWarpsPerBlock * 32, stream,
                     pdl_enabled(), x, w, out, k);
}

template <int M, class Out>
void launch_m(const bf16_t* x, const bf16_t* w, const Out& out, int64_t n, int64_t k, int variant,
              cudaStream_t stream) {
  if (variant == 0)
    launch_shape<M, 2, 4>(x, w, out, n, k, stream);
  else
    launch_shape<M, 4, 2>(x, w, out, n, k, stream);
}

// One skinny GEMM with output `out` (n output columns).
template <class Out>
void launch(const bf16_t* x, const bf16_t* w, const Out& out, int64_t m, int64_t n, int64_t k, int variant,
            cudaStream_t stream) {
  const unsigned staged_blocks = static_cast<unsigned>((n + 15) / 16);
  if (variant == 2) {
    pdl::launch_kernel(skinny_gemm_staged_kernel<4, Out>, staged_blocks, 4 * 32, stream, pdl_enabled(), x, w, out,
                       m, k);
    return;
  }
  if (variant == 3) {
    pdl::launch_kernel(skinny_gemm_staged_kernel<8, Out>, staged_blocks, 8 * 32, stream, pdl_enabled(), x, w, out,
                       m, k);
    return;
  }
  switch (m) {
    case 1: return launch_m<1>(x, w, out, n, k, variant, stream);
    case 2: return launch_m<2>(x, w, out, n, k, variant, stream);
    case 3: return launch_m<3>(x, w, out, n, k, variant, stream);
    case 4: return launch_m<4>(x, w, out, n, k, variant, stream);
    case 5: return launch_m<5>(x, w, out, n, k, variant, stream);
    case 6: return launch_m<6>(x, w, out, n, k, variant, stream);
    case 7: return launch_m<7>(x, w, out, n, k, variant, stream);
    default: return launch_m<8>(x, w, out, n, k, variant, stream);
  }
}

}  // namespace

bool pdl_enabled() {
  static const bool enabled = config::settings().pdl != 0;
  return enabled;
}

bool skinny_gemm_supports(const void* x, const void* w, const void* y, int64_t m, int64_t n, int64_t k, int variant) {
  const auto aligned = [](const void* p) { return reinterpret_cast<std::uintptr_t>(p) % 16 == 0; };
  const int64_t k_multiple = variant >= 2 ? kStagedChunk : 8;
  return variant >= 0 && variant < kSkinnyGemmVariants && m >= 1 && m <= kSkinnyGemmMaxRows && n >= 1 && k >= 8 &&
         k % k_multiple == 0 && aligned(x) && aligned(w) && aligned(y);
}

void skinny_gemm(const void* x, const void* w, void* y, int64_t m, int64_t n, int64_t k, int variant,
                 cudaStream_t stream, const SkinnyEpilogue& e) {
  if (!skinny_gemm_supports(x, w, y, m, n, k, variant))
    throw Error("nvrar-llm: skinny_gemm: m " + std::to_string(m) + ", n " + std::to_string(n) + ", k " +
                std::to_string(k) + ", variant " + std::to_string(variant) + " (takes 1 <= m <= " +
                std::to_string(kSkinnyGemmMaxRows) + ", variant < " + std::to_string(kSkinnyGemmVariants) +
                ", k >= 8 a multiple of 8, of " + std::to_string(kStagedChunk) +
                " for variants 2 and 3, and 16-byte aligned x, w and y)");
  const auto* xb = static_cast<const bf16_t*>(x);
  const auto* wb = static_cast<const bf16_t*>(w);
  auto* yb = static_cast<bf16_t*>(y);
  switch (e.kind) {
    case SkinnyEpilogue::Kind::kStore:
    case SkinnyEpilogue::Kind::kStoreF32:
    case SkinnyEpilogue::Kind::kAddF32:
      if (e.fp32)  // the output type is the kind's: a caller setting fp32 on kStore would get bf16 in a float buffer
        throw Error("nvrar-llm: skinny_gemm: SkinnyEpilogue::fp32 is for the SwiGLU and RoPE epilogues; a plain "
                    "fp32 output is kStoreF32 or kAddF32");
      return launch(xb, wb, StoreColumns{y, n, e.kind}, m, n, k, variant, stream);
    case SkinnyEpilogue::Kind::kSwiGlu:
      if (n % 2 != 0)
        throw Error("nvrar-llm: skinny_gemm with SwiGLU: n " + std::to_string(n) +
                    " (takes gate and up columns, n even)");
      return launch(xb, wb, SwiGluPairs{yb, n / 2, e.fp32}, m, n, k, variant, stream);
    case SkinnyEpilogue::Kind::kRopeAppend:
      if (e.head_dim < 2 || e.head_dim % 2 != 0 || e.q_heads < 1 || e.kv_heads < 1 ||
          n != static_cast<int64_t>(e.q_heads + 2 * e.kv_heads) * e.head_dim || e.positions == nullptr ||
          e.inv_freq == nullptr || e.seq == nullptr || e.cache_k == nullptr || e.cache_v == nullptr || e.max_seq < 1)
        throw Error("nvrar-llm: skinny_gemm with RoPE + KV append: n " + std::to_string(n) + ", " +
                    std::to_string(e.q_heads) + " q heads, " + std::to_string(e.kv_heads) + " kv heads, head_dim " +
                    std::to_string(e.head_dim) +
                    " (takes n = (q_heads + 2 kv_heads) head_dim, head_dim even, positions, inv_freq, seq and both "
                    "caches set)");
      return launch(xb, wb,
                    RopeAppendPairs{yb, n, e.q_heads, e.kv_heads, e.head_dim / 2, e.positions, e.inv_freq, e.seq,
                                    e.cache_k, e.cache_v, e.max_seq, e.fp32},
                    m, n, k, variant, stream);
  }
  throw Error("nvrar-llm: skinny_gemm: unknown epilogue kind " + std::to_string(static_cast<int>(e.kind)));
}

}  // namespace nvrar::engine::gpu
