// LL128 two-shot all-reduce over NVLink peers (Algorithm::kLl128).
//
// Purpose: the two-shot all-reduce (reduce-scatter + all-gather) at a latency close to the one-shot's, for inputs
//   and outputs anywhere in device memory: no copy-in, no barrier, no fence. Data moves in 128-byte lines of 120
//   payload bytes and one 8-byte flag word, so a receiver knows a line has arrived when its flag carries the call's
//   epoch (core/protocol.h), at 94% payload efficiency where the 8-byte cells of the one-shot carry 50%.
// Line protocol: the 8 lanes of a warp that own a line store it with one 16-byte store each, in one warp-wide store
//   instruction (lane j: message bytes 16 j .. 16 j + 15 of the line; lane 7: bytes 112-119 and the flag word), and
//   a receiver loads it the same way and checks the flag word in lane 7; while any flag of the warp's lines is stale,
//   only lane 7 of each stale line polls again (16 bytes, not 128: less L2 traffic from waiting warps), and once all
//   flags are in, the other lanes reload those lines. This relies on NVLink delivering a 128-byte aligned line
//   written by one warp instruction as a whole, a property of the hardware, not of the PTX memory model (NCCL's
//   LL128 protocol rests on the same property of NVLink on Hopper); the correctness suite samples it (no torn line
//   seen), it cannot prove it. The reload asks no more of it: it is issued only after the warp's vote has seen the
//   flag (a control dependency on the flag load), it bypasses L1 (volatile), and a peer writes the slot again only
//   in the call after next (same parity), which it cannot reach before this rank has finished this call.
// Algorithm (P ranks, the message cut into L >= P lines, slice s = lines [L s / P, L (s + 1) / P) owned by rank s):
//   1. push: every line of every other rank's slice goes from my input into that owner's reduce-scatter slot
//      (parity, me).
//   2. reduce my slice: per line, poll the P - 1 peers' lines in my reduce-scatter slots (3 peers' loads in flight
//      at once: one wait instead of one per peer up to 4 ranks, 3 at 8), sum them with my input in rank order
//      0..P-1 in fp32 (only the owner sums a line, so every rank gets the same bits), store the sum into my output
//      and as a line into every peer's all-gather region.
//   3. gather: per line of the other slices, poll my all-gather region and store the line into my output.
//   Warps stride over lines four at a time (a warp holds 4 lines); each warp runs the three phases in order. Phases 1
//   and 3 take the other slices from slice me + 1 on (wrapping): were every rank to push slice 0 first, P - 1 ranks
//   would write into one GPU while the others' NVLink input idles (4 x H100: the rotation took 4 / 8 / 16 MB from
//   30.2 / 63.6 / 122.8 to 24.6 / 44.8 / 85.2 us with 1024 threads). Phase 1 never waits, so every line is pushed
//   whatever the others do; phase 2 waits only for phase-1 lines and phase 3 for phase-2 lines: no cycle, provided
//   every block is resident (blocks <= kMaxLl128Blocks, one per SM).
// In place (in == out) is safe: the same lanes of the same warp own a line in all three phases (phases 1 and 3 map
//   their loop index to lines alike), and they read its input bytes (phase 1 or 2) before they write its output
//   bytes (phase 2 or 3).
// Launch: blocks x threads (a multiple of 32), every rank the same; per-block sequence numbers as in
//   device_units.cuh. Every pair of ranks exchanges at least one line each way in each phase (L >= P), which with
//   the parity double buffering is the no-barrier argument of core/protocol.h. Polls time out (WaitContext).
// Residency: the communicator caps the grid at what the occupancy calculator says fits at once (ll128_resident_blocks),
//   since a block that is not resident cannot push its lines while the others wait for them.
#include "gpu/algorithms/ll128.h"

#include <cuda_runtime.h>

#include "core/numeric.h"
#include "core/protocol.h"
#include "gpu/device/device_units.cuh"
#include "gpu/device/element_type.cuh"

