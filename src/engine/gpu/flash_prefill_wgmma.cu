// Causal prefill attention on Hopper's warpgroup MMA (flash_prefill_wgmma.h; FlashKernel::kWgmma).
//
// Purpose: the prefill attention of flash_prefill.cu at the rate of Hopper's tensor cores: mma.sync, which the other
//   kernels use, reaches about a third of an H100 / H200's bf16 peak; wgmma (64 x N x 16 per warpgroup, operands
//   read from shared memory by the tensor cores) is what FlashAttention-3 and cuDNN build on.
// Algorithm (FlashAttention-2 forward, causal; the same plan tiles, masking, online softmax in log2 units and
//   rounding of P to bf16 as flash_prefill.cu): one block = one 128-row query tile x one query head; warpgroup g
//   (threads 128 g .. 128 g + 127) owns rows 64 g .. 64 g + 63, its warp w rows 64 g + 16 w .. + 15. Q (once) and
//   two stages of 64-key K and V tiles are brought to shared memory by cp.async, in 128-byte swizzled panels of 64
//   columns (row r's 16-byte chunk c at chunk c ^ (r % 8); panels of one tile back to back), the canonical layout of
//   wgmma's 128-byte swizzle mode. Per key tile: S = Q K^T by D / 16 wgmma m64n64k16 with both operands from shared
//   memory (K-major descriptors: 8-row groups 1024 bytes apart, k steps of 32 bytes inside a panel); the
//   accumulator layout per warp equals mma.sync's, so masking and softmax are flash_prefill.cu's; P rounded to bf16
//   becomes the register A operand of 4 wgmma m64nDk16 against V (V is N-major: transposed B, 8-key groups 1024
//   bytes apart, 64-column panels kKeys x 128 bytes apart). A warpgroup whose rows all precede the key tile, or lie
//   past the tile's count, skips it (wgmma is warpgroup-collective, so the test is per warpgroup).
// Launch: grid (tiles, q_heads), 256 threads, dynamic shared memory (128 + 4 x 64) x head_dim x 2 bytes + 1 KB for
//   1024-byte alignment (97 KB at head_dim 128: two blocks per SM). Compiled for sm_90a only.
// Sync: cp.async groups; each thread's fence.proxy.async after its copies land, then __syncthreads, before wgmma
//   (the async proxy) reads them; wgmma.fence before each batch of wgmma (registers written by other instructions),
//   commit + wait_group 0 after it; __syncthreads after a stage was used, before its refill. No inter-block sync.
#include "engine/gpu/flash_prefill_wgmma.h"

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cmath>
#include <string>

#include "engine/gpu/tensor_core.cuh"
#include "nvrar/types.h"

