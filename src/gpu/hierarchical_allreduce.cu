// Fused hierarchical all-reduce: intra-node reduce-scatter, inter-node recursive doubling, intra-node
// all-gather, in one kernel launch per call.
//
// Purpose: NVRAR's all-reduce for P = N nodes x G GPUs (virtual nodes included), bf16/fp16/fp32 with fp32
//   accumulation, bit-identical results on every rank.
// Algorithm (schedule in core/schedule.h, protocol in core/protocol.h):
//   1. reduce-scatter push: each 16-byte unit of slice s of the input is stored as four flagged cells into
//      local rank s's heap, region reduce_scatter(parity, my local rank), through its NVLink peer pointer;
//   2. per chunk of my slice: poll the G-1 peers' cells, sum in local-rank order 0..G-1 in fp32, round; then
//      across nodes: fold-in (excess node's slice), log2(N') doubling steps, fold-out, each step writing the
//      chunk's cells to the partner (direct stores through a peer pointer, or an NVSHMEM put of the cells built
//      in the staging region) and polling the partner's cells; both partners add the same two operands;
//      then push the final cells to every local peer (all_gather(parity, my local rank)) and write my output;
//   3. all-gather receive: poll every other slice's final cells and write them to the output.
//   Bulk form (calls of NVRAR_BULK_MIN_BYTES and more): phases 1 and 3 move plain 16-byte units instead of
//   cells (half the bytes); after a block's stores, each thread fences (system scope), the block synchronises,
//   and flags (one per chunk and peer) are stored with release; receivers poll the flag with one thread
//   (acquire), synchronise the block and read the units through L2. Inter-node steps always use cells.
// Launch: grid = min(chunks of the largest slice, max blocks), chunk_units threads (32..512, chosen so the
//   largest slice spreads over up to max blocks); thread t handles unit t of each
//   chunk; chunk c of every slice belongs to block c % gridDim.x on every rank, so a block only ever waits for
//   the same block index of other ranks, and in-place calls are safe (a unit is read and later written by the
//   same thread).
// Synchronisation: no barrier. Cells carry the call's epoch flag (core/protocol.h); regions are double-buffered
//   by the sequence number's parity. Each block keeps the sequence number in seq_counters[blockIdx.x] and, on
//   exit, writes it to every counter it stands for (j = blockIdx.x mod gridDim.x), so the next call sees it
//   whatever its grid size. Every poll gives up after timeout_ns, records who waited for whom in the mapped
//   ErrorRecord and raises abort_flag, which ends the other blocks' waits too.
#include "gpu/hierarchical_allreduce.h"

#include <cuda_runtime.h>

#include "core/numeric.h"
#include "core/protocol.h"

#if NVRAR_HAVE_NVSHMEM
#include <nvshmem.h>
#include <nvshmemx.h>
#endif

