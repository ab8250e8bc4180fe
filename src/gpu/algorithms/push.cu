// Plain-data push two-shot all-reduce over NVLink peers (Algorithm::kPush).
//
// Purpose: the two-shot all-reduce for large messages on inputs and outputs anywhere in device memory, at the
//   NVLink bandwidth of the registered two-shot. The LL128 two-shot carries 8 flag bytes in every 128-byte line
//   (6% of NVLink's bandwidth where a message is bandwidth-bound); here the data travels as plain 16-byte units and
//   one flag per piece (8 KB by default) says that the piece has arrived (NCCL's "Simple" protocol is the same idea).
// Algorithm (P ranks, the message cut into P slices of 16-byte units, slice s owned by rank s, each slice cut into
//   pieces of piece_units units; piece x of every slice belongs to warp x mod W of every rank, W warps per grid):
//   A. push piece x: load the units of piece x of every other slice o from my input (slice me + 1 first, so that the
//      ranks' first stores spread over all GPUs) and store them into my reduce-scatter slot in rank o's area; then
//      release rank o's flag (slot, x) with the call's sequence number.
//   B. reduce piece x of my slice: lane k < P - 1 waits for the flag of slot k (rank me + 1 + k); the warp loads the
//      piece from my input and the P - 1 slots, sums in fp32 in rank order 0..P-1 (only the owner sums, so every rank
//      gets the same bits), stores the sum into my output and into my all-gather slot in every peer's area; then
//      releases each peer's all-gather flag (slot, x).
//   C. gather piece x of the other slices: lane k waits for all-gather flag (k, x) and the warp copies the piece of
//      slice me + 1 + k from the slot into my output.
//   A warp runs its pieces x_0, x_1, ... software-pipelined: step i does A(x_i), B(x_(i-1)), C(x_(i-2)), so its waits
//   are for work peers did a step earlier and a piece's local copy (C) overlaps later pieces' NVLink traffic.
// Launch: blocks x threads (multiple of 32, <= kPushMaxThreads), every block resident at once (the communicator caps
//   the grid at push_resident_blocks()); the grid may differ between ranks, the piece size may not (it places the
//   data and names the flags). Templated on the element type and P.
// Sync: per-block sequence numbers as in device_units.cuh; a piece's stores are ordered before its flag by a warp
//   barrier and a release store at system scope (st.release.sys); a waiter polls with acquire loads, then a warp
//   barrier orders the other lanes' loads (through L2, ld.cv) after it. Deadlock-free: a warp's pieces come in
//   increasing order and its waits at piece x are for the peers' work on pieces up to x, which their warps reach
//   after waits for smaller pieces only (A never waits): induction on the piece. One buffer, no parity: rank r
//   writes slot data of call n + 1 only after its call n ended, which needed every peer's all-gather flags of call
//   n, released after that peer had read r's reduce-scatter slots of call n; and a peer writes r's all-gather slot
//   of piece x in call n + 1 only after r's reduce-scatter flag of x in call n + 1, sent after r's call n (which read
//   that slot) had ended. In place
//   (in == out) is safe: a lane reads its units of a piece's input (A or B) before it writes their output (B or C,
//   same lane, later in program order). Waits time out (WaitContext).
#include "gpu/algorithms/push.h"

#include <cuda_runtime.h>

#include <algorithm>

#include "core/numeric.h"
#include "core/protocol.h"
#include "core/schedule.h"
#include "gpu/device/device_units.cuh"
#include "gpu/device/element_type.cuh"

