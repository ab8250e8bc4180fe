// Device helpers of the Hopper prefill kernels (flash_prefill_wgmma.cu, flash_prefill_wgmma_overlap.cu,
// flash_prefill_wgmma_ws.cu): tiles staged by cp.async as 128-byte swizzled panels, wgmma shared-memory descriptors,
// the warpgroup MMA instructions they issue and the fences and waits around them, TMA and mbarriers, the 128-key
// steps of wgmma2 and wgmma-ws, the output epilogue and the host launcher the kernels share. Header-only
// code for the sm_90a object library (cmake/NvrarEngineGpu.cmake): wgmma has no other form, so any other device
// target is an error.
//
// Panel layout: a tile of R rows x D bf16 columns is D / 64 panels back to back, each R rows of 128 bytes (64
// columns); row r's 16-byte chunk c of a panel is stored at chunk c ^ (r % 8). With the tile 1024-byte aligned this
// is the canonical layout of wgmma's 128-byte swizzle mode both K-major (rows = M or N, 8-row groups 1024 bytes
// apart, a k16 step = 32 bytes inside a row) and N-major (rows = K, 64-column groups one panel apart).
#pragma once

#include <cuda.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <string>

#include "engine/gpu/attention.h"
#include "engine/gpu/copy_wait.h"
#include "engine/gpu/flash_prefill_wgmma.h"
#include "engine/gpu/layers.h"
#include "engine/gpu/prefill_grid.cuh"
#include "engine/gpu/tensor_core.cuh"
#include "engine/prefill_plan.h"
#include "nvrar/types.h"

#if defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define NVRAR_HAVE_WGMMA 1
#elif defined(__CUDA_ARCH__)
#error "wgmma.cuh is for the sm_90a object library only (cmake/NvrarEngineGpu.cmake): wgmma has no other form"
#endif

// The bounded waits' claim on their record (copy_wait_gave_up): 0 free, 1 being written, 2 written. One word per
// kernel file (each is a device module of its own), in device memory, where atomics are atomic.
static __device__ int copy_wait_claimed = 0;

