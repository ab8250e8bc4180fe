// Causal prefill attention on Hopper's warpgroup MMA (flash_prefill_wgmma.h; FlashKernel::kWgmma and kWgmmaTma).
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
// Launch: tiles x q_heads blocks in prefill_grid.cuh's order; 256 threads, dynamic shared memory (128 + 4 x 64) x
//   head_dim x 2 bytes + 1 KB for 1024-byte alignment (97 KB at head_dim 128: two blocks per SM). Compiled for
//   sm_90a only.
// Sync: cp.async groups; each thread's fence.proxy.async after its copies land, then __syncthreads, before wgmma
//   (the async proxy) reads them; wgmma.fence before each batch of wgmma (registers written by other instructions),
//   commit + wait_group 0 after it; __syncthreads after a stage was used, before its refill. No inter-block sync.
// TMA form (kTma, NVRAR_LLM_PREFILL_ATTENTION=wgmma-tma): Q still by cp.async; thread 0 brings each K and V tile by
//   TMA (one box per 64-column panel from a 3-D tensor map of the cache, wgmma.cuh; it lands in the same swizzled
//   layout) and one mbarrier per stage counts the bytes; every thread waits on the stage's barrier (phase = the
//   stage's use count), so no per-thread copy instructions or index arithmetic remain, and no barrier but the one
//   closing each step (and one after Q and after zeroing V rows past the last key, which TMA does not zero-fill).
//   Same math and results as the cp.async form; 1-4% faster on an H100 (the default before wgmma-ws). The waits are
//   bounded (wgmma.cuh's mbarrier_wait, NVRAR_TIMEOUT_MS): a thread that gives up writes copy_wait.h's record, waits
//   no more and traps at its end, so a copy that never lands fails the call with a message instead of hanging.
#include "engine/gpu/flash_prefill_wgmma.h"

#include <cuda.h>
#include <cudaTypedefs.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>
#include <string>

#include "engine/gpu/device_memory.h"
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
constexpr int kKeys = 64;

// Q + two stages of K and V (+ the TMA form's two stage barriers) + alignment slack.
template <int D, bool kTma>
constexpr int shared_bytes() {
  return (kTileRows + 4 * kKeys) * D * 2 + (kTma ? 16 : 0) + 1024;
}

// Zeroes rows [valid, kRowsInTile) of a panelled tile (generic stores; the caller fences them for wgmma).
template <int D, int kRowsInTile, int kThreads>
__device__ __forceinline__ void zero_rows(bf16_t* tile, int64_t valid) {
  constexpr int kChunks = D / 8;
  for (int i = threadIdx.x; i < kRowsInTile * kChunks; i += kThreads) {
    const int r = i / kChunks, c = i % kChunks;
    if (r >= valid) *reinterpret_cast<uint4*>(tile + panel_offset<kRowsInTile>(r, c)) = make_uint4(0, 0, 0, 0);
  }
}

