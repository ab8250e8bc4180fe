// LL128 two-shot all-reduce over NVLink peers (Algorithm::kTwoShotLl128).
//
// Purpose: the two-shot all-reduce (reduce-scatter + all-gather) at a latency close to the one-shot's, for inputs
//   and outputs anywhere in device memory: no copy-in, no barrier, no fence. Data moves in 128-byte lines of 120
//   payload bytes and one 8-byte flag word, so a receiver knows a line has arrived when its flag carries the call's
//   epoch (core/protocol.h), at 94% payload efficiency where the 8-byte cells of the one-shot carry 50%.
// Line protocol: the 8 lanes of a warp that own a line store it with one 16-byte store each, in one warp-wide store
//   instruction (lane j: message bytes 16 j .. 16 j + 15 of the line; lane 7: bytes 112-119 and the flag word), and
//   a receiver loads it the same way, checks the flag word in lane 7 and reloads the whole warp's lines while any
//   flag is stale. This relies on NVLink delivering a 128-byte aligned line written by one warp instruction as a
//   whole, a property of the hardware, not of the PTX memory model (NCCL's LL128 protocol rests on the same property
//   of NVLink on Hopper); the correctness suite samples it (no torn line seen), it cannot prove it.
// Algorithm (P ranks, the message cut into L >= P lines, slice s = lines [L s / P, L (s + 1) / P) owned by rank s):
//   1. push: every line of every other rank's slice goes from my input into that owner's reduce-scatter slot
//      (parity, me).
//   2. reduce my slice: per line, poll the P - 1 peers' lines in my reduce-scatter slots, sum them with my input in
//      rank order 0..P-1 in fp32 (only the owner sums a line, so every rank gets the same bits), store the sum into
//      my output and as a line into every peer's all-gather region.
//   3. gather: per line of the other slices, poll my all-gather region and store the line into my output.
//   Warps stride over lines four at a time (a warp holds 4 lines); each warp runs the three phases in order. Phase 1
//   never waits, so every line is pushed whatever the others do; phase 2 waits only for phase-1 lines and phase 3
//   for phase-2 lines: no cycle, provided every block is resident (blocks <= kMaxLl128Blocks, one per SM).
// In place (in == out) is safe: the same lanes of the same warp own a line in all three phases (the loops stride
//   alike), and they read its input bytes (phase 1 or 2) before they write its output bytes (phase 2 or 3).
// Launch: blocks x threads (a multiple of 32), every rank the same; per-block sequence numbers as in
//   device_units.cuh. Every pair of ranks exchanges at least one line each way in each phase (L >= P), which with
//   the parity double buffering is the no-barrier argument of core/protocol.h. Polls time out (WaitContext).
// Residency: the communicator caps the grid at what the occupancy calculator says fits at once (ll128_resident_blocks),
//   since a block that is not resident cannot push its lines while the others wait for them.
#include "gpu/ll128_allreduce.h"

#include <cuda_runtime.h>

#include "core/numeric.h"
#include "core/protocol.h"
#include "gpu/device_units.cuh"

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
// past the message and, for lane 7, in the last two).
template <typename T>
__device__ __forceinline__ void load_share(const T* in, int64_t count, int64_t line, int j, bool aligned8,
                                           uint32_t w[4]) {
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
  for (int i = 0; i < n && first + i < count; ++i) {
    if constexpr (sizeof(T) == 4) {
      w[i] = reinterpret_cast<const uint32_t*>(in)[first + i];
    } else {
      w[i >> 1] |= static_cast<uint32_t>(reinterpret_cast<const uint16_t*>(in)[first + i]) << (16 * (i & 1));
    }
  }
}

