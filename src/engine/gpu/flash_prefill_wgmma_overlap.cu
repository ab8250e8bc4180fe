// Causal prefill attention on Hopper's warpgroup MMA with the softmax hidden behind the tensor cores
// (flash_prefill_wgmma.h; FlashKernel::kWgmmaOverlap, NVRAR_LLM_PREFILL_ATTENTION=wgmma2).
//
// Purpose: flash_prefill_wgmma.cu waits for each product before the instructions that need it (S before the softmax,
//   O before the next key tile), so a warpgroup's tensor-core work and its softmax (64 exp2 per thread per 128 keys
//   on the MUFU unit's 16 per clock per SM: about half as long as its two products) take turns; only the other resident
//   warpgroups fill the gaps. This kernel overlaps them inside each warpgroup (FlashAttention-3's intra-warpgroup
//   pipelining; the ideas, not its code) and takes 128-key tiles (half the steps and barriers; S by m64n128k16,
//   which reads 96 bytes of shared memory per clock at the tensor cores' rate where m64n64k16 needs 128, all the
//   bandwidth there is).
// Algorithm (FlashAttention-2 forward, causal; the plan tiles, masking, online softmax in log2 units and rounding of
//   P to bf16 of flash_prefill_wgmma.cu, tensor_core.cuh's online_softmax): one block = one 128-row query tile x one
//   query head; warpgroup g owns rows 64 g .. 64 g + 63, its warp w rows 64 g + 16 w .. + 15. Q once and K / V tiles
//   of 128 keys in three-stage rings, all by cp.async into 128-byte swizzled panels (wgmma.cuh). Key tile t: S_t =
//   Q K_t^T (D / 16 SS wgmma m64n128k16), softmax(S_t) -> P_t (bf16 registers) and the factor corr_t, then O =
//   O corr_t + P_t V_t (8 RS wgmma m64nDk16, V N-major). Step j (1 .. tiles - 1) of a warpgroup:
//     issue S_j (commit); O *= corr_{j-1}; issue O += P_{j-1} V_{j-1} (commit); start loads K_{j+2}, V_{j+1};
//     wait_group 1 (S_j done, P.V may run on); softmax(S_j) -> corr_j, overlapping P_{j-1} V_{j-1};
//     wait_group 0; P_j = bf16(S_j).
//   Step 0 is S_0 and its softmax alone; after the last step, O *= corr, O += P V of the last tile. The products
//   touch O in the order of flash_prefill_wgmma.cu (rescale, then add the tile's P V). One S accumulator suffices
//   because P_j is made only once P_{j-1} is free; a second one (S_{j+1} issued before softmax(S_j)) would also
//   hide the S product but needs ~64 more registers per thread than the 255 there are at head_dim 128 (O 64,
//   S 64, P 32, plus addresses and softmax temporaries). A warpgroup with no row of the tile (count <= 64) skips all
//   products; otherwise both run every key tile of the block: a key tile past a row's position is fully masked for
//   it (corr exactly 1, P exactly 0), so no row's result depends on its query tile.
// Launch: tiles x q_heads blocks in prefill_grid.cuh's order; 256 threads, __launch_bounds__(256, 1): one block per
//   SM (the O, S and P registers exceed the 128 per thread of two). Dynamic shared memory (128 + 6 x 128) x head_dim
//   x 2 bytes + 1 KB for 1024-byte alignment: 225 KB at head_dim 128 (sm_90's limit per block is 227 KB), 113 KB at
//   64. The warpgroup overlap replaces the second block's. Compiled for sm_90a only.
// Sync: per step j one __syncthreads, after each thread's cp.async.wait_group 1 and fence.proxy.async: the tiles
//   step j + 1 reads (K_{j+1}, V_j, whose copies began a step earlier) are visible to every warpgroup's wgmma, and
//   every warpgroup's wgmma_wait 0 of step j came before it, so the stages step j + 1 refills (those of K_j and
//   V_{j-1}, read by products that completed in step j) are free. One cp.async group per step (possibly empty), so
//   the counts of wait_group hold at the ends. wgmma.fence before each batch (registers written
//   by ordinary instructions: S by the softmax, O by the rescale, P by the conversion), accumulators and P untouched
//   between issue and wait (pinned around both). No wgmma is in flight at a barrier. No inter-block sync.
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cmath>
#include <string>

