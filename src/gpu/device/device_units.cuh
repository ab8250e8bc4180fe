// Device building blocks shared by NVRAR's kernels: 16-byte units of elements, flagged cells (core/protocol.h),
// fp32 accumulation, and polls that give up after the communicator's timeout (device_wait.h).
//
// A unit is 16 bytes of elements (8 bf16/fp16 or 4 fp32) held as four 32-bit words. On the wire a unit travels as
// four 8-byte cells {payload word, flag}, two 16-byte volatile stores; a receiver polls both 16-byte halves until all
// four flags equal the call's flag (NCCL's LL protocol uses the same 8-byte atomicity of 16-byte stores).
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "core/numeric.h"
#include "core/protocol.h"
#include "gpu/device/device_wait.h"
#include "gpu/device/pdl.cuh"

namespace nvrar::gpu::dev {

// Host: how many blocks of `threads` threads of `kernel` fit on the current device at once (occupancy x SM count);
// 0 if the runtime cannot tell (its error is cleared). For kernels whose blocks wait for each other: every block must
// be resident.
inline int resident_blocks(const void* kernel, int threads) {
  int per_sm = 0, device = 0, sms = 0;
  if (kernel == nullptr || cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, threads, 0) != cudaSuccess ||
      cudaGetDevice(&device) != cudaSuccess ||
      cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device) != cudaSuccess) {
    cudaGetLastError();  // leave no sticky error for the caller's next check
    return 0;
  }
  return per_sm * sms;
}

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

template <typename T>
__host__ __device__ constexpr int elems_per_unit() {
  return core::kUnitBytes / static_cast<int>(sizeof(T));
}

// acc += unit w, element-wise in fp32.
template <typename T>
__device__ __forceinline__ void unit_accumulate(float* acc, const uint32_t w[4]) {
#pragma unroll
  for (int e = 0; e < elems_per_unit<T>(); ++e) acc[e] += unit_get<T>(w, e);
}

// w = round(w + x), element-wise in fp32.
template <typename T>
__device__ __forceinline__ void unit_add(uint32_t w[4], const uint32_t x[4]) {
  float v[elems_per_unit<T>()];
#pragma unroll
  for (int i = 0; i < elems_per_unit<T>(); ++i) v[i] = unit_get<T>(w, i) + unit_get<T>(x, i);
  unit_from_floats<T>(v, w);
}

// Loads unit `unit` of an array of `count` elements (zeros past `count`, and for unit < 0: a padding unit).
template <typename T>
__device__ __forceinline__ void load_unit(const T* in, int64_t count, int64_t unit, bool aligned, uint32_t w[4]) {
  constexpr int kElems = elems_per_unit<T>();
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

// Stores unit `unit` into an array of `count` elements (elements past `count` are not written; unit < 0: none).
template <typename T>
__device__ __forceinline__ void store_unit(T* out, int64_t count, int64_t unit, bool aligned, const uint32_t w[4]) {
  constexpr int kElems = elems_per_unit<T>();
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

__device__ __forceinline__ bool is_aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15) == 0; }

// Where a wait happens, for the error record.
struct WaitSite {
  int peer;
  core::Phase phase;
  int step;
  int slice;
  int64_t unit;
  unsigned long long seq;
};

// Records the first failure of the job on this rank (ErrorRecord::code: 1 timeout, 2 a peer's arguments differ)
// and raises the abort flag.
__device__ inline void report_failure(const WaitContext& w, const WaitSite& s, int code) {
  if (atomicCAS(w.abort_flag, 0, 1) != 0) return;
  volatile ErrorRecord* e = w.error;
  e->rank = w.rank;
  e->peer = s.peer;
  e->phase = static_cast<int>(s.phase);
  e->step = s.step;
  e->slice = s.slice;
  e->unit = s.unit;
  e->seq = s.seq;
  __threadfence_system();
  e->code = code;
  __threadfence_system();
}

// Called every kPollsPerClockCheck failed polls: false once the call is aborted (here: after reporting a
// timeout that this thread detected).
__device__ __forceinline__ bool still_waiting(const WaitContext& w, unsigned long long& start, const WaitSite& s) {
  if (*reinterpret_cast<volatile int*>(w.abort_flag) != 0) return false;
  const unsigned long long now = global_timer_ns();
  if (start == 0) {
    start = now;
  } else if (static_cast<long long>(now - start) > w.timeout_ns) {
    report_failure(w, s, 1);
    return false;
  }
  return true;
}

// Polls the four cells at `addr` until all carry `flag`, then returns their payload in w; false when the call was
// aborted (timeout here or in another block). The site is built only when the wait is long.
template <typename MakeSite>
__device__ __forceinline__ bool poll_unit(const WaitContext& wc, const char* addr, uint32_t flag, uint32_t w[4],
                                          MakeSite make_site) {
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
    if (wc.poll_sleep_ns > 0 && tries > 2) __nanosleep(wc.poll_sleep_ns);
    if (tries % kPollsPerClockCheck == 0 && !still_waiting(wc, start, make_site())) return false;
  }
}

