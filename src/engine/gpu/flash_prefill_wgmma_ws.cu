// Causal prefill attention on Hopper's warpgroup MMA with a producer warp and the two warpgroups taking turns at the
// tensor cores (flash_prefill_wgmma.h; FlashKernel::kWgmmaWs, NVRAR_LLM_PREFILL_ATTENTION=wgmma-ws).
//
// Purpose: wgmma2 (flash_prefill_wgmma_overlap.cu) hides each warpgroup's softmax behind its own P.V product, but a
//   __syncthreads per key tile keeps both warpgroups in step: they run their softmax at the same time, the tensor
//   cores idle meanwhile, and every thread issues cp.async copies and their address arithmetic. Here (the ideas of
//   FlashAttention-3, not its code) a producer warp brings K and V by TMA into rings guarded by mbarriers, so the
//   warpgroups never meet at a block barrier, and the two warpgroups issue their products in turns (two named
//   barriers): while one runs its softmax the other's products keep the tensor cores busy.
// Algorithm: wgmma2's (FlashAttention-2 forward, causal; 128-row query tiles, 128-key tiles, online softmax in log2
//   units, P rounded to bf16, O = O corr + P V): warpgroup g (threads 128 g .. 128 g + 127) owns rows 64 g .. 64 g +
//   63. Step j of a warpgroup: wait for its turn; issue S_j = Q K_j^T (D / 16 SS wgmma m64n128k16); O *= corr_{j-1}
//   and issue O += P_{j-1} V_{j-1} (8 RS wgmma m64nDk16); pass the turn; wait for S_j and release K_j's stage; softmax
//   -> corr_j; wait for P V and release V_{j-1}'s stage; P_j = bf16(S_j). After the last step one more turn for the
//   last P V. Both warpgroups run every key tile of the block (a warpgroup whose rows are past tile.count computes on
//   zero rows of Q and stores nothing), so the turns always alternate.
// Producer: warp 8 (the first of warpgroup 2). Per key tile t it waits until the stage of K_t is free (both
//   warpgroups released it), then lane 0 arms the stage's full barrier with the tile's bytes and issues the D / 64
//   TMA boxes (wgmma.cuh's KV-cache tensor maps, 128-key boxes in the 128-byte swizzle); then the same for V_{t-1},
//   so K runs one tile ahead of V as the products use them. A last key tile past the sequence's end is copied by the
//   warp with cp.async instead, its rows past the end zero-filled (TMA would bring whatever the cache holds there,
//   NaN in a stale cache, and 0 x NaN is NaN in P.V); the warp waits for its copies, fences them to the async proxy
//   and lane 0 arrives on the full barrier. Such a short K tile is brought after the V of the same step, so that V's
//   copy does not wait behind it.
// Launch: tiles x q_heads blocks in prefill_grid.cuh's order; 384 threads (two consumer warpgroups + the producer's
//   warpgroup, of which one warp works and which hands its registers to the consumers by setmaxnreg: 40 / 232 per
//   thread; the launcher refuses a build given fewer than 168 per thread, where setmaxnreg.inc would wait for ever),
//   __launch_bounds__(384, 1). Dynamic shared memory: Q (128 x D) + 3-stage K and V rings (128 x D each) + 1 KB
//   for 1024-byte alignment + the 12 barriers: 225 KB at head_dim 128, 113 KB at 64. Compiled for sm_90a only.
// Sync: mbarriers per stage: full (1 arrival + the TMA bytes, or the producer's arrival after its cp.async) and empty
//   (one arrival per consumer warp, by its lane 0 after its wait for the products reading the stage); phases by use
//   count. Every mbarrier wait is bounded (wgmma.cuh's mbarrier_wait, NVRAR_TIMEOUT_MS): a thread that gives up
//   writes copy_wait.h's record once, waits no more, and traps at its end (copy_wait_stop), so a copy that never lands
//   or a release that never comes fails the call with a message instead of hanging (the producer's waits for a
//   release take twice the bound, so a stuck copy is named by the consumers that wait for it). The named barriers
//   are not bounded (every consumer thread passes each one the same number of times, whatever the data).
//   Q by cp.async from the 256 consumer threads, fenced to the async proxy, then named barrier 1 (256 threads).
//   Turns: named barriers 2 and 3 (warpgroup g waits on 2 + g, then arrives on 3 - g; warpgroup 1 gives the first turn
//   and skips its last arrival, so every barrier's arrivals and waits pair up). One __syncthreads, after the barriers'
//   initialisation. wgmma.fence before each batch, commit, wait_group 1 / 0 as in wgmma2.
#include <cuda.h>
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