#include "engine/gpu/flash_prefill_wgmma.h"
#include "engine/gpu/prefill_grid.cuh"
#include "engine/gpu/tensor_core.cuh"
#include "engine/gpu/wgmma.cuh"
#include "nvrar/types.h"

namespace nvrar::engine::gpu {

namespace {

using namespace tc;
using namespace wg;

constexpr int kThreads = 256;  // two warpgroups
constexpr int kTileRows = 128;
constexpr int kKeys = 128;
constexpr int kStages = 3;  // K_{j+2} and V_{j+1} load during step j while K_j, K_{j+1}, V_{j-1}, V_j stay

template <int D>
constexpr int shared_bytes() {
  return (kTileRows + 2 * kStages * kKeys) * D * 2 + 1024;  // Q + the K and V rings + alignment slack
}
static_assert(shared_bytes<128>() <= 227 * 1024, "sm_90 grants a block at most 227 KB of shared memory");

template <int D>
__global__ void __launch_bounds__(kThreads, 1)
    flash_prefill_wgmma_overlap_kernel(const bf16_t* qkv, const PrefillTile* tiles, const PrefillGrid grid,
                                       const bf16_t* cache_k, const bf16_t* cache_v, AttentionShape s, bf16_t* out) {
#ifdef NVRAR_HAVE_WGMMA
  constexpr int kKeyBlocks = kKeys / 8;  // n8 blocks of S
  constexpr int kKeySteps = kKeys / 16;  // k16 steps of P V
  constexpr int kStageElems = kKeys * D;
  extern __shared__ unsigned char shared_raw[];
  // 1024-byte alignment of the shared-window address: the swizzle is a function of its bits 4-9.
  const uint32_t raw_address = shared_address(shared_raw);
  bf16_t* sq = reinterpret_cast<bf16_t*>(shared_raw + (((raw_address + 1023) & ~1023u) - raw_address));
  bf16_t* sk = sq + kTileRows * D;           // [kStages][kKeys * D]
  bf16_t* sv = sk + kStages * kStageElems;  // [kStages][kKeys * D]

  const PrefillBlock block = prefill_block(tiles, grid, blockIdx.x);
  const PrefillTile tile = block.tile;
  const int head = block.head;
  const int kv_head = head / (s.q_heads / s.kv_heads);
  const int group = threadIdx.x / 128, warp = (threadIdx.x / 32) % 4, lane = threadIdx.x % 32;
  const int quad_row = lane / 4, quad_col = lane % 4;
  const int group_row0 = group * 64, warp_row0 = group_row0 + warp * 16, warp_first = tile.pos0 + warp_row0;
  const bool group_has_rows = group_row0 < tile.count;  // warpgroup-uniform
  const int64_t key_end = static_cast<int64_t>(tile.pos0) + tile.count;
  const int key_tiles = static_cast<int>((key_end + kKeys - 1) / kKeys);
  const int64_t head_base = (static_cast<int64_t>(tile.seq) * s.kv_heads + kv_head) * s.max_seq * D;
  const bf16_t* kbase = cache_k + head_base;
  const bf16_t* vbase = cache_v + head_base;

  // Start the copy of key tile t's K or V into its stage; nothing past the last tile (block-uniform).
  auto load_k = [&](int t) {
    if (t >= key_tiles) return;
    const int64_t k0 = static_cast<int64_t>(t) * kKeys;
    load_panels<D, kKeys, kThreads>(sk + (t % kStages) * kStageElems, kbase + k0 * D, D, key_end - k0);
  };
  auto load_v = [&](int t) {
    if (t >= key_tiles) return;
    const int64_t k0 = static_cast<int64_t>(t) * kKeys;
    load_panels<D, kKeys, kThreads>(sv + (t % kStages) * kStageElems, vbase + k0 * D, D, key_end - k0);
  };
  // Groups: {Q, K_0}, {K_1, V_0}, {K_2, V_1}, then one per step j: {K_{j+2}, V_{j+1}}.
  load_panels<D, kTileRows, kThreads>(
      sq, qkv + static_cast<int64_t>(tile.row0) * s.qkv_cols + static_cast<int64_t>(head) * D, s.qkv_cols, tile.count);
  load_k(0);
  cp_async_commit();
  load_k(1);
  load_v(0);
  cp_async_commit();
  load_k(2);
  load_v(1);
  cp_async_commit();

  // Zeroed once so that every asm operand is defined; each S product starts with scale_d 0 and ignores them.
  float o[D / 2], sc[kKeys / 2];
  uint32_t p[kKeySteps][4];
#pragma unroll
  for (int i = 0; i < D / 2; ++i) o[i] = 0.0f;
#pragma unroll
  for (int i = 0; i < kKeys / 2; ++i) sc[i] = 0.0f;
#pragma unroll
  for (int kk = 0; kk < kKeySteps; ++kk) p[kk][0] = p[kk][1] = p[kk][2] = p[kk][3] = 0u;
  float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.0f, 0.0f}, corr[2] = {1.0f, 1.0f};
  const float scale_log2 = softmax_scale_log2(D);
  const int qpos = warp_first + quad_row;  // this lane's rows: qpos and qpos + 8
  const uint32_t q_address = shared_address(sq) + group_row0 * 128;

