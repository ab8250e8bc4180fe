// Causal prefill attention on tensor cores (flash_prefill.h).
//
// Purpose: the attention of a prefill chunk, which at long prompts is most of a prefill's work, at tensor-core speed
//   (the split-K kernel of attention.cu runs it on CUDA cores, one query per row).
// Algorithm (FlashAttention-2 forward, causal): one block = one query tile (up to 64 consecutive rows of one
//   sequence) x one query head; each of its 4 warps owns 16 query rows. The Q tile and two stages of K and V tiles
//   (kKeys = 64 keys at head_dim <= 128, 32 at 256) sit in shared memory, each row's 16-byte chunk c stored at chunk
//   c ^ (row % 8) so ldmatrix's eight row reads hit distinct banks. For key tile j of [0, pos0 + count): cp.async
//   brings tile j + 1 (keys past the end zero-filled) while tile j is used; S = Q K^T by mma.m16n8k16 (bf16 in,
//   fp32 out; Q and K fragments by ldmatrix); scores in log2 units, masked causally only on tiles that reach past the
//   warp's first position; online softmax per row (row max over the quad of lanes that share the row, exp2; the
//   running sum per lane, summed over the quad at the end); O += P V with P rounded to bf16 from the score registers
//   and V fragments by ldmatrix.trans. A warp whose 16 rows all precede the tile skips its math. Key tiles past the
//   causal limit of the query tile are never loaded. Blocks take the plan's tiles last-first: the longest rows start
//   first, which shortens the tail.
// Launch: grid (tiles, q_heads), 128 threads, dynamic shared memory (64 + 4 kKeys) x head_dim x 2 bytes (80 KB at
//   head_dim 128).
// Sync: cp.async groups plus __syncthreads before a stage is read and after it was used (before its refill); no
//   inter-block synchronisation.
#include "engine/gpu/flash_prefill.h"

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cmath>
#include <string>

#include "engine/gpu/cp_async.cuh"
#include "nvrar/types.h"