constexpr int kConsumers = 256;  // two warpgroups
constexpr int kThreads = kConsumers + 128;  // + the producer's warpgroup (one warp of it works)
// Registers per thread after setmaxnreg: 128 x 40 + 256 x 232 = 64512 of the SM's 65536. ptxas sizes a wgmma kernel
// for whole warpgroups (65536 / 384 = 168 per thread, too few for O, S and P: it spilled), so the producer's
// warpgroup gives registers back and the consumers take them.
constexpr int kProducerRegisters = 40;
constexpr int kConsumerRegisters = 232;
constexpr int kTileRows = 128;
constexpr int kKeys = 128;
constexpr int kStages = 3;
constexpr int kBarriers = 4 * kStages;  // full K, full V, empty K, empty V per stage

template <int D>
constexpr int shared_bytes() {
  return (kTileRows + 2 * kStages * kKeys) * D * 2 + 1024 + 8 * kBarriers;
}
static_assert(shared_bytes<128>() <= 227 * 1024, "sm_90 grants a block at most 227 KB of shared memory");

// Named barriers over the kConsumers consumer threads (ids as immediates, so ptxas counts only those used).
template <int kId>
__device__ __forceinline__ void named_sync() {
  asm volatile("bar.sync %0, %1;\n" ::"n"(kId), "n"(kConsumers) : "memory");
}
template <int kId>
__device__ __forceinline__ void named_arrive() {
  asm volatile("bar.arrive %0, %1;\n" ::"n"(kId), "n"(kConsumers) : "memory");
}
// The turns: warpgroup g waits on barrier 2 + g and hands the turn over on 3 - g.
__device__ __forceinline__ void wait_turn(int group) {
  if (group == 0)
    named_sync<2>();
  else
    named_sync<3>();
}
__device__ __forceinline__ void pass_turn(int group) {
  if (group == 0)
    named_arrive<3>();
  else
    named_arrive<2>();
}
template <int kRegisters>
__device__ __forceinline__ void registers_down() {
  asm volatile("setmaxnreg.dec.sync.aligned.u32 %0;\n" ::"n"(kRegisters));
}
template <int kRegisters>
__device__ __forceinline__ void registers_up() {
  asm volatile("setmaxnreg.inc.sync.aligned.u32 %0;\n" ::"n"(kRegisters));
}