__device__ __forceinline__ void store_flag_release(char* p, unsigned long long v) {
  asm volatile("st.release.sys.global.u64 [%0], %1;" ::"l"(p), "l"(v) : "memory");
}

__device__ __forceinline__ unsigned long long load_flag_acquire(const char* p) {
  unsigned long long v;
  asm volatile("ld.acquire.sys.global.u64 %0, [%1];" : "=l"(v) : "l"(p) : "memory");
  return v;
}

__device__ __forceinline__ void fence_acq_rel_sys() { asm volatile("fence.acq_rel.sys;" ::: "memory"); }

__device__ __forceinline__ void store_flag_volatile(char* p, unsigned long long v) {
  asm volatile("st.volatile.global.u64 [%0], %1;" ::"l"(p), "l"(v) : "memory");
}

__device__ __forceinline__ unsigned long long load_flag_volatile(const char* p) {
  unsigned long long v;
  asm volatile("ld.volatile.global.u64 %0, [%1];" : "=l"(v) : "l"(p) : "memory");
  return v;
}

// How a block publishes plain data behind a flag, and how a receiver waits for it (NVRAR_BULK_SYNC):
//   kReleaseAcquire: st.release.sys per flag, ld.acquire.sys per poll.
//   kFences: one fence.acq_rel.sys, then relaxed (volatile) flag stores; relaxed polls, one fence.acq_rel.sys after.
// Both are the PTX model's message passing at system scope; they differ in what each flag store and poll costs.
enum BulkSync : int { kReleaseAcquire = 0, kFences = 1 };

// Publishes `count` flags at addr_of(j) (j < count). Call after a __syncthreads that follows the data stores.
template <typename AddrOf>
__device__ __forceinline__ void signal_flags(int mode, int64_t count, AddrOf addr_of, uint32_t flag) {
  if (count <= 0) return;
  if (mode == kFences) {
    fence_acq_rel_sys();
    for (int64_t j = 0; j < count; ++j) store_flag_volatile(addr_of(j), flag);
  } else {
    for (int64_t j = 0; j < count; ++j) store_flag_release(addr_of(j), flag);
  }
}

// Waits for one flag in the given mode; false on timeout or abort.
template <typename MakeSite>
__device__ inline bool wait_flag(const WaitContext& wc, int mode, const char* addr, unsigned long long flag,
                                 MakeSite make_site) {
  unsigned long long start = 0;
  for (int tries = 1;; ++tries) {
    if (mode == kFences) {
      if (load_flag_volatile(addr) == flag) {
        fence_acq_rel_sys();
        return true;
      }
    } else if (load_flag_acquire(addr) == flag) {
      return true;
    }
    if (tries % kPollsPerClockCheck == 0 && !still_waiting(wc, start, make_site())) return false;
  }
}

// Reads through L2 (.cv): a peer wrote these bytes since this SM may last have cached the line.
__device__ __forceinline__ void load_l2_v4(const char* p, uint32_t w[4]) {
  const uint4 v = __ldcv(reinterpret_cast<const uint4*>(p));
  w[0] = v.x;
  w[1] = v.y;
  w[2] = v.z;
  w[3] = v.w;
}

__device__ __forceinline__ void store_plain_v4(char* p, const uint32_t w[4]) {
  *reinterpret_cast<uint4*>(p) = make_uint4(w[0], w[1], w[2], w[3]);
}

// Per-block sequence numbers (one call = one number on every rank): block b reads counters[b] + 1 at the start (one
// thread, shared with the block through shared memory, so no thread can see a counter its block already advanced)
// and, at the end, writes it to every counter it stands for (j = b mod gridDim.x), so the next call sees it whatever
// its grid size. The block's threads share those stores (up to max_blocks / gridDim.x of them). Every thread of the
// block must call both.
__device__ __forceinline__ unsigned long long begin_sequence(const unsigned long long* counters) {
  wait_for_previous_grid();  // the counters (and the caller's input) may come from the previous kernel
  allow_next_grid();
  __shared__ unsigned long long seq;
  if (threadIdx.x == 0) seq = counters[blockIdx.x] + 1;
  __syncthreads();
  return seq;
}
// A call's epoch (core/protocol.h) from its sequence number: the flag its cells carry and the parity of its regions.
struct Epoch {
  unsigned long long seq;
  uint32_t flag;
  int parity;
};
__device__ __forceinline__ Epoch begin_epoch(const unsigned long long* counters) {
  const unsigned long long seq = begin_sequence(counters);
  return Epoch{seq, core::epoch_flag(seq), core::epoch_parity(seq)};
}
__device__ __forceinline__ void end_sequence(unsigned long long* counters, int max_blocks, unsigned long long seq) {
  for (int j = blockIdx.x + threadIdx.x * gridDim.x; j < max_blocks; j += gridDim.x * blockDim.x) counters[j] = seq;
}

}  // namespace nvrar::gpu::dev