template <int D, bool kTma>
__global__ void __launch_bounds__(kThreads, 2)
    flash_prefill_wgmma_kernel(const bf16_t* qkv, const PrefillTile* tiles, const PrefillGrid grid,
                               const bf16_t* cache_k, const bf16_t* cache_v, AttentionShape s, bf16_t* out,
                               const __grid_constant__ KvTensorMaps maps) {
#ifdef NVRAR_HAVE_WGMMA
  constexpr int kKeyBlocks = kKeys / 8;  // n8 blocks of S
  constexpr int kDimBlocks = D / 8;      // n8 blocks of O
  extern __shared__ unsigned char shared_raw[];
  // 1024-byte alignment of the shared-window address: the swizzle is a function of its bits 4-9.
  const uint32_t raw_address = shared_address(shared_raw);
  bf16_t* sq = reinterpret_cast<bf16_t*>(shared_raw + (((raw_address + 1023) & ~1023u) - raw_address));
  bf16_t* sk = sq + kTileRows * D;  // [2][kKeys * D]
  bf16_t* sv = sk + 2 * kKeys * D;  // [2][kKeys * D]

  const PrefillBlock block = prefill_block(tiles, grid, blockIdx.x);
  const PrefillTile tile = block.tile;
  const int head = block.head;
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
  const uint32_t bars = shared_address(sv + 2 * kKeys * D);  // TMA form: one 8-byte barrier per stage
  // TMA form, thread 0: key tile t's K and V (D / 64 panels each, one box per panel) into stage t % 2.
  const auto tma_tile = [&](int t) {
    const uint32_t bar = bars + (t & 1) * 8;
    const int slice = tile.seq * s.kv_heads + kv_head;
    mbarrier_arrive_expect_tx(bar, 2 * kKeys * D * 2);
#pragma unroll
    for (int p = 0; p < D / kPanel; ++p) {
      const int offset = (t & 1) * kKeys * D + p * kKeys * kPanel;
      tma_load_3d(shared_address(sk + offset), &maps.k, p * kPanel, t * kKeys, slice, bar);
      tma_load_3d(shared_address(sv + offset), &maps.v, p * kPanel, t * kKeys, slice, bar);
    }
  };

  load_panels<D, kTileRows, kThreads>(
      sq, qkv + static_cast<int64_t>(tile.row0) * s.qkv_cols + static_cast<int64_t>(head) * D, s.qkv_cols, tile.count);
  if constexpr (kTma) {
    cp_async_commit();  // Q alone
    if (threadIdx.x == 0) {
      mbarrier_init(bars, 1);
      mbarrier_init(bars + 8, 1);
      mbarrier_init_fence();
    }
    __syncthreads();  // the barriers exist before anyone waits on them
    if (threadIdx.x == 0) tma_tile(0);
  } else {
    load_panels<D, kKeys, kThreads>(sk, kbase, D, key_end);
    load_panels<D, kKeys, kThreads>(sv, vbase, D, key_end);
    cp_async_commit();
  }

  float o[D / 2];
#pragma unroll
  for (int i = 0; i < D / 2; ++i) o[i] = 0.0f;
  float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.0f, 0.0f};
  const float scale_log2 = softmax_scale_log2(D);
  const int qpos = warp_first + quad_row;  // this lane's rows: qpos and qpos + 8
  const uint32_t q_address = shared_address(sq) + group_row0 * 128;

  bool failed = false;  // a wait gave up (TMA form): copy_wait_stop at the end
  for (int j = 0; j < key_tiles; ++j) {
    const int stage = j & 1;
    const int key0 = j * kKeys;
    if constexpr (kTma) {
      // Stage j + 1 was last read in step j - 1, whose closing barrier all threads passed.
      if (threadIdx.x == 0 && j + 1 < key_tiles && !failed) tma_tile(j + 1);  // none more once it gave up
      if (j == 0) cp_async_wait<0>();  // Q
      failed = mbarrier_wait(bars + stage * 8, (j >> 1) & 1, maps.bound, CopyWaitSite::kTmaTile, failed);
      // TMA brings whole boxes: V rows past the last key hold whatever the cache holds there (NaN in a stale cache,
      // and 0 x NaN is NaN in P.V), so they are zeroed; K rows there are masked to -inf by the softmax.
      const bool partial = key_end - key0 < kKeys;  // block-uniform
      if (partial) zero_rows<D, kKeys, kThreads>(sv + stage * kKeys * D, key_end - key0);
      if (j == 0 || partial) {
        fence_proxy_async();  // Q's cp.async and the zeros, visible to wgmma
        __syncthreads();
      }
    } else {
      if (j + 1 < key_tiles) {
        const int64_t k0 = static_cast<int64_t>(j + 1) * kKeys;
        load_panels<D, kKeys, kThreads>(sk + (stage ^ 1) * kKeys * D, kbase + k0 * D, D, key_end - k0);
        load_panels<D, kKeys, kThreads>(sv + (stage ^ 1) * kKeys * D, vbase + k0 * D, D, key_end - k0);
        cp_async_commit();
        cp_async_wait<1>();
      } else {
        cp_async_wait<0>();
      }
      fence_proxy_async();
      __syncthreads();
    }
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
      wgmma_wait<0>();
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
      wgmma_wait<0>();
      pin(o);
    }
    __syncthreads();  // both warpgroups are done with this stage before the next iteration refills it
  }

  if (!group_has_rows) {
    copy_wait_stop(failed);
    return;
  }
  store_output<D>(o, l, tile, head, s, warp_row0 + quad_row, quad_col, out);
  copy_wait_stop(failed);
#endif  // NVRAR_HAVE_WGMMA
}

// The driver's cuTensorMapEncodeTiled, found through the runtime (no link against libcuda); null if absent.
PFN_cuTensorMapEncodeTiled_v12000 tensor_map_encoder() {
  static const PFN_cuTensorMapEncodeTiled_v12000 encode = [] {
    void* fn = nullptr;
    cudaDriverEntryPointQueryResult found = cudaDriverEntryPointSymbolNotFound;
    if (cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &fn, 12000, cudaEnableDefault, &found) !=
            cudaSuccess ||
        found != cudaDriverEntryPointSuccess)
      fn = nullptr;
    return reinterpret_cast<PFN_cuTensorMapEncodeTiled_v12000>(fn);
  }();
  return encode;
}

// The current GPU and its compute capability; false where CUDA cannot tell.
bool current_capability(int& device, int& major, int& minor) {
  return cudaGetDevice(&device) == cudaSuccess &&
         cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device) == cudaSuccess &&
         cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, device) == cudaSuccess;
}

}  // namespace

