// Zero-copy two-shot all-reduce on registered buffers (Algorithm::kRegistered).
//
// Purpose: the two-shot all-reduce without copying the input anywhere first, for inputs that live in NVRAR's
//   symmetric heap (Communicator::allocate_buffer). Against the copy-in two-shot (hierarchical.cu on one
//   node) it saves pushing (P-1)/P of the message into peers' exchange areas and the flag round trip behind that
//   data; what stays is one data-free "ready" handshake and one push of the sums.
// Algorithm (P ranks of one NVLink domain, the message cut into P slices of 16-byte units, slice r owned by rank r,
//   each slice cut into gridDim.x equal block ranges):
//   1. ready: block b tells every peer that its input is final (all earlier work of its stream has completed, see
//      Sync) by storing {sequence number, agreement hash of the call's buffers, offsets, count, type and grid} as
//      one 64-bit word with release semantics into slot (me, b) of the peer's ready area. It waits for slot (p, b) of
//      its own area from every peer p to carry this call's number and compares the hashes: a difference (another
//      count, type, grid or buffer offset on that rank) records error code 2 and aborts the call on this rank before
//      any data moves; the peer sees the same difference. (One word, not the descriptors behind a flag: a release
//      after other stores waits for them to land, one more NVLink round trip per call.)
//   2. reduce: for each unit of its range of my slice, every thread loads the unit from all P inputs (peers' over
//      NVLink, kUnroll units in flight), sums them in fp32 in rank order 0..P-1 (the same bits on every rank, since
//      only the owner sums a slice), stores the rounded unit into my output and into every peer's output (direct
//      form: the output is registered too) or gather area (copy-out form), at the unit's place in the message.
//   3. done: after a block barrier, one thread per peer publishes "done" (me, b) in that peer's area (release).
//   4. Every block waits for "done" (p, b) from every peer p (acquire); in the copy-out form it then copies block b's
//      range of every peer's slice from the gather area into the output.
// Launch: blocks x threads, blocks <= kMaxRegisteredBlocks and identical on every rank (part of the agreement);
//   threads >= P (one thread per peer signals and waits). Templated on the element type and P.
// Sync: per-block sequence numbers as in device_units.cuh. Every block starts with griddepcontrol.wait, so when
//   block b of rank p says ready, all of p's earlier kernels (which wrote its input, or read its output and gather
//   area) have completed. A rank's call ends only after every peer's "done" for every block, i.e. after every peer
//   has finished loading this rank's input: the caller may then overwrite it. A peer rewrites its ready slot here
//   only in its next call, which starts after its current call has seen this rank's "done", sent after this rank
//   read that slot; it rewrites a done slot only after this rank's next "ready", sent after this call ended. In place
//   (in == out, direct form) is safe: rank p writes this rank's slice p only after loading it. Waits time out
//   (WaitContext).
#include "gpu/algorithms/registered.h"

#include <cuda_runtime.h>

#include <algorithm>

#include "core/hash.h"
#include "core/numeric.h"
#include "core/protocol.h"
#include "core/schedule.h"
#include "gpu/device/device_units.cuh"
#include "gpu/device/element_type.cuh"