namespace nvrar::gpu {

namespace {

using dev::WaitSite;
constexpr int kReduceLag = 1;  // step i reduces the piece pushed at step i - kReduceLag
constexpr int kGatherLag = 2;  // and gathers the piece pushed at step i - kGatherLag

// Units [begin, end) of piece x of slice s, and the slice's first unit; empty where the slice is shorter.
struct Piece {
  int64_t slice_begin;
  int64_t begin;
  int64_t end;
  __device__ bool empty() const { return begin >= end; }
};

template <int kRanks>
__device__ __forceinline__ Piece piece_of(const PushParams& p, int s, int64_t x) {
  const int64_t sb = push_slice_begin(p.units, kRanks, s), se = push_slice_begin(p.units, kRanks, s + 1);
  const int64_t b = sb + x * p.piece_units;
  return Piece{sb, b < se ? b : se, b + p.piece_units < se ? b + p.piece_units : se};
}

// Warp-collective: each lane waits for the flag at `flag` (nullptr: nothing to wait for) to carry seq, then a warp
// barrier orders every lane's later loads after those acquires. False when the call was aborted.
template <typename MakeSite>
__device__ __forceinline__ bool warp_wait(const WaitContext& wc, const char* flag, unsigned long long seq,
                                          MakeSite make_site) {
  bool ok = true;
  if (flag != nullptr) ok = dev::wait_flag(wc, dev::kReleaseAcquire, flag, seq, make_site);
  ok = __all_sync(0xffffffffu, ok);
  __syncwarp();
  return ok;
}

// A piece's units through one lane's rounds: each lane loads its kPushUnitsPerLane units of a round (load(u, w)),
// all in flight together, then stores them (store(u, w)).
template <typename Load, typename Store>
__device__ __forceinline__ void copy_piece(const Piece& pc, int lane, Load load, Store store) {
  for (int64_t base = pc.begin; base < pc.end; base += kPushRoundUnits) {
    uint32_t w[kPushUnitsPerLane][4];
#pragma unroll
    for (int v = 0; v < kPushUnitsPerLane; ++v) {
      const int64_t u = base + lane + 32 * v;
      if (u < pc.end) load(u, w[v]);
    }
#pragma unroll
    for (int v = 0; v < kPushUnitsPerLane; ++v) {
      const int64_t u = base + lane + 32 * v;
      if (u < pc.end) store(u, w[v]);
    }
  }
}

// A: piece x of every other slice from my input into its owner's reduce-scatter slot, then the owners' flags.
template <typename T, int kRanks>
__device__ __forceinline__ void push_piece(const PushParams& p, const T* in, bool in_aligned, int64_t x, int lane,
                                           unsigned long long seq) {
  const int me = p.common.rank;
#pragma unroll 1
  for (int i = 1; i < kRanks; ++i) {
    const int o = (me + i) % kRanks;
    const Piece pc = piece_of<kRanks>(p, o, x);
    char* slot = p.areas[o] + p.layout.reduce_scatter(push_slot(o, me, kRanks), 0);
    copy_piece(
        pc, lane, [&](int64_t u, uint32_t w[4]) { dev::load_unit(in, p.count, u, in_aligned, w); },
        [&](int64_t u, const uint32_t w[4]) { dev::store_plain_v4(slot + (u - pc.slice_begin) * 16, w); });
  }
  __syncwarp();  // every lane's stores before the release below (cumulativity through the barrier)
  if (lane < kRanks - 1) {
    const int o = (me + 1 + lane) % kRanks;
    if (!piece_of<kRanks>(p, o, x).empty())
      dev::store_flag_release(p.areas[o] + p.layout.reduce_scatter_flag(push_slot(o, me, kRanks), x), seq);
  }
}

// B: wait for the peers' shares of piece x of my slice, sum, store into my output and every peer's all-gather slot.
template <typename T, int kRanks>
__device__ __forceinline__ bool reduce_piece(const PushParams& p, const T* in, bool in_aligned, T* out,
                                             bool out_aligned, int64_t x, int lane, unsigned long long seq) {
  const int me = p.common.rank;
  const Piece pc = piece_of<kRanks>(p, me, x);
  if (pc.empty()) return true;
  const char* mine = p.areas[me];
  const char* flag = lane < kRanks - 1 ? mine + p.layout.reduce_scatter_flag(lane, x) : nullptr;
  if (!warp_wait(p.common.wait, flag, seq, [&] {
        return WaitSite{(me + 1 + lane) % kRanks, core::Phase::kPushReduceScatter, 0, me, x, seq};
      }))
    return false;
  // Indexed only with unrolled constants (registers, no local-memory array): from[r] is rank r's share of my slice
  // (r != me), to[i] my all-gather slot in the area of rank me + 1 + i.
  const char* from[kRanks];
  char* to[kRanks > 1 ? kRanks - 1 : 1];
#pragma unroll
  for (int r = 0; r < kRanks; ++r)
    from[r] = r == me ? nullptr : mine + p.layout.reduce_scatter(push_slot(me, r, kRanks), 0);
#pragma unroll
  for (int i = 0; i < kRanks - 1; ++i) {
    const int r = (me + 1 + i) % kRanks;
    to[i] = p.areas[r] + p.layout.all_gather(push_slot(r, me, kRanks), 0);
  }
  constexpr int kElems = dev::elems_per_unit<T>();
  for (int64_t base = pc.begin; base < pc.end; base += kPushRoundUnits) {
    float acc[kPushUnitsPerLane][kElems] = {};
#pragma unroll
    for (int r = 0; r < kRanks; ++r) {
      uint32_t w[kPushUnitsPerLane][4];
#pragma unroll
      for (int v = 0; v < kPushUnitsPerLane; ++v) {
        const int64_t u = base + lane + 32 * v;
        w[v][0] = w[v][1] = w[v][2] = w[v][3] = 0;
        if (u < pc.end) {
          if (r == me)
            dev::load_unit(in, p.count, u, in_aligned, w[v]);
          else
            dev::load_l2_v4(from[r] + (u - pc.slice_begin) * 16, w[v]);
        }
      }
#pragma unroll
      for (int v = 0; v < kPushUnitsPerLane; ++v) dev::unit_accumulate<T>(acc[v], w[v]);
    }
#pragma unroll
    for (int v = 0; v < kPushUnitsPerLane; ++v) {
      const int64_t u = base + lane + 32 * v;
      if (u >= pc.end) continue;
      uint32_t sum[4];
      dev::unit_from_floats<T>(acc[v], sum);
#pragma unroll
      for (int i = 0; i < kRanks - 1; ++i) dev::store_plain_v4(to[i] + (u - pc.slice_begin) * 16, sum);
      dev::store_unit(out, p.count, u, out_aligned, sum);
    }
  }
  __syncwarp();
  if (lane < kRanks - 1) {
    const int r = (me + 1 + lane) % kRanks;
    dev::store_flag_release(p.areas[r] + p.layout.all_gather_flag(push_slot(r, me, kRanks), x), seq);
  }
  return true;
}

// C: wait for the owners' sums of piece x of the other slices and copy them into my output.
template <typename T, int kRanks>
__device__ __forceinline__ bool gather_piece(const PushParams& p, T* out, bool out_aligned, int64_t x, int lane,
                                             unsigned long long seq) {
  const int me = p.common.rank;
  const char* mine = p.areas[me];
  const char* flag = nullptr;
  if (lane < kRanks - 1 && !piece_of<kRanks>(p, (me + 1 + lane) % kRanks, x).empty())
    flag = mine + p.layout.all_gather_flag(lane, x);
  if (!warp_wait(p.common.wait, flag, seq, [&] {
        const int owner = (me + 1 + lane) % kRanks;
        return WaitSite{owner, core::Phase::kPushAllGather, 0, owner, x, seq};
      }))
    return false;
#pragma unroll 1
  for (int k = 0; k < kRanks - 1; ++k) {
    const Piece pc = piece_of<kRanks>(p, (me + 1 + k) % kRanks, x);
    const char* slot = mine + p.layout.all_gather(k, 0);
    copy_piece(
        pc, lane, [&](int64_t u, uint32_t w[4]) { dev::load_l2_v4(slot + (u - pc.slice_begin) * 16, w); },
        [&](int64_t u, const uint32_t w[4]) { dev::store_unit(out, p.count, u, out_aligned, w); });
  }
  return true;
}

template <typename T, int kRanks>
__global__ void __launch_bounds__(kPushMaxThreads) push_allreduce_kernel(const PushParams p) {
  const unsigned long long seq = dev::begin_sequence(p.seq_counters);
  const T* in = static_cast<const T*>(p.in);
  T* out = static_cast<T*>(p.out);
  const bool in_aligned = dev::is_aligned16(in);
  const bool out_aligned = dev::is_aligned16(out);
  const int lane = threadIdx.x % 32;
  const int64_t warps = static_cast<int64_t>(gridDim.x) * (blockDim.x / 32);
  const int64_t warp = static_cast<int64_t>(blockIdx.x) * (blockDim.x / 32) + threadIdx.x / 32;
  const int64_t slice_max = (p.units + kRanks - 1) / kRanks;
  const int64_t pieces = (slice_max + p.piece_units - 1) / p.piece_units;  // of the largest slice
  const int64_t my_pieces = warp < pieces ? (pieces - 1 - warp) / warps + 1 : 0;
  bool ok = true;
  for (int64_t i = 0; ok && i < my_pieces + kGatherLag; ++i) {
    if (i < my_pieces) push_piece<T, kRanks>(p, in, in_aligned, warp + i * warps, lane, seq);
    const int64_t r = i - kReduceLag, g = i - kGatherLag;
    if (r >= 0 && r < my_pieces)
      ok = reduce_piece<T, kRanks>(p, in, in_aligned, out, out_aligned, warp + r * warps, lane, seq);
    if (ok && g >= 0) ok = gather_piece<T, kRanks>(p, out, out_aligned, warp + g * warps, lane, seq);
  }
  dev::end_sequence(p.seq_counters, kMaxPushBlocks, seq);
}

using PushKernel = void (*)(PushParams);

template <typename T>
PushKernel kernel_for(int ranks) {
  switch (ranks) {
    case 1: return push_allreduce_kernel<T, 1>;
    case 2: return push_allreduce_kernel<T, 2>;
    case 3: return push_allreduce_kernel<T, 3>;
    case 4: return push_allreduce_kernel<T, 4>;
    case 5: return push_allreduce_kernel<T, 5>;
    case 6: return push_allreduce_kernel<T, 6>;
    case 7: return push_allreduce_kernel<T, 7>;
    case 8: return push_allreduce_kernel<T, 8>;
  }
  return nullptr;
}

// The kernel for a type and rank count; nullptr for a value outside them.
PushKernel kernel_of(DataType dtype, int ranks) {
  return dev::with_element_type(dtype, PushKernel{nullptr},
                                [&](auto t) { return kernel_for<typename decltype(t)::type>(ranks); });
}

}  // namespace

PushLayout push_layout(std::size_t max_bytes, int ranks) {
  PushLayout l;
  l.ranks = ranks;
  const int64_t units = std::max<int64_t>(1, core::ceil_div(static_cast<int64_t>(max_bytes), core::kUnitBytes));
  l.slice_units_max = core::ceil_div(units, static_cast<int64_t>(ranks));
  l.pieces_max = core::ceil_div(l.slice_units_max, kPushRoundUnits);
  return l;
}

int push_resident_blocks(DataType dtype, int ranks, int threads) {
  return dev::resident_blocks(reinterpret_cast<const void*>(kernel_of(dtype, ranks)), threads);
}

cudaError_t launch_push(const PushParams& params, DataType dtype, int blocks, int threads, cudaStream_t stream) {
  if (blocks < 1 || blocks > kMaxPushBlocks || threads < 32 || threads % 32 != 0 || threads > kPushMaxThreads ||
      params.piece_units < kPushRoundUnits || params.piece_units % kPushRoundUnits != 0)
    return cudaErrorInvalidConfiguration;
  const PushKernel kernel = kernel_of(dtype, params.common.ranks);
  if (kernel == nullptr) return cudaErrorInvalidValue;
  return dev::launch_kernel(kernel, blocks, threads, stream, params.common.pdl, params);
}

}  // namespace nvrar::gpu