CUtensorMap wg::kv_cache_tensor_map(const bf16_t* cache, const AttentionShape& s, int box_rows, const char* name) {
  const std::string what = std::string("nvrar-llm: prefill attention ") + name + " (head_dim " +
                           std::to_string(s.head_dim) + ", max_seq " + std::to_string(s.max_seq) + ", " +
                           std::to_string(s.cache_sequences) + " cache sequences x " + std::to_string(s.kv_heads) +
                           " KV heads)";
  if (s.cache_sequences < 1)
    throw Error(what + ": the KV cache's sequence count is not set (AttentionShape::cache_sequences)");
  if (s.max_seq < 1 || s.max_seq > INT32_MAX || s.cache_sequences * s.kv_heads > INT32_MAX)
    throw Error(what + ": a TMA coordinate would not fit 32 bits");
  if (reinterpret_cast<std::uintptr_t>(cache) % 16 != 0) throw Error(what + ": the cache is not 16-byte aligned");
  const PFN_cuTensorMapEncodeTiled_v12000 encode = tensor_map_encoder();
  if (encode == nullptr) throw Error(what + ": the CUDA driver has no cuTensorMapEncodeTiled");
  const cuuint64_t row_bytes = static_cast<cuuint64_t>(s.head_dim) * 2;
  const cuuint64_t dims[3] = {static_cast<cuuint64_t>(s.head_dim), static_cast<cuuint64_t>(s.max_seq),
                              static_cast<cuuint64_t>(s.cache_sequences * s.kv_heads)};
  const cuuint64_t strides[2] = {row_bytes, row_bytes * static_cast<cuuint64_t>(s.max_seq)};  // of dims 1 and 2
  const cuuint32_t box[3] = {static_cast<cuuint32_t>(kPanel), static_cast<cuuint32_t>(box_rows), 1};
  const cuuint32_t element_strides[3] = {1, 1, 1};
  CUtensorMap map;
  const CUresult r = encode(&map, CU_TENSOR_MAP_DATA_TYPE_BFLOAT16, 3, const_cast<bf16_t*>(cache), dims, strides, box,
                            element_strides, CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B,
                            CU_TENSOR_MAP_L2_PROMOTION_L2_256B, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
  if (r != CUDA_SUCCESS) throw Error(what + ": cuTensorMapEncodeTiled failed (CUresult " + std::to_string(r) + ")");
  return map;
}

namespace {

// copy_wait_self_test's kernel: every thread waits on its block's barrier, which expects one arrival nobody makes.
__global__ void copy_wait_self_test_kernel(const __grid_constant__ CopyWaitBound bound) {
#ifdef NVRAR_HAVE_WGMMA
  __shared__ alignas(8) uint64_t barrier;
  const uint32_t bar = shared_address(&barrier);
  if (threadIdx.x == 0) {
    mbarrier_init(bar, 1);
    mbarrier_init_fence();
  }
  __syncthreads();
  copy_wait_stop(mbarrier_wait(bar, 0, bound, CopyWaitSite::kSelfTest, false));  // gives up, then traps
#endif
}

}  // namespace

void copy_wait_self_test(int64_t timeout_ms) {
  require_wgmma_gpu("copy_wait_self_test");
  const CopyWaitBound bound = copy_wait_bound(timeout_ms);
  copy_wait_self_test_kernel<<<8, 128>>>(bound);
  cuda_check(cudaGetLastError(), "copy_wait_self_test launch", 0);
  cuda_check(cudaDeviceSynchronize(), "copy_wait_self_test", 0);
  throw Error("nvrar-llm: copy_wait_self_test: the wait on a barrier nobody arrives on returned (it must give up)");
}

bool wgmma_prefill_runs_here() {
  int device = 0, major = 0, minor = 0;
  return current_capability(device, major, minor) && major == 9 && minor == 0;
}

void require_wgmma_gpu(const std::string& kernel) {
  int device = 0, major = 0, minor = 0;
  if (!current_capability(device, major, minor))
    throw Error("nvrar-llm: prefill attention " + kernel + ": cannot read the current GPU's compute capability");
  if (major != 9 || minor != 0)
    throw Error("nvrar-llm: prefill attention " + kernel + " (NVRAR_LLM_PREFILL_ATTENTION=" + kernel +
                ") needs a GPU of compute capability 9.0 (H100, H200); GPU " + std::to_string(device) + " is " +
                std::to_string(major) + "." + std::to_string(minor) + " (use flash or flash128)");
}

void flash_prefill_attention_wgmma(const bf16_t* qkv, const PrefillTile* tiles, int64_t num_tiles,
                                   const bf16_t* cache_k, const bf16_t* cache_v, const AttentionShape& s, bool tma,
                                   bf16_t* out, cudaStream_t stream) {
  if (!tma) {
    launch_prefill("wgmma", flash_prefill_wgmma_kernel<64, false>, shared_bytes<64, false>(),
                   flash_prefill_wgmma_kernel<128, false>, shared_bytes<128, false>(), kThreads, qkv, tiles, num_tiles,
                   cache_k, cache_v, s, out, stream, KvTensorMaps{});
    return;
  }
  require_wgmma_gpu("wgmma-tma");
  if (num_tiles < 1) return;
  const KvTensorMaps maps{kv_cache_tensor_map(cache_k, s, kKeys, "wgmma-tma"),
                          kv_cache_tensor_map(cache_v, s, kKeys, "wgmma-tma"), copy_wait_bound()};
  launch_prefill("wgmma-tma", flash_prefill_wgmma_kernel<64, true>, shared_bytes<64, true>(),
                 flash_prefill_wgmma_kernel<128, true>, shared_bytes<128, true>(), kThreads, qkv, tiles, num_tiles,
                 cache_k, cache_v, s, out, stream, maps);
}

}  // namespace nvrar::engine::gpu