template <int D>
__global__ void __launch_bounds__(kThreads, 1)
    flash_prefill_wgmma_ws_kernel(const bf16_t* qkv, const PrefillTile* tiles, const PrefillGrid grid,
                                  const bf16_t* cache_k, const bf16_t* cache_v, AttentionShape s, bf16_t* out,
                                  const __grid_constant__ KvTensorMaps maps) {
#ifdef NVRAR_HAVE_WGMMA
  constexpr int kKeyBlocks = kKeys / 8;  // n8 blocks of S
  constexpr int kKeySteps = kKeys / 16;  // k16 steps of P V
  constexpr int kStageElems = kKeys * D;
  constexpr uint32_t kTileBytes = kKeys * D * 2;
  extern __shared__ unsigned char shared_raw[];
  const uint32_t raw_address = shared_address(shared_raw);
  bf16_t* sq = reinterpret_cast<bf16_t*>(shared_raw + (((raw_address + 1023) & ~1023u) - raw_address));
  bf16_t* sk = sq + kTileRows * D;           // [kStages][kKeys * D]
  bf16_t* sv = sk + kStages * kStageElems;  // [kStages][kKeys * D]
  const uint32_t bars = shared_address(sv + kStages * kStageElems);
  const auto full_k = [&](int stage) { return bars + 8 * stage; };
  const auto full_v = [&](int stage) { return bars + 8 * (kStages + stage); };
  const auto empty_k = [&](int stage) { return bars + 8 * (2 * kStages + stage); };
  const auto empty_v = [&](int stage) { return bars + 8 * (3 * kStages + stage); };

  const PrefillBlock block = prefill_block(tiles, grid, blockIdx.x);
  const PrefillTile tile = block.tile;
  const int head = block.head;
  const int kv_head = head / (s.q_heads / s.kv_heads);
  const int64_t key_end = static_cast<int64_t>(tile.pos0) + tile.count;
  const int key_tiles = static_cast<int>((key_end + kKeys - 1) / kKeys);
  if (key_tiles == 0) return;  // no rows (plan_prefill makes none such; no barrier waits for nothing)

  if (threadIdx.x == 0) {
    for (int st = 0; st < kStages; ++st) {
      mbarrier_init(full_k(st), 1);
      mbarrier_init(full_v(st), 1);
      mbarrier_init(empty_k(st), kConsumers / 32);
      mbarrier_init(empty_v(st), kConsumers / 32);
    }
    mbarrier_init_fence();
  }
  __syncthreads();  // the barriers exist before anyone waits on them

  if (threadIdx.x >= kConsumers) {  // the producer warpgroup: its first warp brings the tiles
    registers_down<kProducerRegisters>();
    if (threadIdx.x >= kConsumers + 32) return;
    const int lane = threadIdx.x - kConsumers;
    const int slice = tile.seq * s.kv_heads + kv_head;
    const int64_t head_base = static_cast<int64_t>(slice) * s.max_seq * D;
    bool failed = false;  // a wait gave up: copy_wait_stop at the end
    // Key tile t's K (is_v false) or V into its stage, once the stage's previous use was released.
    const auto bring = [&](int t, bool is_v) {
      const int stage = t % kStages, use = t / kStages;
      // Twice the bound: where a copy is stuck, the consumers' waits for it give up first and name it.
      if (use > 0)
        failed = mbarrier_wait<2>(is_v ? empty_v(stage) : empty_k(stage), (use - 1) & 1, maps.bound,
                                  CopyWaitSite::kWsStageRelease, failed);
      bf16_t* dst = (is_v ? sv : sk) + stage * kStageElems;
      const uint32_t full = is_v ? full_v(stage) : full_k(stage);
      const int64_t k0 = static_cast<int64_t>(t) * kKeys;
      if (key_end - k0 >= kKeys) {  // a whole tile: TMA
        if (lane == 0) {
          mbarrier_arrive_expect_tx(full, kTileBytes);
#pragma unroll
          for (int p = 0; p < D / kPanel; ++p)
            tma_load_3d(shared_address(dst + p * kKeys * kPanel), is_v ? &maps.v : &maps.k, p * kPanel,
                        static_cast<int>(k0), slice, full);
        }
        return;
      }
      const bf16_t* src = (is_v ? cache_v : cache_k) + head_base + k0 * D;
      const int64_t valid = key_end - k0;
      constexpr int kChunks = D / 8;
      for (int i = lane; i < kKeys * kChunks; i += 32) {
        const int r = i / kChunks, c = i % kChunks;
        const bool ok = r < valid;
        cp_async_16(shared_address(dst + panel_offset<kKeys>(r, c)), ok ? src + r * D + c * 8 : src, ok);
      }
      cp_async_commit();
      cp_async_wait<0>();
      fence_proxy_async();  // the copies, visible to the async proxy (wgmma)
      __syncwarp();
      if (lane == 0) mbarrier_arrive(full);
    };
    // K runs one tile ahead of V; a short last K tile (copied, not by TMA, and waited for) goes after the V the
    // same step needs, so that V's copy is not queued behind it.
    for (int t = 0; t <= key_tiles; ++t) {
      const bool short_k = t < key_tiles && key_end - static_cast<int64_t>(t) * kKeys < kKeys;
      if (t < key_tiles && !short_k) bring(t, false);
      if (t > 0) bring(t - 1, true);
      if (short_k) bring(t, false);
    }
    copy_wait_stop(failed);
    return;
  }

  // Consumers.
  registers_up<kConsumerRegisters>();
  const int group = threadIdx.x / 128, warp = (threadIdx.x / 32) % 4, lane = threadIdx.x % 32;
  const int quad_row = lane / 4, quad_col = lane % 4;
  const int group_row0 = group * 64, warp_row0 = group_row0 + warp * 16, warp_first = tile.pos0 + warp_row0;
  load_panels<D, kTileRows, kConsumers>(
      sq, qkv + static_cast<int64_t>(tile.row0) * s.qkv_cols + static_cast<int64_t>(head) * D, s.qkv_cols, tile.count);
  cp_async_commit();
  cp_async_wait<0>();
  fence_proxy_async();
  named_sync<1>();  // Q in shared memory, visible to every consumer's wgmma

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
  const bool leader = lane == 0;  // arrives on the empty barriers for its warp, once its products completed

  const auto issue_s = [&](int t) {
    issue_scores<D, kTileRows, kKeys>(sc, q_address, shared_address(sk + (t % kStages) * kStageElems));
  };
  const auto issue_pv = [&](int t) {
    issue_rescaled_pv<D, kKeys>(o, p, corr, shared_address(sv + (t % kStages) * kStageElems));
  };
  const auto softmax = [&](int t) {
    const int key0 = t * kKeys;
    online_softmax<kKeyBlocks>([&](int b, int e) -> float& { return sc[4 * b + e]; }, scale_log2,
                               key0 + kKeys - 1 > warp_first, key0, qpos, quad_col, m, l, corr);
  };
  const auto to_bf16 = [&]() { scores_to_bf16<kKeys>(sc, p); };
  // Waits for a tile's bytes before taking the turn, so that no warpgroup holds the tensor cores' turn idle.
  bool failed = false;  // a wait gave up: copy_wait_stop at the end
  const auto wait_k = [&](int t) {
    failed = mbarrier_wait(full_k(t % kStages), (t / kStages) & 1, maps.bound, CopyWaitSite::kWsKeyTile, failed);
  };
  const auto wait_v = [&](int t) {
    failed = mbarrier_wait(full_v(t % kStages), (t / kStages) & 1, maps.bound, CopyWaitSite::kWsValueTile, failed);
  };
  // Turns: key_tiles + 1 per warpgroup; warpgroup 1 gives the first (here) and keeps its last (after the loop).
  if (group == 1) pass_turn(group);
  // Step 0: S_0 and its softmax alone.
  wait_k(0);
  wait_turn(group);
  issue_s(0);
  pass_turn(group);
  wgmma_wait<0>();
  pin(sc);
  if (leader) mbarrier_arrive(empty_k(0));
  softmax(0);  // corr 0 (m was -inf); O is 0
  to_bf16();
  for (int j = 1; j < key_tiles; ++j) {
    wait_k(j);
    wait_v(j - 1);
    wait_turn(group);
    issue_s(j);
    issue_pv(j - 1);
    pass_turn(group);
    wgmma_wait<1>();  // S_j; P_{j-1} V_{j-1} may still run
    pin(sc);
    if (leader) mbarrier_arrive(empty_k(j % kStages));
    softmax(j);
    wgmma_wait<0>();  // P_{j-1} V_{j-1}: O and P may be touched again
    pin(o);
    pin_a(p);
    if (leader) mbarrier_arrive(empty_v((j - 1) % kStages));
    to_bf16();
  }
  wait_v(key_tiles - 1);
  wait_turn(group);
  issue_pv(key_tiles - 1);
  if (group == 0) pass_turn(group);
  wgmma_wait<0>();
  pin(o);
  store_output<D>(o, l, tile, head, s, warp_row0 + quad_row, quad_col, out);
  copy_wait_stop(failed);
#endif  // NVRAR_HAVE_WGMMA
}

}  // namespace

