// Causal prefill attention on tensor cores (flash_prefill.h).
//
// Purpose: the attention of a prefill chunk, which at long prompts is most of a prefill's work, at tensor-core speed
//   (the split-K kernel of attention.cu runs it on CUDA cores, one query per row).
// Algorithm (FlashAttention-2 forward, causal): one block = one query tile (up to 64 x R consecutive rows of one
//   sequence; R = 1 or 2, the plan's tile rows / 64) x one query head; warp w owns the R groups of 16 query rows
//   w * 16 + 64 r (interleaved, so the diagonal tile's work is spread over the warps). At R = 2 each K and V
//   fragment read from shared memory feeds two MMAs (one per row group), halving shared-memory traffic per FLOP
//   and K/V loads per query row; it holds twice the accumulators, so R = 2 is built for head_dim 64 and 128 only.
//   The Q tile and two stages of K and V tiles
//   (kKeys = 64 keys at head_dim <= 128, 32 at 256) sit in shared memory, each row's 16-byte chunk c stored at chunk
//   c ^ (row % 8) so ldmatrix's eight row reads hit distinct banks. For key tile j of [0, pos0 + count): cp.async
//   brings tile j + 1 (keys past the end zero-filled) while tile j is used; S = Q K^T by mma.m16n8k16 (bf16 in,
//   fp32 out; Q and K fragments by ldmatrix); scores in log2 units, masked causally only on tiles that reach past the
//   warp's first position; online softmax per row (row max over the quad of lanes that share the row, exp2; the
//   running sum per lane, summed over the quad at the end); O += P V with P rounded to bf16 from the score registers
//   and V fragments by ldmatrix.trans. A row group whose 16 rows all precede the key tile, or lie past the tile's
//   count, skips its math (warp-uniform). Key tiles past the
//   causal limit of the query tile are never loaded.
// Launch: tiles x q_heads blocks in prefill_grid.cuh's order (longest tiles first within groups of sequences,
//   sections of KV groups);
//   128 threads, dynamic shared memory (64 R + 4 kKeys) x head_dim x 2 bytes (80 KB at head_dim 128 and R = 1, 96 KB
//   at R = 2).
// Sync: cp.async groups plus __syncthreads before a stage is read and after it was used (before its refill); no
//   inter-block synchronisation.
#include "engine/gpu/flash_prefill.h"

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cmath>
#include <string>

#include "engine/gpu/flash_prefill_wgmma.h"
#include "engine/gpu/prefill_grid.cuh"
#include "engine/gpu/tensor_core.cuh"
#include "nvrar/types.h"