namespace nvrar::gpu {

namespace {

using dev::WaitSite;

// First unit of slice s of a message of `units` units cut into `ranks` slices (the same on every rank).
__device__ __forceinline__ int64_t slice_begin(int64_t units, int ranks, int s) { return units * s / ranks; }

// Block b's range [begin, end) of slice s.
__device__ __forceinline__ void block_range(int64_t units, int ranks, int s, int64_t& begin, int64_t& end) {
  const int64_t s0 = slice_begin(units, ranks, s), len = slice_begin(units, ranks, s + 1) - s0;
  begin = s0 + len * blockIdx.x / gridDim.x;
  end = s0 + len * (blockIdx.x + 1) / gridDim.x;
}

// Unit u of an input (16-byte load through L2 only: peers' memory, rewritten between calls).
template <typename T>
__device__ __forceinline__ void load_input_unit(const T* in, int64_t count, int64_t u, bool aligned, uint32_t w[4]) {
  constexpr int kElems = dev::elems_per_unit<T>();
  if (aligned && (u + 1) * kElems <= count) {
    const uint4 v = __ldcg(reinterpret_cast<const uint4*>(in + u * kElems));
    w[0] = v.x;
    w[1] = v.y;
    w[2] = v.z;
    w[3] = v.w;
    return;
  }
  dev::load_unit(in, count, u, aligned, w);
}

// The call number in a ready word: 1 .. 2^32 - 1, never the 0 of a slot not written yet.
__device__ __forceinline__ unsigned long long call_number(unsigned long long seq) { return (seq - 1) % 0xffffffffULL + 1; }

template <typename T, int kRanks>
__global__ void __launch_bounds__(kRegisteredMaxThreads) twoshot_registered_kernel(const RegisteredParams p) {
  constexpr int kUnroll = kRanks <= 4 ? 4 : 2;
  const unsigned long long seq = dev::begin_sequence(p.seq_counters);
  const int me = p.common.rank;
  const int b = blockIdx.x;
  __shared__ int failed;
  if (threadIdx.x == 0) failed = 0;
  __syncthreads();

  // 1. ready: thread t < P (t != me) tells peer t, then waits for peer t's word.
  const int t = threadIdx.x;
  if (t < kRanks && t != me) {
    const unsigned long long number = call_number(seq) << 32;
    dev::store_flag_release(p.sync[t] + RegisteredSyncLayout::ready(me, b), number | p.agreement);
    const char* mine = p.sync[me] + RegisteredSyncLayout::ready(t, b);
    unsigned long long start = 0;
    for (int tries = 1;; ++tries) {
      const unsigned long long word = dev::load_flag_acquire(mine);
      if ((word & 0xffffffff00000000ULL) == number) {
        if ((word & 0xffffffffULL) != p.agreement) {
          dev::report_failure(p.common.wait, WaitSite{t, core::Phase::kRegisteredReady, 0, 0, b, seq}, 2);
          failed = 1;
        }
        break;
      }
      if (tries % dev::kPollsPerClockCheck == 0 &&
          !dev::still_waiting(p.common.wait, start, WaitSite{t, core::Phase::kRegisteredReady, 0, 0, b, seq})) {
        failed = 1;
        break;
      }
    }
  }
  __syncthreads();
  if (failed || *reinterpret_cast<volatile int*>(p.common.wait.abort_flag) != 0) {
    dev::end_sequence(p.seq_counters, kMaxRegisteredBlocks, seq);
    return;
  }

  // 2. reduce my slice's block range, store the sums everywhere.
  const T* in[kRanks];
  bool in_aligned[kRanks];
#pragma unroll
  for (int r = 0; r < kRanks; ++r) {
    in[r] = reinterpret_cast<const T*>(p.in[r]);
    in_aligned[r] = dev::is_aligned16(in[r]);
  }
  T* dst[kRanks];
  bool dst_aligned[kRanks];
#pragma unroll
  for (int r = 0; r < kRanks; ++r) {
    dst[r] = reinterpret_cast<T*>(r == me ? p.out : p.direct ? p.out_peers[r] : p.gather[r]);
    dst_aligned[r] = dev::is_aligned16(dst[r]);
  }
  int64_t begin, end;
  block_range(p.units, kRanks, me, begin, end);
  for (int64_t base = begin + threadIdx.x; base < end; base += static_cast<int64_t>(blockDim.x) * kUnroll) {
    uint32_t w[kUnroll][kRanks][4];
#pragma unroll
    for (int k = 0; k < kUnroll; ++k) {
      const int64_t u = base + static_cast<int64_t>(k) * blockDim.x;
#pragma unroll
      for (int r = 0; r < kRanks; ++r) {
        if (u < end) {
          load_input_unit(in[r], p.count, u, in_aligned[r], w[k][r]);
        } else {
          w[k][r][0] = w[k][r][1] = w[k][r][2] = w[k][r][3] = 0;
        }
      }
    }
#pragma unroll
    for (int k = 0; k < kUnroll; ++k) {
      const int64_t u = base + static_cast<int64_t>(k) * blockDim.x;
      if (u >= end) break;
      float acc[dev::elems_per_unit<T>()] = {};
#pragma unroll
      for (int r = 0; r < kRanks; ++r) dev::unit_accumulate<T>(acc, w[k][r]);
      uint32_t sum[4];
      dev::unit_from_floats<T>(acc, sum);
      // The gather areas are aligned and as long as the message: whole units go there; outputs take count-aware
      // stores. Start at my right neighbour to spread the traffic.
#pragma unroll
      for (int i = 0; i < kRanks; ++i) {
        const int r = (me + 1 + i) % kRanks;
        if (r != me && !p.direct)
          dev::store_plain_v4(reinterpret_cast<char*>(dst[r]) + u * core::kUnitBytes, sum);
        else
          dev::store_unit(dst[r], p.count, u, dst_aligned[r], sum);
      }
    }
  }

  // 3. done: my block's share of the sums is in every peer's output or gather area.
  __syncthreads();
  if (t < kRanks && t != me) dev::store_flag_release(p.sync[t] + RegisteredSyncLayout::done(me, b), seq);

  // 4. wait for every peer's share of block b's ranges; copy it out of the gather area.
  if (t < kRanks && t != me) {
    const char* slot = p.sync[me] + RegisteredSyncLayout::done(t, b);
    if (!dev::wait_flag(p.common.wait, dev::kReleaseAcquire, slot, seq, [&] {
          return WaitSite{t, core::Phase::kRegisteredDone, 0, 0, b, seq};
        }))
      failed = 1;
  }
  __syncthreads();
  if (!failed && !p.direct) {
    T* out = reinterpret_cast<T*>(p.out);
    const bool out_aligned = dev::is_aligned16(out);
    const char* gather = p.gather[me];
    for (int s = 0; s < kRanks; ++s) {
      if (s == me) continue;
      int64_t sb, se;
      block_range(p.units, kRanks, s, sb, se);
      for (int64_t u = sb + threadIdx.x; u < se; u += blockDim.x) {
        uint32_t w[4];
        dev::load_l2_v4(gather + u * core::kUnitBytes, w);
        dev::store_unit(out, p.count, u, out_aligned, w);
      }
    }
  }
  dev::end_sequence(p.seq_counters, kMaxRegisteredBlocks, seq);
}

template <typename T, int kRanks>
cudaError_t launch_typed(const RegisteredParams& p, int blocks, int threads, cudaStream_t stream) {
  return dev::launch_kernel(twoshot_registered_kernel<T, kRanks>, blocks, threads, stream, p.common.pdl, p);
}

template <typename T>
cudaError_t launch_ranks(const RegisteredParams& p, int blocks, int threads, cudaStream_t stream) {
  switch (p.common.ranks) {
    case 1: return launch_typed<T, 1>(p, blocks, threads, stream);
    case 2: return launch_typed<T, 2>(p, blocks, threads, stream);
    case 3: return launch_typed<T, 3>(p, blocks, threads, stream);
    case 4: return launch_typed<T, 4>(p, blocks, threads, stream);
    case 5: return launch_typed<T, 5>(p, blocks, threads, stream);
    case 6: return launch_typed<T, 6>(p, blocks, threads, stream);
    case 7: return launch_typed<T, 7>(p, blocks, threads, stream);
    case 8: return launch_typed<T, 8>(p, blocks, threads, stream);
  }
  return cudaErrorInvalidValue;
}

}  // namespace

uint32_t registered_agreement(unsigned long long in, unsigned long long out, unsigned long long shape) {
  // FNV-1a over the 24 bytes, folded to 32 bits.
  const uint64_t h = core::fnv1a64_words({in, out, shape});
  return static_cast<uint32_t>(h ^ (h >> 32));
}

int registered_blocks(int64_t units, int ranks, int threads, int max_blocks) {
  const int64_t slice = core::ceil_div(units, ranks);
  const int64_t want = core::ceil_div(slice, static_cast<int64_t>(threads) * 4);
  return static_cast<int>(std::clamp<int64_t>(want, 1, std::min(max_blocks, kMaxRegisteredBlocks)));
}

cudaError_t launch_registered(const RegisteredParams& params, DataType dtype, int blocks, int threads,
                              cudaStream_t stream) {
  if (blocks < 1 || blocks > kMaxRegisteredBlocks || threads < 32 || threads % 32 != 0 ||
      threads > kRegisteredMaxThreads || threads < params.common.ranks)
    return cudaErrorInvalidConfiguration;
  return dev::with_element_type(dtype, cudaErrorInvalidValue, [&](auto t) {
    return launch_ranks<typename decltype(t)::type>(params, blocks, threads, stream);
  });
}

}  // namespace nvrar::gpu