void flash_prefill_attention_wgmma_ws(const bf16_t* qkv, const PrefillTile* tiles, int64_t num_tiles,
                                      const bf16_t* cache_k, const bf16_t* cache_v, const AttentionShape& s,
                                      bf16_t* out, cudaStream_t stream) {
  require_wgmma_gpu("wgmma-ws");
  if (num_tiles < 1) return;
  // setmaxnreg only moves registers the block already holds: with fewer than 168 per thread at launch (another
  // compiler, a register cap) the consumers' setmaxnreg.inc would wait for ever, so refuse instead.
  cudaFuncAttributes attributes{};
  const cudaError_t queried = s.head_dim == 64
                                  ? cudaFuncGetAttributes(&attributes, flash_prefill_wgmma_ws_kernel<64>)
                                  : cudaFuncGetAttributes(&attributes, flash_prefill_wgmma_ws_kernel<128>);
  constexpr int kNeeded = (128 * kProducerRegisters + kConsumers * kConsumerRegisters + kThreads - 1) / kThreads;
  if (queried != cudaSuccess)
    throw Error("nvrar-llm: prefill attention wgmma-ws (head_dim " + std::to_string(s.head_dim) +
                "): cannot read the kernel's attributes: " + cudaGetErrorString(queried));
  if (attributes.numRegs < kNeeded)
    throw Error("nvrar-llm: prefill attention wgmma-ws (head_dim " + std::to_string(s.head_dim) + "): built with " +
                std::to_string(attributes.numRegs) + " registers per thread, needs " + std::to_string(kNeeded) +
                " for its setmaxnreg split (use wgmma-tma)");
  const KvTensorMaps maps{kv_cache_tensor_map(cache_k, s, kKeys, "wgmma-ws"),
                          kv_cache_tensor_map(cache_v, s, kKeys, "wgmma-ws"), copy_wait_bound()};
  launch_prefill("wgmma-ws", flash_prefill_wgmma_ws_kernel<64>, shared_bytes<64>(), flash_prefill_wgmma_ws_kernel<128>,
                 shared_bytes<128>(), kThreads, qkv, tiles, num_tiles, cache_k, cache_v, s, out, stream, maps);
}

}  // namespace nvrar::engine::gpu