namespace nvrar::engine::gpu {

namespace {

using namespace tc;

constexpr int kWarps = 4;
constexpr int kBlockThreads = kWarps * 32;
constexpr int kGroupRows = 16 * kWarps;  // rows per row group: warp w owns rows w * 16 .. w * 16 + 15 of each group
static_assert(kGroupRows == kFlashTileRows && 2 * kGroupRows == kFlashWideTileRows,
              "a tile is R groups of 64 rows, a warp owns 16 rows of each");

template <int D>
__host__ __device__ constexpr int keys_per_tile() {
  return D <= 128 ? 64 : 32;
}

template <int D, int R>
__host__ __device__ constexpr int shared_bytes() {
  return (R * kGroupRows + 4 * keys_per_tile<D>()) * D * 2;  // Q + two stages of K and V
}

template <int D, int R>
__global__ void __launch_bounds__(kWarps * 32)
    flash_prefill_kernel(const bf16_t* qkv, const PrefillTile* tiles, const PrefillGrid grid, const bf16_t* cache_k,
                         const bf16_t* cache_v, AttentionShape s, bf16_t* out) {
  constexpr int kRows = R * kGroupRows;
  constexpr int kKeys = keys_per_tile<D>();
  constexpr int kKeyBlocks = kKeys / 8;  // n8 blocks of S
  constexpr int kDimBlocks = D / 8;      // n8 blocks of O
  extern __shared__ __align__(128) unsigned char shared_raw[];
  bf16_t* sq = reinterpret_cast<bf16_t*>(shared_raw);
  bf16_t* sk = sq + kRows * D;     // [2][kKeys][D]
  bf16_t* sv = sk + 2 * kKeys * D;  // [2][kKeys][D]

  const PrefillBlock block = prefill_block(tiles, grid, blockIdx.x);
  const PrefillTile tile = block.tile;
  const int head = block.head;
  const int kv_head = head / (s.q_heads / s.kv_heads);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int quad_row = lane / 4, quad_col = lane % 4;
  const int mi = lane / 8, mr = lane % 8;  // ldmatrix: the matrix and row this lane addresses
  const int64_t key_end = static_cast<int64_t>(tile.pos0) + tile.count;
  const int key_tiles = static_cast<int>((key_end + kKeys - 1) / kKeys);
  const int64_t head_base = (static_cast<int64_t>(tile.seq) * s.kv_heads + kv_head) * s.max_seq * D;
  const bf16_t* kbase = cache_k + head_base;
  const bf16_t* vbase = cache_v + head_base;

  const bf16_t* q_tile = qkv + static_cast<int64_t>(tile.row0) * s.qkv_cols + static_cast<int64_t>(head) * D;
  load_tile<D, kRows, kBlockThreads>(sq, q_tile, s.qkv_cols, tile.count);
  load_tile<D, kKeys, kBlockThreads>(sk, kbase, D, key_end);
  load_tile<D, kKeys, kBlockThreads>(sv, vbase, D, key_end);
  cp_async_commit();

  float o[R][kDimBlocks][4];
  float m[R][2], l[R][2];
  int first_row[R], group_first[R];  // the group's first row in the tile and its position
#pragma unroll
  for (int r = 0; r < R; ++r) {
#pragma unroll
    for (int b = 0; b < kDimBlocks; ++b) o[r][b][0] = o[r][b][1] = o[r][b][2] = o[r][b][3] = 0.0f;
    m[r][0] = m[r][1] = -INFINITY;
    l[r][0] = l[r][1] = 0.0f;
    first_row[r] = r * kGroupRows + warp * 16;
    group_first[r] = tile.pos0 + first_row[r];
  }
  const float scale_log2 = softmax_scale_log2(D);

  for (int j = 0; j < key_tiles; ++j) {
    const int stage = j & 1;
    if (j + 1 < key_tiles) {
      const int64_t k0 = static_cast<int64_t>(j + 1) * kKeys;
      load_tile<D, kKeys, kBlockThreads>(sk + (stage ^ 1) * kKeys * D, kbase + k0 * D, D, key_end - k0);
      load_tile<D, kKeys, kBlockThreads>(sv + (stage ^ 1) * kKeys * D, vbase + k0 * D, D, key_end - k0);
      cp_async_commit();
      cp_async_wait<1>();
    } else {
      cp_async_wait<0>();
    }
    __syncthreads();
    const bf16_t* tk = sk + stage * kKeys * D;
    const bf16_t* tv = sv + stage * kKeys * D;
    const int key0 = j * kKeys;
    // Warp-uniform: a group works on this key tile if some of its rows exist and see a key of it. Monotone in j
    // (true from tile 0 up to the group's diagonal), so an active group was active on tile 0, where m became finite.
    bool active[R];
    bool any = false;
#pragma unroll
    for (int r = 0; r < R; ++r) {
      active[r] = first_row[r] < tile.count && key0 <= group_first[r] + 15;
      any = any || active[r];
    }
    if (any) {
      float sc[R][kKeyBlocks][4];
#pragma unroll
      for (int r = 0; r < R; ++r)
#pragma unroll
        for (int b = 0; b < kKeyBlocks; ++b) sc[r][b][0] = sc[r][b][1] = sc[r][b][2] = sc[r][b][3] = 0.0f;
#pragma unroll
      for (int kk = 0; kk < D / 16; ++kk) {
        uint32_t a[R][4];
#pragma unroll
        for (int r = 0; r < R; ++r)
          if (active[r])
            ldmatrix_x4(shared_address(sq + swizzled<D>(first_row[r] + mr + (mi & 1) * 8, kk * 2 + (mi >> 1))), a[r]);
#pragma unroll
        for (int nb = 0; nb < kKeyBlocks / 2; ++nb) {
          uint32_t b[4];
          ldmatrix_x4(shared_address(tk + swizzled<D>(nb * 16 + mr + (mi >> 1) * 8, kk * 2 + (mi & 1))), b);
#pragma unroll
          for (int r = 0; r < R; ++r)
            if (active[r]) {
              mma_bf16(sc[r][2 * nb], a[r], b[0], b[1]);
              mma_bf16(sc[r][2 * nb + 1], a[r], b[2], b[3]);
            }
        }
      }
#pragma unroll
      for (int r = 0; r < R; ++r) {
        if (!active[r]) continue;
        const int qpos = group_first[r] + quad_row;  // this lane's rows: qpos and qpos + 8
        float corr[2];
        online_softmax<kKeyBlocks>([&](int b, int e) -> float& { return sc[r][b][e]; }, scale_log2,
                                   key0 + kKeys - 1 > group_first[r], key0, qpos, quad_col, m[r], l[r], corr);
#pragma unroll
        for (int b = 0; b < kDimBlocks; ++b) {
          o[r][b][0] *= corr[0];
          o[r][b][1] *= corr[0];
          o[r][b][2] *= corr[1];
          o[r][b][3] *= corr[1];
        }
      }
#pragma unroll
      for (int kk = 0; kk < kKeys / 16; ++kk) {
        uint32_t a[R][4];
#pragma unroll
        for (int r = 0; r < R; ++r) {
          a[r][0] = pack_bf16(sc[r][2 * kk][0], sc[r][2 * kk][1]);
          a[r][1] = pack_bf16(sc[r][2 * kk][2], sc[r][2 * kk][3]);
          a[r][2] = pack_bf16(sc[r][2 * kk + 1][0], sc[r][2 * kk + 1][1]);
          a[r][3] = pack_bf16(sc[r][2 * kk + 1][2], sc[r][2 * kk + 1][3]);
        }
#pragma unroll
        for (int db = 0; db < D / 16; ++db) {
          uint32_t b[4];
          ldmatrix_x4_trans(shared_address(tv + swizzled<D>(kk * 16 + mr + (mi & 1) * 8, db * 2 + (mi >> 1))), b);
#pragma unroll
          for (int r = 0; r < R; ++r)
            if (active[r]) {
              mma_bf16(o[r][2 * db], a[r], b[0], b[1]);
              mma_bf16(o[r][2 * db + 1], a[r], b[2], b[3]);
            }
        }
      }
    }
    __syncthreads();  // every warp is done with this stage before the next iteration refills it
  }

  const int64_t out_cols = static_cast<int64_t>(s.q_heads) * D;
  bf16_t* out_tile = out + static_cast<int64_t>(tile.row0) * out_cols + static_cast<int64_t>(head) * D;
#pragma unroll
  for (int r = 0; r < R; ++r) {
    if (first_row[r] >= tile.count) continue;  // warp-uniform: the group holds no row of the tile
#pragma unroll
    for (int i = 0; i < 2; ++i) {
      l[r][i] += __shfl_xor_sync(0xffffffffu, l[r][i], 1);
      l[r][i] += __shfl_xor_sync(0xffffffffu, l[r][i], 2);
      l[r][i] = 1.0f / l[r][i];
    }
    const int row = first_row[r] + quad_row;
#pragma unroll
    for (int b = 0; b < kDimBlocks; ++b) {
      const int col = b * 8 + 2 * quad_col;
      if (row < tile.count)
        *reinterpret_cast<uint32_t*>(out_tile + row * out_cols + col) =
            pack_bf16(o[r][b][0] * l[r][0], o[r][b][1] * l[r][0]);
      if (row + 8 < tile.count)
        *reinterpret_cast<uint32_t*>(out_tile + (row + 8) * out_cols + col) =
            pack_bf16(o[r][b][2] * l[r][1], o[r][b][3] * l[r][1]);
    }
  }
}

template <int D, int R>
void launch(const bf16_t* qkv, const PrefillTile* tiles, int64_t num_tiles, const bf16_t* cache_k,
            const bf16_t* cache_v, const AttentionShape& s, bf16_t* out, cudaStream_t stream) {
  constexpr int kShared = shared_bytes<D, R>();
  // Per call, not once per process: the attribute belongs to the current device (cheap to set again).
  const cudaError_t configured =
      cudaFuncSetAttribute(flash_prefill_kernel<D, R>, cudaFuncAttributeMaxDynamicSharedMemorySize, kShared);
  if (configured != cudaSuccess)
    throw Error("nvrar-llm: prefill attention (head_dim " + std::to_string(D) + ", " + std::to_string(64 * R) +
                "-row tiles): " + std::to_string(kShared / 1024) + " KB of shared memory refused: " +
                cudaGetErrorString(configured));
  const PrefillGrid grid =
      prefill_grid(num_tiles, s, "nvrar-llm: prefill attention (head_dim " + std::to_string(D) + ")");
  flash_prefill_kernel<D, R><<<grid.blocks, kWarps * 32, kShared, stream>>>(qkv, tiles, grid, cache_k, cache_v, s,
                                                                            out);
  const cudaError_t launched = cudaGetLastError();
  if (launched != cudaSuccess)
    throw Error("nvrar-llm: prefill attention (head_dim " + std::to_string(D) + ", " + std::to_string(num_tiles) +
                " tiles of " + std::to_string(64 * R) + " rows x " + std::to_string(s.q_heads) +
                " heads): launch failed: " + cudaGetErrorString(launched));
}

}  // namespace

const char* flash_kernel_name(FlashKernel kernel) {
  switch (kernel) {
    case FlashKernel::kMma64:
      return "flash (64-row tiles)";
    case FlashKernel::kMma128:
      return "flash128 (128-row tiles)";
    case FlashKernel::kWgmma:
      return "wgmma (128-row tiles)";
    case FlashKernel::kWgmmaOverlap:
      return "wgmma2 (128-row tiles, softmax overlapped)";
    case FlashKernel::kWgmmaTma:
      return "wgmma-tma (128-row tiles, K/V by TMA)";
    case FlashKernel::kWgmmaWs:
      return "wgmma-ws (128-row tiles, TMA producer warp, warpgroups in turns)";
  }
  return "unknown";
}

int flash_tile_rows(FlashKernel kernel) { return kernel == FlashKernel::kMma64 ? kFlashTileRows : kFlashWideTileRows; }

bool flash_prefill_supports_head_dim(int head_dim) { return head_dim == 64 || head_dim == 128 || head_dim == 256; }

bool flash_prefill_supports(FlashKernel kernel, int head_dim) {
  if (kernel == FlashKernel::kMma64) return flash_prefill_supports_head_dim(head_dim);
  return head_dim == 64 || head_dim == 128;
}

void flash_prefill_attention(const bf16_t* qkv, const PrefillTile* tiles, int64_t num_tiles, const bf16_t* cache_k,
                             const bf16_t* cache_v, const AttentionShape& s, FlashKernel kernel, bf16_t* out,
                             cudaStream_t stream) {
  if (!flash_prefill_supports(kernel, s.head_dim))
    throw Error(std::string("nvrar-llm: prefill attention ") + flash_kernel_name(kernel) + ": head_dim " +
                std::to_string(s.head_dim) + " (64-row tiles take head_dim 64, 128 or 256; 128-row tiles 64 or 128)");
  if (kernel == FlashKernel::kWgmma || kernel == FlashKernel::kWgmmaTma) {
    flash_prefill_attention_wgmma(qkv, tiles, num_tiles, cache_k, cache_v, s, kernel == FlashKernel::kWgmmaTma, out,
                                  stream);
    return;
  }
  if (kernel == FlashKernel::kWgmmaOverlap) {
    flash_prefill_attention_wgmma_overlap(qkv, tiles, num_tiles, cache_k, cache_v, s, out, stream);
    return;
  }
  if (kernel == FlashKernel::kWgmmaWs) {
    flash_prefill_attention_wgmma_ws(qkv, tiles, num_tiles, cache_k, cache_v, s, out, stream);
    return;
  }
  if (num_tiles < 1) return;
  const bool wide = kernel == FlashKernel::kMma128;
  switch (s.head_dim) {
    case 64:
      wide ? launch<64, 2>(qkv, tiles, num_tiles, cache_k, cache_v, s, out, stream)
           : launch<64, 1>(qkv, tiles, num_tiles, cache_k, cache_v, s, out, stream);
      break;
    case 128:
      wide ? launch<128, 2>(qkv, tiles, num_tiles, cache_k, cache_v, s, out, stream)
           : launch<128, 1>(qkv, tiles, num_tiles, cache_k, cache_v, s, out, stream);
      break;
    default:  // 256 (checked above)
      launch<256, 1>(qkv, tiles, num_tiles, cache_k, cache_v, s, out, stream);
      break;
  }
}

}  // namespace nvrar::engine::gpu