namespace nvrar::engine::gpu::wg {

constexpr int kPanel = 64;  // elements per 128-byte row of a swizzled panel

// The TMA kernels' tensor maps of the layer's K and V cache (kv_cache_tensor_map), and how long a wait on their
// copies may take (copy_wait.h).
struct KvTensorMaps {
  CUtensorMap k, v;
  CopyWaitBound bound;
};

// Host: the TMA view of one layer's K or V cache [cache_sequences][kv_heads][max_seq][head_dim]: 3-D, head_dim x
// max_seq x slices, boxes of 64 columns x box_rows positions x 1 slice, 128-byte swizzle, zeros outside. Throws
// nvrar::Error naming the kernel setting `name` and the shape where it cannot be made (flash_prefill_wgmma.cu).
CUtensorMap kv_cache_tensor_map(const bf16_t* cache, const AttentionShape& s, int box_rows, const char* name);

// Element offset of 16-byte chunk c (of D / 8) of row r in a tile of kRowsInTile rows stored as 64-column panels.
template <int kRowsInTile>
__device__ __forceinline__ int panel_offset(int r, int c) {
  return (c >> 3) * kRowsInTile * kPanel + r * kPanel + (((c & 7) ^ (r & 7)) << 3);
}

// Starts the copy of rows [0, kRowsInTile) (row r at src + r * stride elements) into a panelled swizzled tile, the
// kThreads threads of the block sharing the chunks; rows >= valid are zero-filled. Thread t copies chunk t % kChunks
// of rows t / kChunks + j * kRowsPerPass: kRowsPerPass is a multiple of 8, so the swizzle (row % 8) and the chunk are
// the same on every pass and a pass only adds constant shared and global offsets (the index arithmetic per chunk was
// the busiest pipe of these kernels: ALU 46%, Nsight Compute on an H100, 2026-12-05).
template <int D, int kRowsInTile, int kThreads>
__device__ __forceinline__ void load_panels(bf16_t* tile, const bf16_t* src, int64_t stride, int64_t valid) {
  constexpr int kChunks = D / 8;
  constexpr int kRowsPerPass = kThreads / kChunks;
  static_assert(kThreads % kChunks == 0 && kRowsPerPass % 8 == 0 && kRowsInTile % kRowsPerPass == 0,
                "whole passes of rows, a multiple of the swizzle's 8 apart");
  const int r0 = static_cast<int>(threadIdx.x) / kChunks, c = static_cast<int>(threadIdx.x) % kChunks;
  const uint32_t shared0 = tc::shared_address(tile + panel_offset<kRowsInTile>(r0, c));
  const bf16_t* global0 = src + r0 * stride + c * 8;
#pragma unroll
  for (int j = 0; j < kRowsInTile / kRowsPerPass; ++j) {
    const bool ok = r0 + j * kRowsPerPass < valid;
    tc::cp_async_16(shared0 + j * kRowsPerPass * kPanel * 2, ok ? global0 + j * kRowsPerPass * stride : src, ok);
  }
}

// A wgmma shared-memory descriptor: start address, leading and stride byte offsets (16-byte units), 128-byte swizzle.
__device__ __forceinline__ uint64_t descriptor(uint32_t address, uint32_t leading_bytes, uint32_t stride_bytes) {
  return static_cast<uint64_t>((address & 0x3FFFF) >> 4) | (static_cast<uint64_t>(leading_bytes >> 4) << 16) |
         (static_cast<uint64_t>(stride_bytes >> 4) << 32) | (1ull << 62);
}

#ifdef NVRAR_HAVE_WGMMA

// Orders this thread's earlier accesses to registers that the next wgmma reads or writes (accumulators, A fragments)
// before it; needed whenever ordinary instructions touched them since the last wgmma of the same shape.
__device__ __forceinline__ void wgmma_fence() { asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void wgmma_commit() { asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory"); }
// Waits until at most N of this warpgroup's committed wgmma groups are pending (groups complete in commit order).
template <int N>
__device__ __forceinline__ void wgmma_wait() {
  asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(N) : "memory");
}
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

// TMA (the tensor memory accelerator) and the shared-memory barriers that count its bytes. A KV-cache tensor map
// (kv_cache_tensor_map) is 3-D: head_dim columns x max_seq positions x (sequence, KV head) slices, boxes of 64 columns
// (128 bytes: the panel) x kKeys positions x 1 slice in the 128-byte swizzle, which lands a box exactly as
// load_panels lays out one panel; positions past max_seq read as zeros and never reach the next slice.
__device__ __forceinline__ void mbarrier_init(uint32_t bar, uint32_t arrivals) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(bar), "r"(arrivals) : "memory");
}
// Makes the barriers' initialisation visible to the async proxy (TMA) before any copy signals them.
__device__ __forceinline__ void mbarrier_init_fence() {
  asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
}
// One arrival that also tells the barrier to expect `bytes` more from copies in flight.
__device__ __forceinline__ void mbarrier_arrive_expect_tx(uint32_t bar, uint32_t bytes) {
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(bar), "r"(bytes) : "memory");
}
// One arrival, no bytes expected.
__device__ __forceinline__ void mbarrier_arrive(uint32_t bar) {
  asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];\n" ::"r"(bar) : "memory");
}
// One look at the barrier: whether its phase of this parity has completed (its arrivals and bytes all in). The
// hardware may suspend the thread a while before it answers false.
__device__ __forceinline__ bool mbarrier_try_wait(uint32_t bar, uint32_t parity) {
  uint32_t done;
  asm volatile(
      "{\n.reg .pred p;\n"
      "mbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\n"
      "selp.b32 %0, 1, 0, p;\n}\n"
      : "=r"(done)
      : "r"(bar), "r"(parity)
      : "memory");
  return done != 0;
}
// The GPU's global timer in 2^20-ns (~1.05 ms) units, 32 bits (differences survive its wrap).
__device__ __forceinline__ uint32_t timer_units() {
  uint64_t ns;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(ns));
  return static_cast<uint32_t>(ns >> 20);
}
// A wait that gave up: the first thread to get here (per kernel file) writes the record, its site last (the host
// reads a nonzero site as a complete record), then marks the claim written. No trap here: a trap (inlined, or a call)
// inside wgmma-ws's loops made ptxas spill; every thread that gave up traps at its kernel's end (copy_wait_stop).
__device__ __forceinline__ void copy_wait_gave_up(const CopyWaitBound& bound, CopyWaitSite site, uint32_t bar,
                                                  uint32_t parity) {
  CopyWaitRecord* r = bound.record;
  if (atomicCAS(&copy_wait_claimed, 0, 1) != 0) return;
  r->block = static_cast<int>(blockIdx.x);
  r->thread = static_cast<int>(threadIdx.x);
  r->parity = static_cast<int>(parity);
  r->barrier = bar;
  r->device = bound.device;
  r->timeout_units = bound.timeout_units;
  __threadfence_system();
  *static_cast<volatile int*>(&r->site) = static_cast<int>(site);
  __threadfence_system();
  atomicExch(&copy_wait_claimed, 2);
}
// Waits until the barrier's phase of this parity has completed, for at most kScale x bound.timeout_units; returns
// whether it gave up (then copy_wait_gave_up wrote or found the record). `failed`: this thread already gave up on a
// wait, so it does not wait again (the kernel runs to its end on whatever shared memory holds, and copy_wait_stop
// traps there). The timer starts only once the first look fails, so a wait whose bytes are in costs one try_wait as
// before. A wait that depends on another (wgmma-ws's producer waits for the consumers, which wait for the copies)
// takes a larger scale, so that the wait nearest the cause gives up first and names it.
template <uint32_t kScale = 1>
__device__ __forceinline__ bool mbarrier_wait(uint32_t bar, uint32_t parity, const CopyWaitBound& bound,
                                              CopyWaitSite site, bool failed) {
  if (failed || mbarrier_try_wait(bar, parity)) return failed;
  const uint32_t start = timer_units();
  while (!mbarrier_try_wait(bar, parity)) {
    if (timer_units() - start > kScale * bound.timeout_units) {
      copy_wait_gave_up(bound, site, bar, parity);
      return true;
    }
  }
  return false;
}
// At a kernel's end: a thread whose wait gave up stops the kernel (and loses the context) so that no caller reads its
// output; the host's next CUDA error carries the record's message (cuda_check). It first gives the thread that claimed
// the record up to ~100 ms to finish writing it (a trap anywhere stops every thread). The trap is not inlined: an
// inlined trap made ptxas spill in wgmma-ws even here, a call does not (and a call to a function with a loop in it
// failed register allocation under wgmma-ws's setmaxnreg).
static __device__ __noinline__ void copy_wait_trap() { __trap(); }
__device__ __forceinline__ void copy_wait_stop(bool failed) {
  if (!failed) return;
  const uint32_t start = timer_units();
  while (*static_cast<volatile int*>(&copy_wait_claimed) != 2 && timer_units() - start < 100) {
  }
  copy_wait_trap();
}

