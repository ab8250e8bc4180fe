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
//   cells (half the bytes); after a block's stores the block synchronises and one thread per peer publishes that
//   peer's flags (one per chunk) at system scope (dev::signal_flags, NVRAR_BULK_SYNC picks release stores or one
//   fence + relaxed stores); on the receiving side thread i waits for peer i's flag, the block synchronises and
//   reads the units through L2. Inter-node steps always use cells.
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
#include "gpu/algorithms/hierarchical.h"

#include <cuda_runtime.h>

#include "core/numeric.h"
#include "core/protocol.h"
#include "gpu/device/device_units.cuh"
#include "gpu/device/element_type.cuh"

#if NVRAR_HAVE_NVSHMEM
#include <nvshmem.h>
#include <nvshmemx.h>
#endif

namespace nvrar::gpu {

namespace {

using core::Phase;
using core::Range;
using dev::load_l2_v4;
using dev::load_unit;
using dev::poll_unit;
using dev::store_plain_v4;
using dev::store_unit;
using dev::store_unit_cells;
using dev::WaitSite;

// Number of chunks of a slice with `chunks` chunks that this block handles (c = blockIdx.x + j * gridDim.x).
__device__ __forceinline__ int64_t block_chunk_count(int64_t chunks) {
  return chunks > blockIdx.x ? (chunks - 1 - blockIdx.x) / gridDim.x + 1 : 0;
}

// Sends this chunk's cells to the partner of inter-node `step`. All threads of the block must call it.
__device__ __forceinline__ void send_step(const HierarchicalParams& p, const dev::Epoch& cs, int step, Range chunk,
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
  const WaitContext& wc = p.common.wait;
  const dev::Epoch cs = dev::begin_epoch(p.seq_counters);
  const T* in = static_cast<const T*>(p.in);
  T* out = static_cast<T*>(p.out);
  const bool in_aligned = dev::is_aligned16(in);
  const bool out_aligned = dev::is_aligned16(out);
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
        load_unit(in, s.count, u < su.size() ? su.begin + u : -1, in_aligned, w);
        if (s.bulk)
          store_plain_v4(dst + static_cast<std::size_t>(u) * core::kUnitBytes, w);
        else
          store_unit_cells(dst + static_cast<std::size_t>(u) * core::kUnitCellBytes, w, cs.flag);
      }
    }
  }
  if (s.bulk) {
    // The block's data stores, then one thread per peer releases that peer's flags (system scope): the barrier
    // orders every thread's stores before the release, which makes them visible before the flag.
    __syncthreads();
    if (threadIdx.x < G - 1) {
      const int sl = (t.local + 1 + threadIdx.x) % G;
      char* region = p.local_heaps[sl] + h.bulk_reduce_scatter(cs.parity, t.local);
      dev::signal_flags(
          p.bulk_sync, block_chunk_count(s.num_chunks(sl)),
          [&](int64_t j) { return region + h.bulk_flag(0, blockIdx.x + j * gridDim.x); }, cs.flag);
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
    auto site = [my_local = t.local, u, seq = cs.seq](int peer, Phase phase, int step) {
      return [=] { return WaitSite{peer, phase, step, my_local, u, seq}; };
    };
    uint32_t part[4] = {0, 0, 0, 0};
    if (s.bulk) {  // thread i waits for peer i's flag of this chunk; the block reads after the barrier
      if (threadIdx.x < G - 1) {
        const int src = (t.local + 1 + threadIdx.x) % G;
        const int peer = t.rank_of(t.node, src);
        if (!dev::wait_flag(wc, p.bulk_sync, p.heap + h.bulk_flag(h.bulk_reduce_scatter(cs.parity, src), c), cs.flag,
                            [&] { return WaitSite{peer, Phase::kReduceScatter, 0, t.local, c, cs.seq}; }))
          s_ok = 0;
      }
      __syncthreads();
      ok = ok && s_ok;
    }
    if (active) {
      float acc[dev::elems_per_unit<T>()] = {};
      for (int src = 0; src < G; ++src) {
        uint32_t w[4] = {0, 0, 0, 0};
        if (src == t.local) {
          load_unit(in, s.count, my_unit, in_aligned, w);
        } else if (s.bulk) {
          load_l2_v4(p.heap + h.bulk_reduce_scatter(cs.parity, src) + static_cast<std::size_t>(u) * core::kUnitBytes, w);
        } else if (ok) {
          ok = poll_unit(wc, p.heap + h.reduce_scatter(cs.parity, src) + unit_offset, cs.flag, w,
                         site(t.rank_of(t.node, src), Phase::kReduceScatter, 0));
        }
        dev::unit_accumulate<T>(acc, w);
      }
      dev::unit_from_floats<T>(acc, part);
    }

    if (t.nodes > 1) {
      if (t.is_excess_node()) {
        send_step(p, cs, core::fold_in_step(), ch, active, u, part);
        if (active && ok)
          ok = poll_unit(wc, p.heap + h.inter(cs.parity, core::fold_out_step(t)) + unit_offset, cs.flag, part,
                         site(fold_peer, Phase::kFoldOut, 0));
      } else {
        uint32_t w[4];
        if (t.has_fold_partner() && active && ok) {
          ok = poll_unit(wc, p.heap + h.inter(cs.parity, core::fold_in_step()) + unit_offset, cs.flag, w,
                         site(fold_peer, Phase::kFoldIn, 0));
          dev::unit_add<T>(part, w);
        }
        for (int k = 0; k < t.doubling_steps; ++k) {
          const int step = core::doubling_step_index(k);
          send_step(p, cs, step, ch, active, u, part);
          if (active && ok) {
            ok = poll_unit(wc, p.heap + h.inter(cs.parity, step) + unit_offset, cs.flag, w,
                           site(t.rank_of(t.doubling_partner_node(k), t.local), Phase::kDoubling, k));
            dev::unit_add<T>(part, w);
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
      store_unit(out, s.count, my_unit, out_aligned, part);
    }
    if (s.bulk) {  // as after phase 1: barrier, then one thread per peer publishes the chunk's flag
      __syncthreads();
      if (threadIdx.x < G - 1) {
        char* flag = p.local_heaps[(t.local + 1 + threadIdx.x) % G] + h.bulk_flag(h.bulk_all_gather(cs.parity, t.local), c);
        dev::signal_flags(p.bulk_sync, 1, [&](int64_t) { return flag; }, cs.flag);
      }
    }
  }

  // 3. All-gather receive: every other slice from its owner.
  if (s.bulk) {  // per chunk index: thread i waits for slice (local + 1 + i)'s flag, then the block copies them all
    for (int64_t c = blockIdx.x; c < s.max_chunks(); c += gridDim.x) {
      if (threadIdx.x < G - 1 && s_ok) {
        const int sl = (t.local + 1 + threadIdx.x) % G;
        const int peer = t.rank_of(t.node, sl);
        if (c < s.num_chunks(sl) &&
            !dev::wait_flag(wc, p.bulk_sync, p.heap + h.bulk_flag(h.bulk_all_gather(cs.parity, sl), c), cs.flag,
                            [&] { return WaitSite{peer, Phase::kAllGather, 0, sl, c, cs.seq}; }))
          s_ok = 0;
      }
      __syncthreads();
      for (int i = 1; i < G && s_ok; ++i) {
        const int sl = (t.local + i) % G;
        if (c >= s.num_chunks(sl)) continue;
        const Range su = s.slice_units(sl);
        const Range ch = s.chunk(sl, c);
        const int64_t u = ch.begin + threadIdx.x;
        if (u < ch.end) {
          uint32_t w[4];
          load_l2_v4(p.heap + h.bulk_all_gather(cs.parity, sl) + static_cast<std::size_t>(u) * core::kUnitBytes, w);
          store_unit(out, s.count, u < su.size() ? su.begin + u : -1, out_aligned, w);
        }
      }
    }
  }
  for (int i = 1; i < G && ok && !s.bulk; ++i) {
    const int sl = (t.local + G - i) % G;
    const Range su = s.slice_units(sl);
    const int64_t chunks = s.num_chunks(sl);
    const int peer = t.rank_of(t.node, sl);
    for (int64_t c = blockIdx.x; c < chunks && ok; c += gridDim.x) {
      const Range ch = s.chunk(sl, c);
      const int64_t u = ch.begin + threadIdx.x;
      if (u < ch.end) {
        uint32_t w[4];
        ok = poll_unit(wc, p.heap + h.all_gather(cs.parity, sl) + static_cast<std::size_t>(u) * core::kUnitCellBytes,
                       cs.flag, w, [&] { return WaitSite{peer, Phase::kAllGather, 0, sl, u, cs.seq}; });
        if (ok) store_unit(out, s.count, u < su.size() ? su.begin + u : -1, out_aligned, w);
      }
    }
  }

  dev::end_sequence(p.seq_counters, kMaxBlocks, cs.seq);
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
  return dev::with_element_type(dtype, cudaErrorInvalidValue, [&](auto t) {
    using T = typename decltype(t)::type;
    return dev::launch_kernel(hierarchical_allreduce_kernel<T>, blocks, threads, stream, params.common.pdl, params);
  });
}

}  // namespace nvrar::gpu