namespace nvrar::gpu {

namespace {

using core::Phase;
using core::Range;

// Polls check the clock and the abort flag once every this many tries: a global-timer read costs about as much
// as a poll, and 1024 tries are a few microseconds, far below any timeout.
constexpr int kPollsPerClockCheck = 1024;

__device__ __forceinline__ unsigned long long global_timer_ns() {
  unsigned long long t;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
  return t;
}

__device__ __forceinline__ void store_volatile_v4(char* p, uint32_t a, uint32_t b, uint32_t c, uint32_t d) {
  asm volatile("st.volatile.global.v4.u32 [%0], {%1, %2, %3, %4};" ::"l"(p), "r"(a), "r"(b), "r"(c), "r"(d)
               : "memory");
}

__device__ __forceinline__ uint4 load_volatile_v4(const char* p) {
  uint4 v;
  asm volatile("ld.volatile.global.v4.u32 {%0, %1, %2, %3}, [%4];"
               : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
               : "l"(p)
               : "memory");
  return v;
}

// One unit (16 bytes of payload) as four flagged cells: two 16-byte stores of {payload, flag, payload, flag}.
__device__ __forceinline__ void store_unit_cells(char* p, const uint32_t w[4], uint32_t flag) {
  store_volatile_v4(p, w[0], flag, w[1], flag);
  store_volatile_v4(p + 16, w[2], flag, w[3], flag);
}

// Element i of a unit's payload, as float.
template <typename T>
__device__ __forceinline__ float unit_get(const uint32_t w[4], int i) {
  if constexpr (sizeof(T) == 4) {
    return __uint_as_float(w[i]);
  } else {
    return core::to_float(T{static_cast<uint16_t>(w[i >> 1] >> (16 * (i & 1)))});
  }
}

template <typename T>
__device__ __forceinline__ void unit_from_floats(const float* v, uint32_t w[4]) {
  if constexpr (sizeof(T) == 4) {
#pragma unroll
    for (int i = 0; i < 4; ++i) w[i] = __float_as_uint(v[i]);
  } else {
#pragma unroll
    for (int i = 0; i < 4; ++i)
      w[i] = static_cast<uint32_t>(core::from_float<T>(v[2 * i]).bits) |
             (static_cast<uint32_t>(core::from_float<T>(v[2 * i + 1]).bits) << 16);
  }
}

// w = round(w + x), element-wise in fp32.
template <typename T>
__device__ __forceinline__ void unit_add(uint32_t w[4], const uint32_t x[4]) {
  constexpr int kElems = core::kUnitBytes / sizeof(T);
  float v[kElems];
#pragma unroll
  for (int i = 0; i < kElems; ++i) v[i] = unit_get<T>(w, i) + unit_get<T>(x, i);
  unit_from_floats<T>(v, w);
}

// Loads global unit `unit` of the input (zeros past `count`, and for unit < 0: a padding unit).
template <typename T>
__device__ __forceinline__ void load_input_unit(const T* in, int64_t count, int64_t unit, bool aligned,
                                                uint32_t w[4]) {
  constexpr int kElems = core::kUnitBytes / sizeof(T);
  w[0] = w[1] = w[2] = w[3] = 0;
  if (unit < 0) return;
  const int64_t first = unit * kElems;
  if (aligned && first + kElems <= count) {
    const uint4 v = *reinterpret_cast<const uint4*>(in + first);
    w[0] = v.x;
    w[1] = v.y;
    w[2] = v.z;
    w[3] = v.w;
    return;
  }
#pragma unroll
  for (int i = 0; i < kElems; ++i) {
    if (first + i >= count) break;
    if constexpr (sizeof(T) == 4) {
      w[i] = reinterpret_cast<const uint32_t*>(in)[first + i];
    } else {
      const uint32_t bits = reinterpret_cast<const uint16_t*>(in)[first + i];
      w[i >> 1] |= bits << (16 * (i & 1));
    }
  }
}

template <typename T>
__device__ __forceinline__ void store_output_unit(T* out, int64_t count, int64_t unit, bool aligned,
                                                  const uint32_t w[4]) {
  constexpr int kElems = core::kUnitBytes / sizeof(T);
  if (unit < 0) return;
  const int64_t first = unit * kElems;
  if (aligned && first + kElems <= count) {
    *reinterpret_cast<uint4*>(out + first) = make_uint4(w[0], w[1], w[2], w[3]);
    return;
  }
#pragma unroll
  for (int i = 0; i < kElems; ++i) {
    if (first + i >= count) break;
    if constexpr (sizeof(T) == 4) {
      reinterpret_cast<uint32_t*>(out)[first + i] = w[i];
    } else {
      reinterpret_cast<uint16_t*>(out)[first + i] = static_cast<uint16_t>(w[i >> 1] >> (16 * (i & 1)));
    }
  }
}

// Records the first timeout of the job on this rank and raises the abort flag.
__device__ void report_timeout(const HierarchicalParams& p, int peer, Phase phase, int step, int slice,
                               int64_t unit, unsigned long long seq) {
  if (atomicCAS(p.abort_flag, 0, 1) != 0) return;
  volatile ErrorRecord* e = p.error;
  e->rank = p.topo.rank;
  e->peer = peer;
  e->phase = static_cast<int>(phase);
  e->step = step;
  e->slice = slice;
  e->unit = unit;
  e->seq = seq;
  __threadfence_system();
  e->code = 1;
  __threadfence_system();
}

// Called every kPollsPerClockCheck failed polls: false once the call is aborted (here: after reporting a
// timeout that this thread detected).
__device__ __forceinline__ bool still_waiting(const HierarchicalParams& p, unsigned long long& start, int peer,
                                              Phase phase, int step, int slice, int64_t unit,
                                              unsigned long long seq) {
  if (*reinterpret_cast<volatile int*>(p.abort_flag) != 0) return false;
  const unsigned long long now = global_timer_ns();
  if (start == 0) {
    start = now;
  } else if (static_cast<long long>(now - start) > p.timeout_ns) {
    report_timeout(p, peer, phase, step, slice, unit, seq);
    return false;
  }
  return true;
}

// Polls the four cells at `addr` until all carry `flag`; false when the call was aborted (timeout here or in
// another block).
__device__ __forceinline__ bool poll_unit(const HierarchicalParams& p, const char* addr, uint32_t flag,
                                          uint32_t w[4], int peer, Phase phase, int step, int slice, int64_t unit,
                                          unsigned long long seq) {
  unsigned long long start = 0;
  for (int tries = 1;; ++tries) {
    const uint4 a = load_volatile_v4(addr);
    const uint4 b = load_volatile_v4(addr + 16);
    if (a.y == flag && a.w == flag && b.y == flag && b.w == flag) {
      w[0] = a.x;
      w[1] = a.z;
      w[2] = b.x;
      w[3] = b.z;
      return true;
    }
    if (p.poll_sleep_ns > 0 && tries > 2) __nanosleep(p.poll_sleep_ns);
    if (tries % kPollsPerClockCheck == 0 && !still_waiting(p, start, peer, phase, step, slice, unit, seq)) return false;
  }
}

// ---- bulk form: plain 16-byte units, then one flag per chunk written with release after the chunk's data ----

__device__ __forceinline__ void store_plain_v4(char* p, const uint32_t w[4]) {
  *reinterpret_cast<uint4*>(p) = make_uint4(w[0], w[1], w[2], w[3]);
}

// Reads through L2 (.cv): a peer wrote these bytes since this SM may last have cached the line.
__device__ __forceinline__ void load_l2_v4(const char* p, uint32_t w[4]) {
  const uint4 v = __ldcv(reinterpret_cast<const uint4*>(p));
  w[0] = v.x;
  w[1] = v.y;
  w[2] = v.z;
  w[3] = v.w;
}

__device__ __forceinline__ void store_flag_release(char* p, unsigned long long v) {
  asm volatile("st.release.sys.global.u64 [%0], %1;" ::"l"(p), "l"(v) : "memory");
}

__device__ __forceinline__ unsigned long long load_flag_acquire(const char* p) {
  unsigned long long v;
  asm volatile("ld.acquire.sys.global.u64 %0, [%1];" : "=l"(v) : "l"(p) : "memory");
  return v;
}

// Polls a chunk flag until it holds `flag`; false on timeout or abort (as poll_unit).
__device__ bool poll_flag(const HierarchicalParams& p, const char* addr, uint32_t flag, int peer, Phase phase,
                          int slice, int64_t chunk, unsigned long long seq) {
  unsigned long long start = 0;
  for (int tries = 1;; ++tries) {
    if (load_flag_acquire(addr) == flag) return true;
    if (tries % kPollsPerClockCheck == 0 && !still_waiting(p, start, peer, phase, 0, slice, chunk, seq)) return false;
  }
}

// Number of chunks of a slice with `chunks` chunks that this block handles (c = blockIdx.x + j * gridDim.x).
__device__ __forceinline__ int64_t block_chunk_count(int64_t chunks) {
  return chunks > blockIdx.x ? (chunks - 1 - blockIdx.x) / gridDim.x + 1 : 0;
}

struct CallState {
  unsigned long long seq;
  uint32_t flag;
  int parity;
};

// Sends this chunk's cells to the partner of inter-node `step`. All threads of the block must call it.
__device__ __forceinline__ void send_step(const HierarchicalParams& p, const CallState& cs, int step, Range chunk,
                                          bool active, int64_t u, const uint32_t w[4]) {
  const std::size_t unit_offset = static_cast<std::size_t>(u) * core::kUnitCellBytes;
  char* direct = p.inter_direct[step];
  if (direct != nullptr) {
    if (active) store_unit_cells(direct + p.layout.inter(cs.parity, step) + unit_offset, w, cs.flag);
    return;
  }
#if NVRAR_HAVE_NVSHMEM
  char* staging = p.heap + p.layout.staging(cs.parity, step);
  if (active) store_unit_cells(staging + unit_offset, w, cs.flag);
  __syncthreads();
  const std::size_t first = static_cast<std::size_t>(chunk.begin) * core::kUnitCellBytes;
  nvshmemx_putmem_nbi_block(p.heap + p.layout.inter(cs.parity, step) + first, staging + first,
                            static_cast<std::size_t>(chunk.size()) * core::kUnitCellBytes, p.inter_pe[step]);
#else
  // Setup refuses remote partners without NVSHMEM (communicator.cpp); reaching this is a bug.
  (void)chunk;
  __trap();
#endif
}

template <typename T>
__global__ void __launch_bounds__(kMaxThreadsPerBlock) hierarchical_allreduce_kernel(const HierarchicalParams p) {
  const core::Topology& t = p.topo;
  const core::CallShape& s = p.shape;
  const core::HeapLayout& h = p.layout;
  CallState cs;
  cs.seq = p.seq_counters[blockIdx.x] + 1;
  cs.flag = core::epoch_flag(cs.seq);
  cs.parity = core::epoch_parity(cs.seq);
  const T* in = static_cast<const T*>(p.in);
  T* out = static_cast<T*>(p.out);
  const bool in_aligned = (reinterpret_cast<uintptr_t>(in) & 15) == 0;
  const bool out_aligned = (reinterpret_cast<uintptr_t>(out) & 15) == 0;
  const int G = t.gpus_per_node;
  bool ok = true;
  __shared__ int s_ok;  // bulk form: cleared when the block's flag-waiting thread timed out
  if (threadIdx.x == 0) s_ok = 1;
  __syncthreads();

  // 1. Reduce-scatter push: slice sl of my input to its owner. Start at my right neighbour to spread traffic.
  for (int i = 1; i < G; ++i) {
    const int sl = (t.local + i) % G;
    char* dst = p.local_heaps[sl] + (s.bulk ? h.bulk_reduce_scatter(cs.parity, t.local) : h.reduce_scatter(cs.parity, t.local));
    const Range su = s.slice_units(sl);
    const int64_t chunks = s.num_chunks(sl);
    for (int64_t c = blockIdx.x; c < chunks; c += gridDim.x) {
      const Range ch = s.chunk(sl, c);
      const int64_t u = ch.begin + threadIdx.x;
      if (u < ch.end) {
        uint32_t w[4];
        load_input_unit(in, s.count, u < su.size() ? su.begin + u : -1, in_aligned, w);
        if (s.bulk)
          store_plain_v4(dst + static_cast<std::size_t>(u) * core::kUnitBytes, w);
        else
          store_unit_cells(dst + static_cast<std::size_t>(u) * core::kUnitCellBytes, w, cs.flag);
      }
    }
  }
  if (s.bulk) {
    // Every thread's data is visible system-wide before any flag of this block is (fence, then barrier).
    __threadfence_system();
    __syncthreads();
    for (int i = 1; i < G; ++i) {
      const int sl = (t.local + i) % G;
      char* region = p.local_heaps[sl] + h.bulk_reduce_scatter(cs.parity, t.local);
      const int64_t mine = block_chunk_count(s.num_chunks(sl));
      for (int64_t j = threadIdx.x; j < mine; j += blockDim.x)
        store_flag_release(region + (h.bulk_flag(0, blockIdx.x + j * gridDim.x)), cs.flag);
    }
  }

  // 2. My slice: reduce, inter-node steps, all-gather push.
  const Range mine = s.slice_units(t.local);
  const int64_t my_chunks = s.num_chunks(t.local);
  const int fold_peer = t.rank_of(t.fold_partner_node(), t.local);
  for (int64_t c = blockIdx.x; c < my_chunks; c += gridDim.x) {
    const Range ch = s.chunk(t.local, c);
    const int64_t u = ch.begin + threadIdx.x;
    const bool active = u < ch.end;
    const std::size_t unit_offset = static_cast<std::size_t>(u) * core::kUnitCellBytes;
    const int64_t my_unit = u < mine.size() ? mine.begin + u : -1;
    uint32_t part[4] = {0, 0, 0, 0};
    if (s.bulk) {  // one thread waits for the G-1 peers' flags of this chunk, the block reads after the barrier
      if (threadIdx.x == 0)
        for (int src = 0; src < G && s_ok; ++src)
          if (src != t.local && !poll_flag(p, p.heap + h.bulk_flag(h.bulk_reduce_scatter(cs.parity, src), c), cs.flag,
                                           t.rank_of(t.node, src), Phase::kReduceScatter, t.local, c, cs.seq))
            s_ok = 0;
      __syncthreads();
      ok = ok && s_ok;
    }
    if (active) {
      constexpr int kElems = core::kUnitBytes / sizeof(T);
      float acc[kElems];
#pragma unroll
      for (int e = 0; e < kElems; ++e) acc[e] = 0.0f;
      for (int src = 0; src < G; ++src) {
        uint32_t w[4];
        if (src == t.local) {
          load_input_unit(in, s.count, my_unit, in_aligned, w);
        } else if (s.bulk) {
          load_l2_v4(p.heap + h.bulk_reduce_scatter(cs.parity, src) + static_cast<std::size_t>(u) * core::kUnitBytes, w);
        } else if (ok) {
          ok = poll_unit(p, p.heap + h.reduce_scatter(cs.parity, src) + unit_offset, cs.flag, w, t.rank_of(t.node, src),
                         Phase::kReduceScatter, 0, t.local, u, cs.seq);
        }
#pragma unroll
        for (int e = 0; e < kElems; ++e) acc[e] += unit_get<T>(w, e);
      }
      unit_from_floats<T>(acc, part);
    }

    if (t.nodes > 1) {
      if (t.is_excess_node()) {
        send_step(p, cs, core::fold_in_step(), ch, active, u, part);
        if (active && ok)
          ok = poll_unit(p, p.heap + h.inter(cs.parity, core::fold_out_step(t)) + unit_offset, cs.flag, part,
                         fold_peer, Phase::kFoldOut, 0, t.local, u, cs.seq);
      } else {
        uint32_t w[4];
        if (t.has_fold_partner() && active && ok) {
          ok = poll_unit(p, p.heap + h.inter(cs.parity, core::fold_in_step()) + unit_offset, cs.flag, w, fold_peer,
                         Phase::kFoldIn, 0, t.local, u, cs.seq);
          unit_add<T>(part, w);
        }
        for (int k = 0; k < t.doubling_steps; ++k) {
          const int step = core::doubling_step_index(k);
          send_step(p, cs, step, ch, active, u, part);
          if (active && ok) {
            ok = poll_unit(p, p.heap + h.inter(cs.parity, step) + unit_offset, cs.flag, w,
                           t.rank_of(t.doubling_partner_node(k), t.local), Phase::kDoubling, k, t.local, u, cs.seq);
            unit_add<T>(part, w);
          }
        }
        if (t.has_fold_partner()) send_step(p, cs, core::fold_out_step(t), ch, active, u, part);
      }
    }

    if (active) {
      for (int i = 1; i < G; ++i) {
        const int l = (t.local + i) % G;
        if (s.bulk)
          store_plain_v4(p.local_heaps[l] + h.bulk_all_gather(cs.parity, t.local) + static_cast<std::size_t>(u) * core::kUnitBytes,
                         part);
        else
          store_unit_cells(p.local_heaps[l] + h.all_gather(cs.parity, t.local) + unit_offset, part, cs.flag);
      }
      store_output_unit(out, s.count, my_unit, out_aligned, part);
    }
    if (s.bulk) {
      __threadfence_system();
      __syncthreads();
      if (threadIdx.x < G - 1) {
        const int l = (t.local + 1 + threadIdx.x) % G;
        store_flag_release(p.local_heaps[l] + h.bulk_flag(h.bulk_all_gather(cs.parity, t.local), c), cs.flag);
      }
    }
  }

  // 3. All-gather receive: every other slice from its owner.
  if (s.bulk) {
    for (int i = 1; i < G; ++i) {
      const int sl = (t.local + G - i) % G;
      const char* region = p.heap + h.bulk_all_gather(cs.parity, sl);
      const Range su = s.slice_units(sl);
      const int64_t chunks = s.num_chunks(sl);
      for (int64_t c = blockIdx.x; c < chunks; c += gridDim.x) {
        if (threadIdx.x == 0 && s_ok &&
            !poll_flag(p, region + h.bulk_flag(0, c), cs.flag, t.rank_of(t.node, sl), Phase::kAllGather, sl, c, cs.seq))
          s_ok = 0;
        __syncthreads();
        const Range ch = s.chunk(sl, c);
        const int64_t u = ch.begin + threadIdx.x;
        if (s_ok && u < ch.end) {
          uint32_t w[4];
          load_l2_v4(region + static_cast<std::size_t>(u) * core::kUnitBytes, w);
          store_output_unit(out, s.count, u < su.size() ? su.begin + u : -1, out_aligned, w);
        }
      }
    }
  }
  for (int i = 1; i < G && ok && !s.bulk; ++i) {
    const int sl = (t.local + G - i) % G;
    const Range su = s.slice_units(sl);
    const int64_t chunks = s.num_chunks(sl);
    for (int64_t c = blockIdx.x; c < chunks && ok; c += gridDim.x) {
      const Range ch = s.chunk(sl, c);
      const int64_t u = ch.begin + threadIdx.x;
      if (u < ch.end) {
        uint32_t w[4];
        ok = poll_unit(p, p.heap + h.all_gather(cs.parity, sl) + static_cast<std::size_t>(u) * core::kUnitCellBytes,
                       cs.flag, w, t.rank_of(t.node, sl), Phase::kAllGather, 0, sl, u, cs.seq);
        if (ok) store_output_unit(out, s.count, u < su.size() ? su.begin + u : -1, out_aligned, w);
      }
    }
  }

  if (threadIdx.x == 0)
    for (int j = blockIdx.x; j < kMaxBlocks; j += gridDim.x) p.seq_counters[j] = cs.seq;
}

}  // namespace

int hierarchical_chunk_units(int64_t slice_units, int max_blocks, int forced) {
  int64_t units = forced > 0 ? forced : core::ceil_div(slice_units, max_blocks);
  units = core::ceil_div(units, kMinChunkUnits) * kMinChunkUnits;
  if (units < kMinChunkUnits) units = kMinChunkUnits;
  if (units > kMaxThreadsPerBlock) units = kMaxThreadsPerBlock;
  return static_cast<int>(units);
}

int hierarchical_blocks(const core::CallShape& shape, int max_blocks) {
  const int64_t chunks = shape.max_chunks();
  const int limit = max_blocks < kMaxBlocks ? max_blocks : kMaxBlocks;
  return static_cast<int>(chunks < limit ? chunks : limit);
}

cudaError_t launch_hierarchical(const HierarchicalParams& params, DataType dtype, int blocks, cudaStream_t stream) {
  const int threads = static_cast<int>(params.shape.chunk_units);
  switch (dtype) {
    case DataType::kFloat32:
      hierarchical_allreduce_kernel<float><<<blocks, threads, 0, stream>>>(params);
      break;
    case DataType::kBFloat16:
      hierarchical_allreduce_kernel<core::Bf16><<<blocks, threads, 0, stream>>>(params);
      break;
    case DataType::kFloat16:
      hierarchical_allreduce_kernel<core::Fp16><<<blocks, threads, 0, stream>>>(params);
      break;
  }
  return cudaGetLastError();
}

}  // namespace nvrar::gpu