// Copies the box at (column x, position y, slice z) of a 3-D tensor map into shared memory at dst (1024-byte
// aligned), adding its bytes to barrier bar when they land.
__device__ __forceinline__ void tma_load_3d(uint32_t dst, const void* tensor_map, int x, int y, int z, uint32_t bar) {
  asm volatile(
      "cp.async.bulk.tensor.3d.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3, %4}], [%5];\n"
      ::"r"(dst), "l"(tensor_map), "r"(x), "r"(y), "r"(z), "r"(bar)
      : "memory");
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

// d = A . B (scale_d 0) or d += A . B (scale_d 1) for a 64x128x16 product, A and B from shared memory
// (K-major, 128-byte swizzle).
__device__ __forceinline__ void wgmma_ss_m64n128k16(float (&d)[64], uint64_t desc_a, uint64_t desc_b, int scale_d) {
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %66, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 {"
      "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, "
      "%21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, "
      "%40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, "
      "%59, %60, %61, %62, %63"
      "}, %64, %65, p, 1, 1, 0, 0;\n}\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
        "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),
        "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),
        "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]),
        "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]),
        "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]),
        "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]),
        "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])
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

// O += P . V over 16 keys for head_dim D (64 or 128): N = D.
template <int D>
__device__ __forceinline__ void wgmma_pv(float (&o)[D / 2], const uint32_t (&a)[4], uint64_t desc_v) {
  if constexpr (D == 64)
    wgmma_rs_m64n64k16_trans_b(o, a, desc_v);
  else
    wgmma_rs_m64n128k16_trans_b(o, a, desc_v);
}

// The 128-key-tile steps wgmma2 and wgmma-ws share (flash_prefill_wgmma_overlap.cu, flash_prefill_wgmma_ws.cu).
// S = Q K^T for a warpgroup's 64 rows (Q at q_address, a kQRows-row panelled tile; K at k_address, a kKeys-row one):
// D / 16 SS wgmma m64n128k16, issued and committed, not waited.
template <int D, int kQRows, int kKeys>
__device__ __forceinline__ void issue_scores(float (&sc)[64], uint32_t q_address, uint32_t k_address) {
  pin(sc);  // the softmax's writes to sc come before the fence
  wgmma_fence();
#pragma unroll
  for (int kk = 0; kk < D / 16; ++kk) {
    const uint32_t panel = kk / 4, within = (kk % 4) * 32;  // 16 columns = 32 bytes
    wgmma_ss_m64n128k16(sc, descriptor(q_address + panel * kQRows * 128 + within, 16, 1024),
                        descriptor(k_address + panel * kKeys * 128 + within, 16, 1024), kk > 0 ? 1 : 0);
  }
  wgmma_commit();
}

// O = O * corr + P V (V at v_address, a kKeys-row panelled tile, N-major): the rescale, then kKeys / 16 RS wgmma,
// issued and committed, not waited.
template <int D, int kKeys>
__device__ __forceinline__ void issue_rescaled_pv(float (&o)[D / 2], uint32_t (&p)[kKeys / 16][4],
                                                  const float (&corr)[2], uint32_t v_address) {
#pragma unroll
  for (int b = 0; b < D / 8; ++b) {
    o[4 * b + 0] *= corr[0];
    o[4 * b + 1] *= corr[0];
    o[4 * b + 2] *= corr[1];
    o[4 * b + 3] *= corr[1];
  }
  pin(o);
  pin_a(p);  // the rescaled O and the P fragments are written before the fence
  wgmma_fence();
#pragma unroll
  for (int kk = 0; kk < kKeys / 16; ++kk)  // 16 keys = 2048 bytes of V
    wgmma_pv<D>(o, p[kk], descriptor(v_address + kk * 16 * 128, kKeys * 128, 1024));
  wgmma_commit();
}

// P = bf16(softmax scores), as the A fragments of the P V products.
template <int kKeys>
__device__ __forceinline__ void scores_to_bf16(const float (&sc)[kKeys / 2], uint32_t (&p)[kKeys / 16][4]) {
#pragma unroll
  for (int kk = 0; kk < kKeys / 16; ++kk) {
    p[kk][0] = tc::pack_bf16(sc[8 * kk + 0], sc[8 * kk + 1]);
    p[kk][1] = tc::pack_bf16(sc[8 * kk + 2], sc[8 * kk + 3]);
    p[kk][2] = tc::pack_bf16(sc[8 * kk + 4], sc[8 * kk + 5]);
    p[kk][3] = tc::pack_bf16(sc[8 * kk + 6], sc[8 * kk + 7]);
  }
}

#endif  // NVRAR_HAVE_WGMMA

// The epilogue of the kernels: this lane's two rows of O (the m16n8 accumulator layout, columns b * 8 + 2 *
// quad_col) divided by their softmax sums l (each summed over the lane's quad first) and stored as bf16 into the
// [rows][q_heads * D] attention output; rows at or past tile.count are not stored.
template <int D>
__device__ __forceinline__ void store_output(const float (&o)[D / 2], float (&l)[2], const PrefillTile& tile,
                                             int head, const AttentionShape& s, int row, int quad_col, bf16_t* out) {
#pragma unroll
  for (int i = 0; i < 2; ++i) {
    l[i] += __shfl_xor_sync(0xffffffffu, l[i], 1);
    l[i] += __shfl_xor_sync(0xffffffffu, l[i], 2);
    l[i] = 1.0f / l[i];
  }
  const int64_t out_cols = static_cast<int64_t>(s.q_heads) * D;
  bf16_t* out_tile = out + static_cast<int64_t>(tile.row0) * out_cols + static_cast<int64_t>(head) * D;
#pragma unroll
  for (int b = 0; b < D / 8; ++b) {
    const int col = b * 8 + 2 * quad_col;
    if (row < tile.count)
      *reinterpret_cast<uint32_t*>(out_tile + row * out_cols + col) =
          tc::pack_bf16(o[4 * b] * l[0], o[4 * b + 1] * l[0]);
    if (row + 8 < tile.count)
      *reinterpret_cast<uint32_t*>(out_tile + (row + 8) * out_cols + col) =
          tc::pack_bf16(o[4 * b + 2] * l[1], o[4 * b + 3] * l[1]);
  }
}

// Host: the entry of the Hopper kernels. Refuses other GPUs (require_wgmma_gpu) and head_dims but 64 and 128, then
// launches the head_dim's instantiation (grid tiles x q_heads, `threads`, its dynamic shared memory, whose limit it
// raises first) with the common arguments and `extra` (the TMA kernel's tensor maps); failures throw nvrar::Error
// naming the kernel setting `name` and the shape.
template <typename Kernel, typename... Extra>
void launch_prefill(const char* name, Kernel kernel_64, int shared_64, Kernel kernel_128, int shared_128, int threads,
                    const bf16_t* qkv, const PrefillTile* tiles, int64_t num_tiles, const bf16_t* cache_k,
                    const bf16_t* cache_v, const AttentionShape& s, bf16_t* out, cudaStream_t stream,
                    const Extra&... extra) {
  require_wgmma_gpu(name);
  if (num_tiles < 1) return;
  const std::string what = std::string("nvrar-llm: prefill attention ") + name + " (head_dim " +
                           std::to_string(s.head_dim);
  if (s.head_dim != 64 && s.head_dim != 128) throw Error(what + "): takes head_dim 64 or 128");
  const Kernel kernel = s.head_dim == 64 ? kernel_64 : kernel_128;
  const int shared = s.head_dim == 64 ? shared_64 : shared_128;
  const cudaError_t configured = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, shared);
  if (configured != cudaSuccess)
    throw Error(what + "): " + std::to_string(shared / 1024) + " KB of shared memory refused: " +
                cudaGetErrorString(configured));
  const PrefillGrid grid = prefill_grid(num_tiles, s, what + ")");
  kernel<<<grid.blocks, threads, shared, stream>>>(qkv, tiles, grid, cache_k, cache_v, s, out, extra...);
  const cudaError_t launched = cudaGetLastError();
  if (launched != cudaSuccess)
    throw Error(what + ", " + std::to_string(num_tiles) + " tiles x " + std::to_string(s.q_heads) +
                " heads): launch failed: " + cudaGetErrorString(launched));
}

}  // namespace nvrar::engine::gpu::wg