namespace nvrar::engine::gpu {

namespace {

using namespace tc;

constexpr int kThreads = 256;  // two warpgroups
constexpr int kTileRows = 128;
constexpr int kKeys = 64;
constexpr int kPanel = 64;  // elements per 128-byte row of a swizzled panel

template <int D>
constexpr int shared_bytes() {
  return (kTileRows + 4 * kKeys) * D * 2 + 1024;  // Q + two stages of K and V + alignment slack
}

#if defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define NVRAR_HAVE_WGMMA 1
#elif defined(__CUDA_ARCH__)
#error "flash_prefill_wgmma.cu is built for sm_90a only (cmake/NvrarEngineGpu.cmake): wgmma has no other form"
#endif

// Element offset of 16-byte chunk c (of D / 8) of row r in a tile of kRowsInTile rows stored as 64-column panels.
template <int kRowsInTile>
__device__ __forceinline__ int panel_offset(int r, int c) {
  return (c >> 3) * kRowsInTile * kPanel + r * kPanel + (((c & 7) ^ (r & 7)) << 3);
}

// Starts the copy of rows [0, kRowsInTile) (row r at src + r * stride elements) into a panelled swizzled tile; rows
// >= valid are zero-filled.
template <int D, int kRowsInTile>
__device__ __forceinline__ void load_panels(bf16_t* tile, const bf16_t* src, int64_t stride, int64_t valid) {
  constexpr int kChunks = D / 8;
  for (int i = threadIdx.x; i < kRowsInTile * kChunks; i += kThreads) {
    const int r = i / kChunks, c = i % kChunks;
    const bool ok = r < valid;
    cp_async_16(shared_address(tile + panel_offset<kRowsInTile>(r, c)), ok ? src + r * stride + c * 8 : src, ok);
  }
}

// A wgmma shared-memory descriptor: start address, leading and stride byte offsets (16-byte units), 128-byte swizzle.
__device__ __forceinline__ uint64_t descriptor(uint32_t address, uint32_t leading_bytes, uint32_t stride_bytes) {
  return static_cast<uint64_t>((address & 0x3FFFF) >> 4) | (static_cast<uint64_t>(leading_bytes >> 4) << 16) |
         (static_cast<uint64_t>(stride_bytes >> 4) << 32) | (1ull << 62);
}

#ifdef NVRAR_HAVE_WGMMA

__device__ __forceinline__ void wgmma_fence() { asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void wgmma_commit() { asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void wgmma_wait_all() { asm volatile("wgmma.wait_group.sync.aligned 0;\n" ::: "memory"); }
// Makes this thread's generic-proxy writes to shared memory (cp.async) visible to the async proxy (wgmma).
__device__ __forceinline__ void fence_proxy_async() { asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory"); }
// Keeps the compiler from moving reads or writes of accumulator registers across a wgmma wait or fence.
template <int N>
__device__ __forceinline__ void pin(float (&r)[N]) {
#pragma unroll
  for (int i = 0; i < N; ++i) asm volatile("" : "+f"(r[i])::"memory");
}

template <int N>
__device__ __forceinline__ void pin_a(uint32_t (&a)[N][4]) {
#pragma unroll
  for (int i = 0; i < N; ++i)
#pragma unroll
    for (int j = 0; j < 4; ++j) asm volatile("" : "+r"(a[i][j])::"memory");
}

// d = A . B (scale_d 0) or d += A . B (scale_d 1) for a 64x64x16 product, A and B from shared memory
// (K-major, 128-byte swizzle).
__device__ __forceinline__ void wgmma_ss_m64n64k16(float (&d)[32], uint64_t desc_a, uint64_t desc_b, int scale_d) {
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %34, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 {"
      "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, "
      "%21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31"
      "}, %32, %33, p, 1, 1, 0, 0;\n}\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
        "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),
        "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),
        "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31])
      : "l"(desc_a), "l"(desc_b), "r"(scale_d));
}

// d += A . B for a 64x64x16 product, A from registers (per warp the m16n8k16 A layout of its 16 rows), B from
// shared memory stored N-major (imm-trans-b 1; 128-byte swizzle).
__device__ __forceinline__ void wgmma_rs_m64n64k16_trans_b(float (&d)[32], const uint32_t (&a)[4], uint64_t desc_b) {
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %37, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 {"
      "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, "
      "%21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31"
      "}, {%32, %33, %34, %35}, %36, p, 1, 1, 1;\n}\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
        "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),
        "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),
        "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc_b), "r"(1));
}

// d += A . B for a 64x128x16 product, A from registers (per warp the m16n8k16 A layout of its 16 rows), B from
// shared memory stored N-major (imm-trans-b 1; 128-byte swizzle).
__device__ __forceinline__ void wgmma_rs_m64n128k16_trans_b(float (&d)[64], const uint32_t (&a)[4], uint64_t desc_b) {
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %69, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 {"
      "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, "
      "%21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, "
      "%40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, "
      "%59, %60, %61, %62, %63"
      "}, {%64, %65, %66, %67}, %68, p, 1, 1, 1;\n}\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
        "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),
        "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),
        "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]),
        "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]),
        "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]),
        "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]),
        "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc_b), "r"(1));
}

template <int D>
__device__ __forceinline__ void wgmma_pv(float (&o)[D / 2], const uint32_t (&a)[4], uint64_t desc_v) {
  if constexpr (D == 64)
    wgmma_rs_m64n64k16_trans_b(o, a, desc_v);
  else
    wgmma_rs_m64n128k16_trans_b(o, a, desc_v);
}

#endif  // NVRAR_HAVE_WGMMA

template <int D>
__global__ void __launch_bounds__(kThreads, 2)
    flash_prefill_wgmma_kernel(const bf16_t* qkv, const PrefillTile* tiles, int num_tiles, const bf16_t* cache_k,
                               const bf16_t* cache_v, AttentionShape s, bf16_t* out) {
#ifdef NVRAR_HAVE_WGMMA
  constexpr int kKeyBlocks = kKeys / 8;  // n8 blocks of S
  constexpr int kDimBlocks = D / 8;      // n8 blocks of O
  extern __shared__ unsigned char shared_raw[];
  // 1024-byte alignment of the shared-window address: the swizzle is a function of its bits 4-9.
  const uint32_t raw_address = shared_address(shared_raw);
  bf16_t* sq = reinterpret_cast<bf16_t*>(shared_raw + (((raw_address + 1023) & ~1023u) - raw_address));
  bf16_t* sk = sq + kTileRows * D;  // [2][kKeys * D]
  bf16_t* sv = sk + 2 * kKeys * D;  // [2][kKeys * D]

  const PrefillTile tile = tiles[num_tiles - 1 - static_cast<int>(blockIdx.x)];
  const int head = blockIdx.y;
  const int kv_head = head / (s.q_heads / s.kv_heads);
  const int group = threadIdx.x / 128, warp = (threadIdx.x / 32) % 4, lane = threadIdx.x % 32;
  const int quad_row = lane / 4, quad_col = lane % 4;
  const int group_row0 = group * 64, warp_row0 = group_row0 + warp * 16;
  const int group_last_pos = tile.pos0 + group_row0 + 63, warp_first = tile.pos0 + warp_row0;
  const bool group_has_rows = group_row0 < tile.count;
  const int64_t key_end = static_cast<int64_t>(tile.pos0) + tile.count;
  const int key_tiles = static_cast<int>((key_end + kKeys - 1) / kKeys);
  const int64_t head_base = (static_cast<int64_t>(tile.seq) * s.kv_heads + kv_head) * s.max_seq * D;
  const bf16_t* kbase = cache_k + head_base;
  const bf16_t* vbase = cache_v + head_base;

  load_panels<D, kTileRows>(sq, qkv + static_cast<int64_t>(tile.row0) * s.qkv_cols + static_cast<int64_t>(head) * D,
                            s.qkv_cols, tile.count);
  load_panels<D, kKeys>(sk, kbase, D, key_end);
  load_panels<D, kKeys>(sv, vbase, D, key_end);
  cp_async_commit();

  float o[D / 2];
#pragma unroll
  for (int i = 0; i < D / 2; ++i) o[i] = 0.0f;
  float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.0f, 0.0f};
  const float scale_log2 = rsqrtf(static_cast<float>(D)) * 1.4426950408889634f;
  const int qpos = warp_first + quad_row;  // this lane's rows: qpos and qpos + 8
  const uint32_t q_address = shared_address(sq) + group_row0 * 128;

  for (int j = 0; j < key_tiles; ++j) {
    const int stage = j & 1;
    if (j + 1 < key_tiles) {
      const int64_t k0 = static_cast<int64_t>(j + 1) * kKeys;
      load_panels<D, kKeys>(sk + (stage ^ 1) * kKeys * D, kbase + k0 * D, D, key_end - k0);
      load_panels<D, kKeys>(sv + (stage ^ 1) * kKeys * D, vbase + k0 * D, D, key_end - k0);
      cp_async_commit();
      cp_async_wait<1>();
    } else {
      cp_async_wait<0>();
    }
    fence_proxy_async();
    __syncthreads();
    const int key0 = j * kKeys;
    if (group_has_rows && key0 <= group_last_pos) {  // warpgroup-uniform
      const uint32_t k_address = shared_address(sk + stage * kKeys * D);
      const uint32_t v_address = shared_address(sv + stage * kKeys * D);
      float sc[kKeyBlocks * 4];
#pragma unroll
      for (int i = 0; i < kKeyBlocks * 4; ++i) sc[i] = 0.0f;
      pin(sc);  // the zeros are written before the fence, not between it and the first wgmma
      wgmma_fence();
#pragma unroll
      for (int kk = 0; kk < D / 16; ++kk) {
        const uint32_t panel = kk / 4, within = (kk % 4) * 32;  // 16 columns = 32 bytes
        wgmma_ss_m64n64k16(sc, descriptor(q_address + panel * kTileRows * 128 + within, 16, 1024),
                           descriptor(k_address + panel * kKeys * 128 + within, 16, 1024), kk > 0 ? 1 : 0);
      }
      wgmma_commit();
      wgmma_wait_all();
      pin(sc);
      float corr[2];
      online_softmax<kKeyBlocks>([&](int b, int e) -> float& { return sc[4 * b + e]; }, scale_log2,
                                 key0 + kKeys - 1 > warp_first, key0, qpos, quad_col, m, l, corr);
#pragma unroll
      for (int b = 0; b < kDimBlocks; ++b) {
        o[4 * b + 0] *= corr[0];
        o[4 * b + 1] *= corr[0];
        o[4 * b + 2] *= corr[1];
        o[4 * b + 3] *= corr[1];
      }
      uint32_t a[kKeys / 16][4];
#pragma unroll
      for (int kk = 0; kk < kKeys / 16; ++kk) {
        a[kk][0] = pack_bf16(sc[8 * kk + 0], sc[8 * kk + 1]);
        a[kk][1] = pack_bf16(sc[8 * kk + 2], sc[8 * kk + 3]);
        a[kk][2] = pack_bf16(sc[8 * kk + 4], sc[8 * kk + 5]);
        a[kk][3] = pack_bf16(sc[8 * kk + 6], sc[8 * kk + 7]);
      }
      pin(o);
      pin_a(a);  // the P fragments (A operand) are written before the fence too
      wgmma_fence();
#pragma unroll
      for (int kk = 0; kk < kKeys / 16; ++kk)  // 16 keys = 2048 bytes of V
        wgmma_pv<D>(o, a[kk], descriptor(v_address + kk * 16 * 128, kKeys * 128, 1024));
      wgmma_commit();
      wgmma_wait_all();
      pin(o);
    }
    __syncthreads();  // both warpgroups are done with this stage before the next iteration refills it
  }

  if (!group_has_rows) return;
#pragma unroll
  for (int i = 0; i < 2; ++i) {
    l[i] += __shfl_xor_sync(0xffffffffu, l[i], 1);
    l[i] += __shfl_xor_sync(0xffffffffu, l[i], 2);
    l[i] = 1.0f / l[i];
  }
  const int64_t out_cols = static_cast<int64_t>(s.q_heads) * D;
  bf16_t* out_tile = out + static_cast<int64_t>(tile.row0) * out_cols + static_cast<int64_t>(head) * D;
  const int row = warp_row0 + quad_row;
#pragma unroll
  for (int b = 0; b < kDimBlocks; ++b) {
    const int col = b * 8 + 2 * quad_col;
    if (row < tile.count)
      *reinterpret_cast<uint32_t*>(out_tile + row * out_cols + col) = pack_bf16(o[4 * b] * l[0], o[4 * b + 1] * l[0]);
    if (row + 8 < tile.count)
      *reinterpret_cast<uint32_t*>(out_tile + (row + 8) * out_cols + col) =
          pack_bf16(o[4 * b + 2] * l[1], o[4 * b + 3] * l[1]);
  }
#endif  // NVRAR_HAVE_WGMMA
}

template <int D>
void launch(const bf16_t* qkv, const PrefillTile* tiles, int64_t num_tiles, const bf16_t* cache_k,
            const bf16_t* cache_v, const AttentionShape& s, bf16_t* out, cudaStream_t stream) {
  constexpr int kShared = shared_bytes<D>();
  const cudaError_t configured =
      cudaFuncSetAttribute(flash_prefill_wgmma_kernel<D>, cudaFuncAttributeMaxDynamicSharedMemorySize, kShared);
  if (configured != cudaSuccess)
    throw Error("nvrar-llm: prefill attention wgmma (head_dim " + std::to_string(D) + "): " +
                std::to_string(kShared / 1024) + " KB of shared memory refused: " + cudaGetErrorString(configured));
  flash_prefill_wgmma_kernel<D><<<dim3(static_cast<unsigned>(num_tiles), static_cast<unsigned>(s.q_heads)), kThreads,
                                  kShared, stream>>>(qkv, tiles, static_cast<int>(num_tiles), cache_k, cache_v, s,
                                                     out);
  const cudaError_t launched = cudaGetLastError();
  if (launched != cudaSuccess)
    throw Error("nvrar-llm: prefill attention wgmma (head_dim " + std::to_string(D) + ", " +
                std::to_string(num_tiles) + " tiles x " + std::to_string(s.q_heads) +
                " heads): launch failed: " + cudaGetErrorString(launched));
}

}  // namespace

bool wgmma_prefill_runs_here() {
  int device = 0, major = 0, minor = 0;
  return cudaGetDevice(&device) == cudaSuccess &&
         cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device) == cudaSuccess &&
         cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, device) == cudaSuccess && major == 9 &&
         minor == 0;
}

void flash_prefill_attention_wgmma(const bf16_t* qkv, const PrefillTile* tiles, int64_t num_tiles,
                                   const bf16_t* cache_k, const bf16_t* cache_v, const AttentionShape& s, bf16_t* out,
                                   cudaStream_t stream) {
  int device = 0, major = 0, minor = 0;
  if (cudaGetDevice(&device) != cudaSuccess ||
      cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device) != cudaSuccess ||
      cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, device) != cudaSuccess)
    throw Error("nvrar-llm: prefill attention wgmma: cannot read the current GPU's compute capability");
  if (major != 9 || minor != 0)
    throw Error("nvrar-llm: prefill attention wgmma (NVRAR_LLM_PREFILL_ATTENTION=wgmma) needs a GPU of compute "
                "capability 9.0 (H100, H200); GPU " + std::to_string(device) + " is " + std::to_string(major) + "." +
                std::to_string(minor) + " (use flash or flash128)");
  if (num_tiles < 1) return;
  if (s.head_dim == 64)
    launch<64>(qkv, tiles, num_tiles, cache_k, cache_v, s, out, stream);
  else if (s.head_dim == 128)
    launch<128>(qkv, tiles, num_tiles, cache_k, cache_v, s, out, stream);
  else
    throw Error("nvrar-llm: prefill attention wgmma: head_dim " + std::to_string(s.head_dim) + " (takes 64 or 128)");
}

}  // namespace nvrar::engine::gpu