namespace nvrar::engine::gpu {

namespace {

constexpr int kWarps = 4;
constexpr int kRows = 16 * kWarps;
static_assert(kRows == kFlashTileRows, "a warp owns 16 query rows of the tile");

template <int D>
__host__ __device__ constexpr int keys_per_tile() {
  return D <= 128 ? 64 : 32;
}

template <int D>
__host__ __device__ constexpr int shared_bytes() {
  return (kRows + 4 * keys_per_tile<D>()) * D * 2;  // Q + two stages of K and V
}

// Element offset of 16-byte chunk c of row r in a swizzled [rows][D] tile.
template <int D>
__device__ __forceinline__ int swizzled(int r, int c) {
  return r * D + ((c ^ (r & 7)) << 3);
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

// Starts the copy of rows [0, kTileRows) of a tile (row r at src + r * stride elements) into a swizzled shared tile;
// rows >= valid are zero-filled.
template <int D, int kTileRows>
__device__ __forceinline__ void load_tile(bf16_t* tile, const bf16_t* src, int64_t stride, int64_t valid) {
  constexpr int kChunks = D / 8;
  for (int i = threadIdx.x; i < kTileRows * kChunks; i += kWarps * 32) {
    const int r = i / kChunks, c = i % kChunks;
    const bool ok = r < valid;
    cp_async_16(shared_address(tile + swizzled<D>(r, c)), ok ? src + r * stride + c * 8 : src, ok);
  }
}

template <int D>
__global__ void __launch_bounds__(kWarps * 32)
    flash_prefill_kernel(const bf16_t* qkv, const PrefillTile* tiles, int num_tiles, const bf16_t* cache_k,
                         const bf16_t* cache_v, AttentionShape s, bf16_t* out) {
  constexpr int kKeys = keys_per_tile<D>();
  constexpr int kKeyBlocks = kKeys / 8;  // n8 blocks of S
  constexpr int kDimBlocks = D / 8;      // n8 blocks of O
  extern __shared__ __align__(128) unsigned char shared_raw[];
  bf16_t* sq = reinterpret_cast<bf16_t*>(shared_raw);
  bf16_t* sk = sq + kRows * D;     // [2][kKeys][D]
  bf16_t* sv = sk + 2 * kKeys * D;  // [2][kKeys][D]

  const PrefillTile tile = tiles[num_tiles - 1 - static_cast<int>(blockIdx.x)];
  const int head = blockIdx.y;
  const int kv_head = head / (s.q_heads / s.kv_heads);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int quad_row = lane / 4, quad_col = lane % 4;
  const int mi = lane / 8, mr = lane % 8;  // ldmatrix: the matrix and row this lane addresses
  const int64_t key_end = static_cast<int64_t>(tile.pos0) + tile.count;
  const int key_tiles = static_cast<int>((key_end + kKeys - 1) / kKeys);
  const int64_t head_base = (static_cast<int64_t>(tile.seq) * s.kv_heads + kv_head) * s.max_seq * D;
  const bf16_t* kbase = cache_k + head_base;
  const bf16_t* vbase = cache_v + head_base;

  load_tile<D, kRows>(sq, qkv + static_cast<int64_t>(tile.row0) * s.qkv_cols + static_cast<int64_t>(head) * D,
                      s.qkv_cols, tile.count);
  load_tile<D, kKeys>(sk, kbase, D, key_end);
  load_tile<D, kKeys>(sv, vbase, D, key_end);
  cp_async_commit();

  float o[kDimBlocks][4];
#pragma unroll
  for (int b = 0; b < kDimBlocks; ++b) o[b][0] = o[b][1] = o[b][2] = o[b][3] = 0.0f;
  float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.0f, 0.0f};
  const float scale_log2 = rsqrtf(static_cast<float>(D)) * 1.4426950408889634f;
  const int warp_first = tile.pos0 + warp * 16;  // position of the warp's first row
  const int qpos = warp_first + quad_row;         // this lane's rows: qpos and qpos + 8

  for (int j = 0; j < key_tiles; ++j) {
    const int stage = j & 1;
    if (j + 1 < key_tiles) {
      const int64_t k0 = static_cast<int64_t>(j + 1) * kKeys;
      load_tile<D, kKeys>(sk + (stage ^ 1) * kKeys * D, kbase + k0 * D, D, key_end - k0);
      load_tile<D, kKeys>(sv + (stage ^ 1) * kKeys * D, vbase + k0 * D, D, key_end - k0);
      cp_async_commit();
      cp_async_wait<1>();
    } else {
      cp_async_wait<0>();
    }
    __syncthreads();
    const bf16_t* tk = sk + stage * kKeys * D;
    const bf16_t* tv = sv + stage * kKeys * D;
    const int key0 = j * kKeys;
    if (key0 <= warp_first + 15) {  // warp-uniform: some row of the warp sees a key of this tile
      float sc[kKeyBlocks][4];
#pragma unroll
      for (int b = 0; b < kKeyBlocks; ++b) sc[b][0] = sc[b][1] = sc[b][2] = sc[b][3] = 0.0f;
#pragma unroll
      for (int kk = 0; kk < D / 16; ++kk) {
        uint32_t a[4];
        ldmatrix_x4(shared_address(sq + swizzled<D>(warp * 16 + mr + (mi & 1) * 8, kk * 2 + (mi >> 1))), a);
#pragma unroll
        for (int nb = 0; nb < kKeyBlocks / 2; ++nb) {
          uint32_t b[4];
          ldmatrix_x4(shared_address(tk + swizzled<D>(nb * 16 + mr + (mi >> 1) * 8, kk * 2 + (mi & 1))), b);
          mma_bf16(sc[2 * nb], a, b[0], b[1]);
          mma_bf16(sc[2 * nb + 1], a, b[2], b[3]);
        }
      }
      const bool mask = key0 + kKeys - 1 > warp_first;
      float mx[2] = {m[0], m[1]};
#pragma unroll
      for (int b = 0; b < kKeyBlocks; ++b)
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          float x = sc[b][e] * scale_log2;
          if (mask && key0 + b * 8 + 2 * quad_col + (e & 1) > qpos + (e >> 1) * 8) x = -INFINITY;
          sc[b][e] = x;
          mx[e >> 1] = fmaxf(mx[e >> 1], x);
        }
      float corr[2], sum[2] = {0.0f, 0.0f};
#pragma unroll
      for (int i = 0; i < 2; ++i) {
        mx[i] = fmaxf(mx[i], __shfl_xor_sync(0xffffffffu, mx[i], 1));
        mx[i] = fmaxf(mx[i], __shfl_xor_sync(0xffffffffu, mx[i], 2));
        corr[i] = exp2f(m[i] - mx[i]);  // 0 on the first tile (m = -inf); mx is finite: key 0 is in every row
        m[i] = mx[i];
      }
#pragma unroll
      for (int b = 0; b < kKeyBlocks; ++b)
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const float p = exp2f(sc[b][e] - m[e >> 1]);
          sc[b][e] = p;
          sum[e >> 1] += p;
        }
#pragma unroll
      for (int i = 0; i < 2; ++i) l[i] = l[i] * corr[i] + sum[i];
#pragma unroll
      for (int b = 0; b < kDimBlocks; ++b) {
        o[b][0] *= corr[0];
        o[b][1] *= corr[0];
        o[b][2] *= corr[1];
        o[b][3] *= corr[1];
      }
#pragma unroll
      for (int kk = 0; kk < kKeys / 16; ++kk) {
        const uint32_t a[4] = {pack_bf16(sc[2 * kk][0], sc[2 * kk][1]), pack_bf16(sc[2 * kk][2], sc[2 * kk][3]),
                               pack_bf16(sc[2 * kk + 1][0], sc[2 * kk + 1][1]),
                               pack_bf16(sc[2 * kk + 1][2], sc[2 * kk + 1][3])};
#pragma unroll
        for (int db = 0; db < D / 16; ++db) {
          uint32_t b[4];
          ldmatrix_x4_trans(shared_address(tv + swizzled<D>(kk * 16 + mr + (mi & 1) * 8, db * 2 + (mi >> 1))), b);
          mma_bf16(o[2 * db], a, b[0], b[1]);
          mma_bf16(o[2 * db + 1], a, b[2], b[3]);
        }
      }
    }
    __syncthreads();  // every warp is done with this stage before the next iteration refills it
  }

#pragma unroll
  for (int i = 0; i < 2; ++i) {
    l[i] += __shfl_xor_sync(0xffffffffu, l[i], 1);
    l[i] += __shfl_xor_sync(0xffffffffu, l[i], 2);
    l[i] = 1.0f / l[i];
  }
  const int64_t out_cols = static_cast<int64_t>(s.q_heads) * D;
  bf16_t* out_tile = out + static_cast<int64_t>(tile.row0) * out_cols + static_cast<int64_t>(head) * D;
  const int row = warp * 16 + quad_row;
#pragma unroll
  for (int b = 0; b < kDimBlocks; ++b) {
    const int col = b * 8 + 2 * quad_col;
    if (row < tile.count)
      *reinterpret_cast<uint32_t*>(out_tile + row * out_cols + col) = pack_bf16(o[b][0] * l[0], o[b][1] * l[0]);
    if (row + 8 < tile.count)
      *reinterpret_cast<uint32_t*>(out_tile + (row + 8) * out_cols + col) = pack_bf16(o[b][2] * l[1], o[b][3] * l[1]);
  }
}