  // S_t = Q K_t^T into sc: issued and committed, not waited.
  auto issue_s = [&](int t) {
    issue_scores<D, kTileRows, kKeys>(sc, q_address, shared_address(sk + (t % kStages) * kStageElems));
  };
  // O = O * corr + P V_t (P = P_t in p, corr = corr_t): issued and committed, not waited.
  auto issue_pv = [&](int t) {
    issue_rescaled_pv<D, kKeys>(o, p, corr, shared_address(sv + (t % kStages) * kStageElems));
  };
  // softmax(S_t) in place (scores -> fp32 P), m, l and corr updated.
  auto softmax = [&](int t) {
    const int key0 = t * kKeys;
    online_softmax<kKeyBlocks>([&](int b, int e) -> float& { return sc[4 * b + e]; }, scale_log2,
                               key0 + kKeys - 1 > warp_first, key0, qpos, quad_col, m, l, corr);
  };
  auto to_bf16 = [&]() { scores_to_bf16<kKeys>(sc, p); };

  // Step 0.
  cp_async_wait<2>();  // {Q, K_0}
  fence_proxy_async();
  __syncthreads();
  if (group_has_rows) {
    issue_s(0);
    wgmma_wait<0>();
    pin(sc);
    softmax(0);  // corr 0 (m was -inf); O is 0
    to_bf16();
  }
  cp_async_wait<1>();  // {K_1, V_0}
  fence_proxy_async();
  __syncthreads();  // and every warpgroup is done with K_0 before step 1 refills its stage

  for (int j = 1; j < key_tiles; ++j) {
    if (group_has_rows) {
      issue_s(j);
      issue_pv(j - 1);
      load_k(j + 2);  // into K_{j-1}'s stage
      load_v(j + 1);  // into V_{j-2}'s stage
      cp_async_commit();
      wgmma_wait<1>();  // S_j; P_{j-1} V_{j-1} may still run
      pin(sc);
      softmax(j);
      wgmma_wait<0>();  // P_{j-1} V_{j-1}: O and P may be touched again
      pin(o);
      pin_a(p);
      to_bf16();
    } else {
      load_k(j + 2);
      load_v(j + 1);
      cp_async_commit();
    }
    cp_async_wait<1>();  // the group of step j - 1 (or the prologue's third): K_{j+1}, V_j
    fence_proxy_async();
    __syncthreads();  // visible to every warpgroup; every warpgroup's products of this step done
  }
  cp_async_wait<0>();  // nothing real is left (the last groups are empty); no copy outlives the block

  if (!group_has_rows) return;
  issue_pv(key_tiles - 1);
  wgmma_wait<0>();
  pin(o);

  store_output<D>(o, l, tile, head, s, warp_row0 + quad_row, quad_col, out);
#endif  // NVRAR_HAVE_WGMMA
}

}  // namespace

void flash_prefill_attention_wgmma_overlap(const bf16_t* qkv, const PrefillTile* tiles, int64_t num_tiles,
                                           const bf16_t* cache_k, const bf16_t* cache_v, const AttentionShape& s,
                                           bf16_t* out, cudaStream_t stream) {
  launch_prefill("wgmma2", flash_prefill_wgmma_overlap_kernel<64>, shared_bytes<64>(),
                 flash_prefill_wgmma_overlap_kernel<128>, shared_bytes<128>(), kThreads, qkv, tiles, num_tiles,
                 cache_k, cache_v, s, out, stream);
}

}  // namespace nvrar::engine::gpu
