// One-shot all-reduce over NVLink peers, and its fused form with residual add + RMSNorm.
//
// Purpose: the lowest-latency all-reduce for small messages on one NVLink domain (all P ranks load/store
//   reachable): one exchange instead of reduce-scatter + all-gather, no barrier.
// Algorithm: every rank pushes its whole input as flagged cells (core/protocol.h) into slot (parity, my rank) of
//   every peer's one-shot area; then each rank polls the P-1 slots of its own area and sums unit by unit in rank
//   order 0..P-1 in fp32 (its own input read locally), so every rank computes the same bits. Bytes out per GPU:
//   2 x (P-1) x message (cells carry a 4-byte flag per 4 bytes of payload); the tuner hands larger messages to the
//   two-shot (hierarchical) kernel.
// Fused form (rows > 0): block b owns rows b, b + gridDim.x, ...; it pushes its rows' units, then polls and sums
//   them, adds the residual and applies RMSNorm (rmsnorm.cuh). Since a row is pushed and consumed by the same block,
//   the input may alias the residual or the output.
// Launch: plain form: grid-stride over units, any grid; fused form: at most one block per row, threads a multiple
//   of 32.
// Synchronisation: none beyond the cells' epoch flags. The exchange area is double-buffered by the sequence
//   number's parity; every pair of ranks exchanges at least one unit each way per call (the argument of
//   core/protocol.h). Per-block sequence numbers as in device_units.cuh; each poll times out (WaitContext).
#include "gpu/algorithms/oneshot.h"

#include <cuda_runtime.h>

#include "core/numeric.h"
#include "core/protocol.h"
#include "gpu/device/device_units.cuh"
#include "gpu/device/element_type.cuh"
#include "gpu/device/rmsnorm.cuh"

namespace nvrar::gpu {

namespace {

using dev::Epoch;
using dev::WaitSite;

// Pushes unit u of my input to every peer, starting at my right neighbour to spread the traffic.
template <typename T>
__device__ __forceinline__ void push_unit(const OneShotParams& p, const Epoch& e, const T* in, bool aligned,
                                          int64_t u) {
  uint32_t w[4];
  dev::load_unit(in, p.count, u, aligned, w);
  const std::size_t offset = p.layout.slot(e.parity, p.common.rank) + static_cast<std::size_t>(u) * core::kUnitCellBytes;
  for (int i = 1; i < p.common.ranks; ++i) {
    const int dst = (p.common.rank + i) % p.common.ranks;
    dev::store_unit_cells(p.heaps[dst] + offset, w, e.flag);
  }
}

// Sum of unit u over all ranks in rank order, rounded to T; false when the call was aborted.
template <typename T>
__device__ __forceinline__ bool gather_sum_unit(const OneShotParams& p, const Epoch& e, const T* in, bool aligned,
                                                int64_t u, uint32_t sum[4]) {
  float acc[dev::elems_per_unit<T>()] = {};
  const char* mine = p.heaps[p.common.rank];
  for (int src = 0; src < p.common.ranks; ++src) {
    uint32_t w[4];
    if (src == p.common.rank) {
      dev::load_unit(in, p.count, u, aligned, w);
    } else {
      const char* cell = mine + p.layout.slot(e.parity, src) + static_cast<std::size_t>(u) * core::kUnitCellBytes;
      if (!dev::poll_unit(p.common.wait, cell, e.flag, w, [&] {
            return WaitSite{src, core::Phase::kOneShot, 0, src, u, e.seq};
          }))
        return false;
    }
    dev::unit_accumulate<T>(acc, w);
  }
  dev::unit_from_floats<T>(acc, sum);
  return true;
}

template <typename T>
__global__ void __launch_bounds__(kOneShotMaxThreads) oneshot_allreduce_kernel(const OneShotParams p) {
  const Epoch e = dev::begin_epoch(p.seq_counters);
  const T* in = static_cast<const T*>(p.in);
  T* out = static_cast<T*>(p.out);
  const bool in_aligned = dev::is_aligned16(in);
  const bool out_aligned = dev::is_aligned16(out);
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  const int64_t first = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  for (int64_t u = first; u < p.units; u += stride) push_unit(p, e, in, in_aligned, u);
  // Each unit is read (push, then sum) and written by the same thread: in == out is safe.
  for (int64_t u = first; u < p.units; u += stride) {
    uint32_t sum[4];
    if (!gather_sum_unit(p, e, in, in_aligned, u, sum)) break;
    dev::store_unit(out, p.count, u, out_aligned, sum);
  }
  dev::end_sequence(p.seq_counters, kMaxOneShotBlocks, e.seq);
}

template <typename T>
__global__ void __launch_bounds__(kOneShotMaxThreads) oneshot_rmsnorm_kernel(const OneShotParams p) {
  const Epoch e = dev::begin_epoch(p.seq_counters);
  const T* in = static_cast<const T*>(p.in);
  const bool in_aligned = dev::is_aligned16(in);
  const int64_t row_units = p.hidden / dev::elems_per_unit<T>();
  for (int64_t row = blockIdx.x; row < p.rows; row += gridDim.x) {
    const int64_t base = row * row_units;
    for (int64_t j = threadIdx.x; j < row_units; j += blockDim.x) push_unit(p, e, in, in_aligned, base + j);
    __syncthreads();  // the row's input is read (pushed) before any thread overwrites an aliased residual/output
    const bool ok = dev::residual_rmsnorm_row<T>(
        row, p.hidden, [&](int64_t j, uint32_t y[4]) { return gather_sum_unit(p, e, in, in_aligned, base + j, y); },
        static_cast<T*>(p.residual), static_cast<const T*>(p.weight), static_cast<T*>(p.out), p.eps);
    if (!ok) break;
  }
  dev::end_sequence(p.seq_counters, kMaxOneShotBlocks, e.seq);
}

}  // namespace

cudaError_t launch_oneshot(const OneShotParams& params, DataType dtype, int blocks, int threads, cudaStream_t stream) {
  return dev::with_element_type(dtype, cudaErrorInvalidValue, [&](auto t) {
    using T = typename decltype(t)::type;
    return dev::launch_kernel(oneshot_allreduce_kernel<T>, blocks, threads, stream, params.common.pdl, params);
  });
}

cudaError_t launch_oneshot_rmsnorm(const OneShotParams& params, DataType dtype, int blocks, int threads,
                                   cudaStream_t stream) {
  return dev::with_element_type(dtype, cudaErrorInvalidValue, [&](auto t) {
    using T = typename decltype(t)::type;
    return dev::launch_kernel(oneshot_rmsnorm_kernel<T>, blocks, threads, stream, params.common.pdl, params);
  });
}

}  // namespace nvrar::gpu