template <int D>
void launch(const bf16_t* qkv, const PrefillTile* tiles, int64_t num_tiles, const bf16_t* cache_k,
            const bf16_t* cache_v, const AttentionShape& s, bf16_t* out, cudaStream_t stream) {
  // Per call, not once per process: the attribute belongs to the current device (cheap to set again).
  const cudaError_t configured = cudaFuncSetAttribute(flash_prefill_kernel<D>,
                                                      cudaFuncAttributeMaxDynamicSharedMemorySize, shared_bytes<D>());
  if (configured != cudaSuccess)
    throw Error("nvrar-llm: prefill attention (head_dim " + std::to_string(D) + "): " +
                std::to_string(shared_bytes<D>() / 1024) + " KB of shared memory refused: " +
                cudaGetErrorString(configured));
  flash_prefill_kernel<D><<<dim3(static_cast<unsigned>(num_tiles), static_cast<unsigned>(s.q_heads)), kWarps * 32,
                            shared_bytes<D>(), stream>>>(qkv, tiles, static_cast<int>(num_tiles), cache_k, cache_v, s,
                                                         out);
  const cudaError_t launched = cudaGetLastError();
  if (launched != cudaSuccess)
    throw Error("nvrar-llm: prefill attention (head_dim " + std::to_string(D) + ", " + std::to_string(num_tiles) +
                " tiles x " + std::to_string(s.q_heads) + " heads): launch failed: " + cudaGetErrorString(launched));
}

}  // namespace

bool flash_prefill_supports_head_dim(int head_dim) { return head_dim == 64 || head_dim == 128 || head_dim == 256; }

void flash_prefill_attention(const bf16_t* qkv, const PrefillTile* tiles, int64_t num_tiles, const bf16_t* cache_k,
                             const bf16_t* cache_v, const AttentionShape& s, bf16_t* out, cudaStream_t stream) {
  if (num_tiles < 1) return;
  switch (s.head_dim) {
    case 64:
      launch<64>(qkv, tiles, num_tiles, cache_k, cache_v, s, out, stream);
      break;
    case 128:
      launch<128>(qkv, tiles, num_tiles, cache_k, cache_v, s, out, stream);
      break;
    case 256:
      launch<256>(qkv, tiles, num_tiles, cache_k, cache_v, s, out, stream);
      break;
    default:
      throw Error("nvrar-llm: prefill attention: head_dim " + std::to_string(s.head_dim) +
                  " (the tensor-core kernel takes 64, 128 or 256)");
  }
}

}  // namespace nvrar::engine::gpu