namespace nvrar::gpu {

namespace {

using dev::WaitSite;
constexpr int kLanesPerLine = kLl128LineBytes / 16;  // 8
constexpr int kLinesPerWarp = 32 / kLanesPerLine;    // 4

// The rank whose slice holds `line`.
__device__ __forceinline__ int owner_of(int64_t line, int64_t lines, int ranks) {
  int s = static_cast<int>(line * ranks / lines);
  while (s + 1 < ranks && ll128_slice_begin(lines, ranks, s + 1) <= line) ++s;
  while (s > 0 && ll128_slice_begin(lines, ranks, s) > line) --s;
  return s;
}

// This lane's share of line `line`: message bytes [120 line + 16 j, + 16) (lane 7: + 8), as four words (zeros
// past the message and, for lane 7, in the last two). The tail path indexes w only with unrolled constants, so w
// stays in registers.
template <typename T>
__device__ __forceinline__ void load_share(const T* in, int64_t count, int64_t line, int j, bool aligned8,
                                           uint32_t w[4]) {
  constexpr int kMaxElems = 16 / static_cast<int>(sizeof(T));
  w[0] = w[1] = w[2] = w[3] = 0;
  const int bytes = j < kLanesPerLine - 1 ? 16 : 8;
  const int n = bytes / static_cast<int>(sizeof(T));
  const int64_t first = (line * kLl128PayloadBytes + 16 * j) / static_cast<int64_t>(sizeof(T));
  if (aligned8 && first + n <= count) {
    const uint2* p = reinterpret_cast<const uint2*>(in + first);
    const uint2 a = p[0];
    w[0] = a.x;
    w[1] = a.y;
    if (bytes == 16) {
      const uint2 b = p[1];
      w[2] = b.x;
      w[3] = b.y;
    }
    return;
  }
#pragma unroll
  for (int i = 0; i < kMaxElems; ++i) {
    if (i < n && first + i < count) {
      if constexpr (sizeof(T) == 4) {
        w[i] = reinterpret_cast<const uint32_t*>(in)[first + i];
      } else {
        w[i >> 1] |= static_cast<uint32_t>(reinterpret_cast<const uint16_t*>(in)[first + i]) << (16 * (i & 1));
      }
    }
  }
}

template <typename T>
__device__ __forceinline__ void store_share(T* out, int64_t count, int64_t line, int j, bool aligned8,
                                            const uint32_t w[4]) {
  constexpr int kMaxElems = 16 / static_cast<int>(sizeof(T));
  const int bytes = j < kLanesPerLine - 1 ? 16 : 8;
  const int n = bytes / static_cast<int>(sizeof(T));
  const int64_t first = (line * kLl128PayloadBytes + 16 * j) / static_cast<int64_t>(sizeof(T));
  if (aligned8 && first + n <= count) {
    uint2* p = reinterpret_cast<uint2*>(out + first);
    p[0] = make_uint2(w[0], w[1]);
    if (bytes == 16) p[1] = make_uint2(w[2], w[3]);
    return;
  }
#pragma unroll
  for (int i = 0; i < kMaxElems; ++i) {
    if (i < n && first + i < count) {
      if constexpr (sizeof(T) == 4) {
        reinterpret_cast<uint32_t*>(out)[first + i] = w[i];
      } else {
        reinterpret_cast<uint16_t*>(out)[first + i] = static_cast<uint16_t>(w[i >> 1] >> (16 * (i & 1)));
      }
    }
  }
}

// Stores this lane's 16 bytes of a line (lane 7: its 8 payload bytes and the flag word). One store instruction for
// the whole warp, so each line leaves as one 128-byte write; `active` predicates whole lines.
__device__ __forceinline__ void store_line(char* line_base, int j, bool active, const uint32_t w[4], uint32_t flag) {
  const bool flag_lane = j == kLanesPerLine - 1;
  const uint32_t z = flag_lane ? flag : w[2];
  const uint32_t v = flag_lane ? flag : w[3];
  __syncwarp();
  if (active) dev::store_volatile_v4(line_base + 16 * j, w[0], w[1], z, v);
}

__device__ __forceinline__ bool line_stale(const uint4& v, uint32_t flag) { return v.z != flag || v.w != flag; }

// Warp-collective (all 32 lanes call it, each with the same N): this lane's 16 bytes of N lines, addr[k] (already
// offset by 16 j), the lines predicated by active[k]. Loads all N at once; while the flag of any active line of the
// warp is stale, only the flag lanes of the stale lines poll again (16 bytes each instead of the whole line), and
// once every flag has arrived the other lanes reload those lines (why that reload sees the payload: the comment at
// the top of this file). False when the call was aborted (a timeout here or in another block of this rank);
// make_site(k) names the wait of line k.
template <int N, typename MakeSite>
__device__ __forceinline__ bool poll_lines(const WaitContext& wc, const char* const addr[N], const bool active[N],
                                           bool flag_lane, int flag_lane_id, uint32_t flag, uint4 v[N],
                                           MakeSite make_site) {
  unsigned stale = 0;  // bit k: line k's flag not yet seen (meaningful in flag lanes)
#pragma unroll
  for (int k = 0; k < N; ++k) v[k] = active[k] ? dev::load_volatile_v4(addr[k]) : make_uint4(0, 0, 0, 0);
#pragma unroll
  for (int k = 0; k < N; ++k)
    if (active[k] && flag_lane && line_stale(v[k], flag)) stale |= 1u << k;
  if (!__any_sync(0xffffffffu, stale != 0)) return true;
  const unsigned was_stale = __shfl_sync(0xffffffffu, stale, flag_lane_id);  // my line group's flag lane
  unsigned long long start = 0;
  for (int tries = 1;; ++tries) {
    if (wc.poll_sleep_ns > 0 && tries > 2) __nanosleep(wc.poll_sleep_ns);
#pragma unroll
    for (int k = 0; k < N; ++k) {
      if (stale & (1u << k)) {
        v[k] = dev::load_volatile_v4(addr[k]);
        if (!line_stale(v[k], flag)) stale &= ~(1u << k);
      }
    }
    if (!__any_sync(0xffffffffu, stale != 0)) break;
    if (tries % dev::kPollsPerClockCheck == 0) {
      const int k = stale != 0 ? __ffs(stale) - 1 : 0;
      const bool go = stale != 0 ? dev::still_waiting(wc, start, make_site(k))
                                 : *reinterpret_cast<volatile int*>(wc.abort_flag) == 0;
      if (!__all_sync(0xffffffffu, go)) return false;
    }
  }
  if (!flag_lane) {
#pragma unroll
    for (int k = 0; k < N; ++k)
      if (was_stale & (1u << k)) v[k] = dev::load_volatile_v4(addr[k]);
  }
  return true;
}

// Payload words of a loaded line share (the flag lane's last two words are the flag: zeros).
__device__ __forceinline__ void payload_of(const uint4& v, bool flag_lane, uint32_t w[4]) {
  w[0] = v.x;
  w[1] = v.y;
  w[2] = flag_lane ? 0 : v.z;
  w[3] = flag_lane ? 0 : v.w;
}

// Peers polled at once in the reduce-scatter (their loads in flight together); more peers go in further batches.
constexpr int kPeersPerPoll = 3;

template <typename T>
__global__ void __launch_bounds__(kLl128MaxThreads) ll128_allreduce_kernel(const Ll128Params p) {
  const dev::Epoch e = dev::begin_epoch(p.seq_counters);
  const T* in = static_cast<const T*>(p.in);
  T* out = static_cast<T*>(p.out);
  const bool in_aligned = (reinterpret_cast<uintptr_t>(in) & 7) == 0;
  const bool out_aligned = (reinterpret_cast<uintptr_t>(out) & 7) == 0;
  const int me = p.common.rank, lane = threadIdx.x % 32;
  const int j = lane % kLanesPerLine, group = lane / kLanesPerLine;
  const bool flag_lane = j == kLanesPerLine - 1;
  const int flag_lane_id = group * kLanesPerLine + kLanesPerLine - 1;
  const int64_t warps = static_cast<int64_t>(gridDim.x) * (blockDim.x / 32);
  const int64_t warp = static_cast<int64_t>(blockIdx.x) * (blockDim.x / 32) + threadIdx.x / 32;
  const int64_t L = p.lines, stride = warps * kLinesPerWarp;
  const int64_t my_begin = ll128_slice_begin(L, p.common.ranks, me), my_end = ll128_slice_begin(L, p.common.ranks, me + 1);
  const char* mine = p.heaps[me];

  // The other slices' lines in the order of phases 1 and 3: slice me + 1 first, then me + 2, ... (wrapping), so that
  // while ranks push their first lines each owner hears from one rank, not P - 1 at once (incast) with P - 2 idle.
  const int64_t others = L - (my_end - my_begin);
  auto other_line = [&](int64_t idx) { return my_end + idx < L ? my_end + idx : my_end + idx - L; };

  // 1. push the other slices' lines to their owners.
  for (int64_t base = warp * kLinesPerWarp; base < others; base += stride) {
    const bool other = base + group < others;
    const int64_t line = other ? other_line(base + group) : 0;
    uint32_t w[4] = {0, 0, 0, 0};
    int owner = me;
    if (other) {
      load_share(in, p.count, line, j, in_aligned, w);
      owner = owner_of(line, L, p.common.ranks);
    }
    const int64_t slice_line = other ? line - ll128_slice_begin(L, p.common.ranks, owner) : 0;
    store_line(p.heaps[owner] + p.layout.reduce_scatter(e.parity, me, slice_line), j, other, w, e.flag);
  }

  // 2. reduce my slice (peers polled kPeersPerPoll at a time, summed in rank order), send the sums.
  bool ok = true;
  for (int64_t base = my_begin + warp * kLinesPerWarp; ok && base < my_end; base += stride) {
    const int64_t line = base + group;
    const bool active = line < my_end;
    const int64_t slice_line = active ? line - my_begin : 0;
    uint32_t own[4] = {0, 0, 0, 0};
    if (active) load_share(in, p.count, line, j, in_aligned, own);
    float acc[dev::elems_per_unit<T>()] = {};
    bool own_added = false;
    for (int k0 = 0; k0 < p.common.ranks - 1; k0 += kPeersPerPoll) {
      const char* addr[kPeersPerPoll];
      bool act[kPeersPerPoll];
      int src[kPeersPerPoll];
#pragma unroll
      for (int k = 0; k < kPeersPerPoll; ++k) {
        src[k] = k0 + k < me ? k0 + k : k0 + k + 1;  // the peers in rank order, me skipped
        act[k] = active && k0 + k < p.common.ranks - 1;
        addr[k] = mine + p.layout.reduce_scatter(e.parity, act[k] ? src[k] : 0, slice_line) + 16 * j;
      }
      uint4 v[kPeersPerPoll];
      if (!poll_lines<kPeersPerPoll>(p.common.wait, addr, act, flag_lane, flag_lane_id, e.flag, v, [&](int k) {
            return WaitSite{src[k], core::Phase::kLl128ReduceScatter, 0, me, line, e.seq};
          })) {
        ok = false;
        break;
      }
#pragma unroll
      for (int k = 0; k < kPeersPerPoll; ++k) {
        if (k0 + k >= p.common.ranks - 1) break;
        if (!own_added && src[k] > me) {
          dev::unit_accumulate<T>(acc, own);
          own_added = true;
        }
        uint32_t w[4];
        payload_of(v[k], flag_lane, w);
        dev::unit_accumulate<T>(acc, w);
      }
    }
    if (!ok) break;
    if (!own_added) dev::unit_accumulate<T>(acc, own);
    uint32_t sum[4];
    dev::unit_from_floats<T>(acc, sum);
    if (flag_lane) sum[2] = sum[3] = 0;
    for (int i = 1; i < p.common.ranks; ++i) {
      const int dst = (me + i) % p.common.ranks;
      store_line(p.heaps[dst] + p.layout.all_gather(e.parity, active ? line : 0), j, active, sum, e.flag);
    }
    if (active) store_share(out, p.count, line, j, out_aligned, sum);
  }

  // 3. gather the other slices' sums.
  for (int64_t base = warp * kLinesPerWarp; ok && base < others; base += stride) {
    const bool other[1] = {base + group < others};
    const int64_t line = other[0] ? other_line(base + group) : 0;
    const char* addr[1] = {mine + p.layout.all_gather(e.parity, other[0] ? line : 0) + 16 * j};
    uint4 v[1];
    if (!poll_lines<1>(p.common.wait, addr, other, flag_lane, flag_lane_id, e.flag, v, [&](int) {
          const int owner = owner_of(line, L, p.common.ranks);
          return WaitSite{owner, core::Phase::kLl128AllGather, 0, owner, line, e.seq};
        }))
      break;
    uint32_t w[4];
    payload_of(v[0], flag_lane, w);
    if (other[0]) store_share(out, p.count, line, j, out_aligned, w);
  }
  dev::end_sequence(p.seq_counters, kMaxLl128Blocks, e.seq);
}

}  // namespace

int ll128_resident_blocks(DataType dtype, int threads) {
  return dev::with_element_type(dtype, 0, [&](auto t) {
    using T = typename decltype(t)::type;
    return dev::resident_blocks(reinterpret_cast<const void*>(ll128_allreduce_kernel<T>), threads);
  });
}

cudaError_t launch_ll128(const Ll128Params& params, DataType dtype, int blocks, int threads, cudaStream_t stream) {
  if (blocks < 1 || blocks > kMaxLl128Blocks || threads < 32 || threads % 32 != 0 || threads > kLl128MaxThreads ||
      params.common.ranks < 1 || params.common.ranks > kMaxLl128Ranks)
    return cudaErrorInvalidConfiguration;
  return dev::with_element_type(dtype, cudaErrorInvalidValue, [&](auto t) {
    using T = typename decltype(t)::type;
    return dev::launch_kernel(ll128_allreduce_kernel<T>, blocks, threads, stream, params.common.pdl, params);
  });
}

}  // namespace nvrar::gpu