template <typename T>
__device__ __forceinline__ void store_share(T* out, int64_t count, int64_t line, int j, bool aligned8,
                                            const uint32_t w[4]) {
  const int bytes = j < kLanesPerLine - 1 ? 16 : 8;
  const int n = bytes / static_cast<int>(sizeof(T));
  const int64_t first = (line * kLl128PayloadBytes + 16 * j) / static_cast<int64_t>(sizeof(T));
  if (aligned8 && first + n <= count) {
    uint2* p = reinterpret_cast<uint2*>(out + first);
    p[0] = make_uint2(w[0], w[1]);
    if (bytes == 16) p[1] = make_uint2(w[2], w[3]);
    return;
  }
  for (int i = 0; i < n && first + i < count; ++i) {
    if constexpr (sizeof(T) == 4) {
      reinterpret_cast<uint32_t*>(out)[first + i] = w[i];
    } else {
      reinterpret_cast<uint16_t*>(out)[first + i] = static_cast<uint16_t>(w[i >> 1] >> (16 * (i & 1)));
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

// Warp-collective (all 32 lanes call it): loads this lane's 16 bytes of a line until the flag of every active line
// of the warp carries `flag`; false when the call was aborted (a timeout here or in another block of this rank).
template <typename MakeSite>
__device__ __forceinline__ bool poll_line(const WaitContext& wc, const char* line_base, int j, bool active,
                                          uint32_t flag, uint32_t w[4], MakeSite make_site) {
  const bool flag_lane = j == kLanesPerLine - 1;
  unsigned long long start = 0;
  for (int tries = 1;; ++tries) {
    __syncwarp();
    const uint4 v = active ? dev::load_volatile_v4(line_base + 16 * j) : make_uint4(0, 0, 0, 0);
    const bool stale = active && flag_lane && (v.z != flag || v.w != flag);
    if (!__any_sync(0xffffffffu, stale)) {
      w[0] = v.x;
      w[1] = v.y;
      w[2] = flag_lane ? 0 : v.z;
      w[3] = flag_lane ? 0 : v.w;
      return true;
    }
    if (wc.poll_sleep_ns > 0 && tries > 2) __nanosleep(wc.poll_sleep_ns);
    if (tries % dev::kPollsPerClockCheck == 0) {
      const bool go = stale ? dev::still_waiting(wc, start, make_site())
                            : *reinterpret_cast<volatile int*>(wc.abort_flag) == 0;
      if (!__all_sync(0xffffffffu, go)) return false;
    }
  }
}

template <typename T>
__global__ void __launch_bounds__(kLl128MaxThreads) ll128_allreduce_kernel(const Ll128Params p) {
  const dev::Epoch e = dev::begin_epoch(p.seq_counters);
  const T* in = static_cast<const T*>(p.in);
  T* out = static_cast<T*>(p.out);
  const bool in_aligned = (reinterpret_cast<uintptr_t>(in) & 7) == 0;
  const bool out_aligned = (reinterpret_cast<uintptr_t>(out) & 7) == 0;
  const int me = p.rank, lane = threadIdx.x % 32;
  const int j = lane % kLanesPerLine, group = lane / kLanesPerLine;
  const int64_t warps = static_cast<int64_t>(gridDim.x) * (blockDim.x / 32);
  const int64_t warp = static_cast<int64_t>(blockIdx.x) * (blockDim.x / 32) + threadIdx.x / 32;
  const int64_t L = p.lines, stride = warps * kLinesPerWarp;
  const int64_t my_begin = ll128_slice_begin(L, p.ranks, me), my_end = ll128_slice_begin(L, p.ranks, me + 1);
  const char* mine = p.heaps[me];

  // 1. push the other slices' lines to their owners.
  for (int64_t base = warp * kLinesPerWarp; base < L; base += stride) {
    const int64_t line = base + group;
    const bool other = line < L && (line < my_begin || line >= my_end);
    uint32_t w[4] = {0, 0, 0, 0};
    int owner = me;
    if (other) {
      load_share(in, p.count, line, j, in_aligned, w);
      owner = owner_of(line, L, p.ranks);
    }
    const int64_t slice_line = other ? line - ll128_slice_begin(L, p.ranks, owner) : 0;
    store_line(p.heaps[owner] + p.layout.reduce_scatter(e.parity, me, slice_line), j, other, w, e.flag);
  }

  // 2. reduce my slice, send the sums.
  bool ok = true;
  for (int64_t base = my_begin + warp * kLinesPerWarp; ok && base < my_end; base += stride) {
    const int64_t line = base + group;
    const bool active = line < my_end;
    float acc[dev::elems_per_unit<T>()] = {};
    for (int src = 0; src < p.ranks; ++src) {
      uint32_t w[4] = {0, 0, 0, 0};
      if (src == me) {
        if (active) load_share(in, p.count, line, j, in_aligned, w);
      } else if (!poll_line(p.wait, mine + p.layout.reduce_scatter(e.parity, src, active ? line - my_begin : 0), j,
                            active, e.flag, w, [&] {
                              return WaitSite{src, core::Phase::kLl128ReduceScatter, 0, me, line, e.seq};
                            })) {
        ok = false;
        break;
      }
      dev::unit_accumulate<T>(acc, w);
    }
    if (!ok) break;
    uint32_t sum[4];
    dev::unit_from_floats<T>(acc, sum);
    if (j == kLanesPerLine - 1) sum[2] = sum[3] = 0;
    for (int i = 1; i < p.ranks; ++i) {
      const int dst = (me + i) % p.ranks;
      store_line(p.heaps[dst] + p.layout.all_gather(e.parity, active ? line : 0), j, active, sum, e.flag);
    }
    if (active) store_share(out, p.count, line, j, out_aligned, sum);
  }

  // 3. gather the other slices' sums.
  for (int64_t base = warp * kLinesPerWarp; ok && base < L; base += stride) {
    const int64_t line = base + group;
    const bool other = line < L && (line < my_begin || line >= my_end);
    uint32_t w[4];
    if (!poll_line(p.wait, mine + p.layout.all_gather(e.parity, other ? line : 0), j, other, e.flag, w, [&] {
          return WaitSite{owner_of(line, L, p.ranks), core::Phase::kLl128AllGather, 0, owner_of(line, L, p.ranks), line,
                          e.seq};
        }))
      break;
    if (other) store_share(out, p.count, line, j, out_aligned, w);
  }
  dev::end_sequence(p.seq_counters, kMaxLl128Blocks, e.seq);
}

}  // namespace

int ll128_resident_blocks(DataType dtype, int threads) {
  const void* kernel = dtype == DataType::kFloat32     ? reinterpret_cast<const void*>(ll128_allreduce_kernel<float>)
                       : dtype == DataType::kBFloat16 ? reinterpret_cast<const void*>(ll128_allreduce_kernel<core::Bf16>)
                                                      : reinterpret_cast<const void*>(ll128_allreduce_kernel<core::Fp16>);
  int per_sm = 0, device = 0, sms = 0;
  if (cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, threads, 0) != cudaSuccess ||
      cudaGetDevice(&device) != cudaSuccess ||
      cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device) != cudaSuccess) {
    cudaGetLastError();  // leave no sticky error for the caller's next check
    return 0;
  }
  return per_sm * sms;
}

cudaError_t launch_ll128(const Ll128Params& params, DataType dtype, int blocks, int threads, cudaStream_t stream) {
  if (blocks < 1 || blocks > kMaxLl128Blocks || threads < 32 || threads % 32 != 0 || threads > kLl128MaxThreads ||
      params.ranks < 1 || params.ranks > kMaxLl128Ranks)
    return cudaErrorInvalidConfiguration;
  switch (dtype) {
    case DataType::kFloat32:
      return dev::launch_kernel(ll128_allreduce_kernel<float>, blocks, threads, stream, params.pdl, params);
    case DataType::kBFloat16:
      return dev::launch_kernel(ll128_allreduce_kernel<core::Bf16>, blocks, threads, stream, params.pdl, params);
    case DataType::kFloat16:
      return dev::launch_kernel(ll128_allreduce_kernel<core::Fp16>, blocks, threads, stream, params.pdl, params);
  }
  return cudaErrorInvalidValue;
}

}  // namespace nvrar::gpu
