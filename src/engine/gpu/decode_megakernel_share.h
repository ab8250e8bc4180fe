// How the persistent decode kernel (decode_megakernel.cu) splits a GEMM phase over its blocks. Host and device code
// (the CPU test checks the partition).
//
// A phase multiplies `units` units of 16 weight rows, each `chunks` chunks of k: T = units x chunks chunks in
// unit-major order. Block b of B takes chunks [T b / B, T (b + 1) / B), so every block is within one chunk of the
// others (none waits a unit's time at the next barrier). A unit may be split between blocks: each adds its part of
// the sums, and the block that finishes its part last adds all parts (in block order) and stores the unit's output.
// A block walks its share as up to three segments: the partial unit at its end, the partial unit at its start, then
// the whole units between; so both parts of a split unit come early in their blocks' phase, and the extra sum stays
// off the phase's critical path.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

namespace nvrar::engine::gpu::mega {

struct Share {
  int64_t begin[3], end[3];
  int segments;
  // Segment i's bounds without indexing the arrays at run time (which would put the struct in local memory).
  __host__ __device__ int64_t first(int i) const { return i == 0 ? begin[0] : i == 1 ? begin[1] : begin[2]; }
  __host__ __device__ int64_t last(int i) const { return i == 0 ? end[0] : i == 1 ? end[1] : end[2]; }
};

__host__ __device__ inline int64_t share_start(int64_t units, int64_t chunks, int64_t blocks, int64_t b) {
  return units * chunks * b / blocks;
}

__host__ __device__ inline Share share_of(int64_t units, int64_t chunks, int64_t blocks, int64_t b) {
  Share sh{};
  const int64_t C = chunks, s = share_start(units, C, blocks, b), e = share_start(units, C, blocks, b + 1);
  if (s >= e) return sh;
  const int64_t first = s / C, last = (e - 1) / C;
  if (first == last) {
    sh.begin[0] = s, sh.end[0] = e, sh.segments = 1;
    return sh;
  }
  const int64_t whole_begin = s % C != 0 ? (first + 1) * C : s, whole_end = e % C != 0 ? last * C : e;
  const bool tail = e % C != 0, head = s % C != 0, whole = whole_begin < whole_end;
  // In order: [last C, e) if partial, [s, (first + 1) C) if partial, then the whole units.
  sh.begin[0] = tail ? last * C : head ? s : whole_begin;
  sh.end[0] = tail ? e : head ? (first + 1) * C : whole_end;
  sh.begin[1] = tail && head ? s : whole_begin;
  sh.end[1] = tail && head ? (first + 1) * C : whole_end;
  sh.begin[2] = whole_begin;
  sh.end[2] = whole_end;
  sh.segments = static_cast<int>(tail) + static_cast<int>(head) + static_cast<int>(whole);
  return sh;
}

// The block whose share holds chunk x.
__host__ __device__ inline int64_t owner_of(int64_t units, int64_t chunks, int64_t blocks, int64_t x) {
  const int64_t T = units * chunks;
  int64_t b = x * blocks / T;
  while (b + 1 < blocks && share_start(units, chunks, blocks, b + 1) <= x) ++b;
  while (b > 0 && share_start(units, chunks, blocks, b) > x) --b;
  return b;
}

// Which of block b's two partial-sum slots holds its part of `unit`: 0 for the unit its share starts in, else 1.
__host__ __device__ inline int split_slot(int64_t units, int64_t chunks, int64_t blocks, int64_t b, int64_t unit) {
  return share_start(units, chunks, blocks, b) / chunks == unit ? 0 : 1;
}

}  // namespace nvrar::engine::gpu::mega
