// The GEMM phases of the persistent decode step (decode_megakernel.cu): the kernel's parameters and shared-memory
// layout, the weight stream (each block's chunks of every weight matrix of the step, copied by cp.async into a ring of
// shared-memory stages), the phases' prologues (RMSNorm of the rows, the attention output copied in) and the loop over
// a block's share of a phase's units on tensor cores, with its outputs. Device code, header-only; included by
// decode_megakernel.cu alone.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "engine/gpu/bf16_vector.cuh"
#include "engine/gpu/decode_megakernel.h"
#include "engine/gpu/decode_megakernel_share.h"
#include "engine/gpu/pointwise.cuh"
#include "engine/gpu/skinny_outputs.cuh"
#include "engine/gpu/tensor_core.cuh"
#include "gpu/device/rmsnorm.cuh"

namespace nvrar::engine::gpu::mega {

constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;
constexpr int kChunk = 512;                       // elements of k per stage
constexpr int kRowBytes = kChunk * 2 + 64;        // a weight row of a stage, padded (conflict-free 16-byte reads)
constexpr int kStageBytes = 16 * kRowBytes;
constexpr int kStages = 9;
constexpr int kActBytes = 68 * 1024;              // activations (rows x (k + 32) bf16) or the attention's arrays
constexpr int kReduceBytes = kWarps * 32 * 4 * 4;  // the warps' mma accumulators
constexpr int kSharedBytes = kStages * kStageBytes + kActBytes + kReduceBytes;
// A chunk is 16 rows x 64 pieces of 16 bytes; thread i copies piece i % 64 of rows i / 64 + 4 j, j < 4.
static_assert(4 * kThreads == 16 * (kChunk * 2 / 16), "every 16-byte piece of a chunk copied once");
static_assert(attention_scratch_bytes<8, 128>() <= kActBytes, "the attention's arrays fit the activation space");
constexpr int64_t kWatchdogNs = 10'000'000'000LL;

enum Kind : int { kQkv = 0, kO = 1, kGateUp = 2, kDown = 3, kHead = 4 };
struct Params {
  MegakernelArgs a;
  int blocks;
  int splits, keys_per_split;   // attention
  unsigned* counters;           // [rows][kv_heads]
  float *part_acc, *part_ml;
  unsigned* unit_counters;      // [largest phase's units]: arrivals at a unit split between blocks
  float* unit_partials;         // [blocks][2][128]: a block's sums of its first and last unit where split
};

// A GEMM phase: weights [n, k] in units of 16 weight rows, each `chunks` chunks of k.
struct Phase {
  int kind, layer;
  const bf16_t* w;
  int64_t n, k, units, chunks;
};

__device__ __forceinline__ Phase phase_of(const Params& p, int index) {
  Phase ph{};
  const MegakernelArgs& a = p.a;
  ph.layer = index / 4;
  ph.kind = index >= 4 * a.num_layers ? kHead : index % 4;
  const int64_t q_cols = static_cast<int64_t>(a.q_heads) * a.head_dim;
  switch (ph.kind) {
    case kQkv: ph.w = a.layers[ph.layer].qkv, ph.n = q_cols + 2LL * a.kv_heads * a.head_dim, ph.k = a.hidden; break;
    case kO: ph.w = a.layers[ph.layer].o, ph.n = a.hidden, ph.k = q_cols; break;
    case kGateUp: ph.w = a.layers[ph.layer].gate_up, ph.n = 2LL * a.inter, ph.k = a.hidden; break;
    case kDown: ph.w = a.layers[ph.layer].down, ph.n = a.hidden, ph.k = a.inter; break;
    default: ph.w = a.lm_head, ph.n = a.vocab_cols, ph.k = a.hidden; break;
  }
  ph.units = ph.n / 16;
  ph.chunks = ph.k / kChunk;
  return ph;
}

// Weight row of output column c (the pairings of skinny_outputs.cuh), and a unit's tile row r -> column. The weight
// stream runs ahead across phase kinds, so it takes the pairing by kind at run time rather than from the Out types;
// the two must agree (test_decode_megakernel_gpu checks q/k/v and SwiGLU against a CPU reference).
__device__ __forceinline__ int64_t weight_row(const Params& p, int kind, int64_t c) {
  if (kind == kQkv) {
    const int64_t half = p.a.head_dim / 2, pair = c / 2;
    return pair / half * 2 * half + pair % half + (c % 2) * half;
  }
  if (kind == kGateUp) return c / 2 + (c % 2) * p.a.inter;
  return c;
}
__device__ __forceinline__ int64_t unit_column(int kind, int64_t unit, int r) {
  return tile_column(kind == kQkv || kind == kGateUp, unit * 16, r);  // skinny_outputs.cuh
}

// The block's walk over its weight chunks, phase by phase (its Share of each), the same on every thread; each thread
// holds the addresses of its four pieces of the current unit's rows.
struct WeightStream {
  int phase = 0, segment = 0;
  int64_t at = 0, end = 0;  // chunk index in the phase; the current segment's end
  int64_t unit = 0;         // at / chunks and at % chunks, kept by counting (no division per chunk)
  int chunk = 0;
  bool done = false;
  Phase ph;
  Share sh;
  const char* src[4];

  __device__ void set_rows(const Params& p) {
    const int piece = threadIdx.x % 64;
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const int r = threadIdx.x / 64 + 4 * j;
      const int64_t row = weight_row(p, ph.kind, unit_column(ph.kind, unit, r));
      src[j] = reinterpret_cast<const char*>(ph.w + row * ph.k) + piece * 16;
    }
  }
  __device__ void enter_segment(const Params& p) {
    while (segment >= sh.segments) {
      if (++phase > 4 * p.a.num_layers) {
        done = true;
        return;
      }
      ph = phase_of(p, phase);
      sh = share_of(ph.units, ph.chunks, p.blocks, blockIdx.x);
      segment = 0;
    }
    at = sh.first(segment);
    end = sh.last(segment);
    unit = at / ph.chunks;
    chunk = static_cast<int>(at - unit * ph.chunks);
    set_rows(p);
  }
  __device__ void begin(const Params& p) {
    phase = 0;
    ph = phase_of(p, 0);
    sh = share_of(ph.units, ph.chunks, p.blocks, blockIdx.x);
    segment = 0;
    enter_segment(p);
  }
  __device__ void advance(const Params& p) {
    if (++at == end) {
      ++segment;
      enter_segment(p);
    } else if (++chunk == ph.chunks) {
      chunk = 0;
      ++unit;
      set_rows(p);
    }
  }
  // Copies the current chunk into `stage` (nothing once the stream is done) and moves on; always one commit group.
  __device__ void issue(const Params& p, char* stage) {
    if (!done) {
      const int piece = threadIdx.x % 64;
#pragma unroll
      for (int j = 0; j < 4; ++j)
        tc::cp_async_16(tc::shared_address(stage + (threadIdx.x / 64 + 4 * j) * kRowBytes + piece * 16),
                        src[j] + chunk * (kChunk * 2), true);
      advance(p);
    }
    tc::cp_async_commit();
  }
};

// rows x hidden bf16 of rmsnorm(h) * weight (the residual + RMSNorm kernel's roundings) into shared memory, row stride
// hidden + 32 elements. kUnits: 16-byte units of a row per thread (hidden / 2048, rounded up); every load of h is
// issued before the first is used (h comes from L2: one round trip, not one per unit), and h stays in registers for
// the second pass.
template <int kUnits, int kRows>
__device__ void norm_rows_held(const Params& p, const bf16_t* weight, bf16_t* xs, float* red) {
  const int rows = p.a.rows, units = p.a.hidden / 8, stride = p.a.hidden + 32;
  uint4 hv[kRows][kUnits], wv[kUnits];
#pragma unroll
  for (int r = 0; r < kRows; ++r)
#pragma unroll
    for (int u = 0; u < kUnits; ++u) {
      const int j = threadIdx.x + u * kThreads;
      hv[r][u] = r < rows && j < units
                     ? __ldcg(reinterpret_cast<const uint4*>(p.a.h + static_cast<int64_t>(r) * p.a.hidden) + j)
                     : make_uint4(0, 0, 0, 0);  // zeros add nothing to the sums
    }
#pragma unroll
  for (int u = 0; u < kUnits; ++u) {
    const int j = threadIdx.x + u * kThreads;
    wv[u] = j < units ? reinterpret_cast<const uint4*>(weight)[j] : make_uint4(0, 0, 0, 0);
  }
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
#pragma unroll
  for (int r = 0; r < kRows; ++r) {
    float s = 0.0f;  // each thread's units in element order
#pragma unroll
    for (int u = 0; u < kUnits; ++u) ::nvrar::gpu::dev::add_unit_squares<core::Bf16>(&hv[r][u].x, s);
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
    if (lane == 0) red[r * kWarps + warp] = s;
  }
  __syncthreads();
#pragma unroll
  for (int r = 0; r < kRows; ++r) {
    if (r >= rows) break;
    float total = 0.0f;
    for (int w = 0; w < kWarps; ++w) total += red[r * kWarps + w];
    const float inv = rsqrtf(total / static_cast<float>(p.a.hidden) + p.a.eps);
#pragma unroll
    for (int u = 0; u < kUnits; ++u) {
      const int j = threadIdx.x + u * kThreads;
      if (j >= units) break;
      uint4 out;
      ::nvrar::gpu::dev::unit_rmsnorm<core::Bf16>(&hv[r][u].x, &wv[u].x, inv, &out.x);
      reinterpret_cast<uint4*>(xs + r * stride)[j] = out;
    }
  }
  __syncthreads();
}

// hidden <= 8192 (decode_megakernel_refusal): 1, 2 or 4 units per thread; rows x units <= 16 (the activation space).
__device__ void norm_rows(const Params& p, const bf16_t* weight, bf16_t* xs, float* red) {
  const int units = (p.a.hidden / 8 + kThreads - 1) / kThreads;
  if (units <= 1)
    norm_rows_held<1, kMegakernelMaxRows>(p, weight, xs, red);
  else if (units == 2)
    norm_rows_held<2, kMegakernelMaxRows>(p, weight, xs, red);
  else
    norm_rows_held<4, 4>(p, weight, xs, red);
}

// rows x k bf16 of `in` (written by this launch) into shared memory, row stride k + 32; eight loads in flight per
// thread.
__device__ void copy_rows(const bf16_t* in, int rows, int64_t k, bf16_t* xs) {
  const unsigned units = static_cast<unsigned>(k / 8), total = static_cast<unsigned>(rows) * units;  // < 2^16
  for (unsigned base = threadIdx.x; base < total; base += 8 * kThreads) {
    uint4 v[8];
#pragma unroll
    for (int u = 0; u < 8; ++u) {
      const unsigned i = base + u * kThreads;
      v[u] = i < total ? __ldcg(reinterpret_cast<const uint4*>(in + (i / units) * k) + i % units)
                       : make_uint4(0, 0, 0, 0);
    }
#pragma unroll
    for (int u = 0; u < 8; ++u) {
      const unsigned i = base + u * kThreads;
      if (i < total) reinterpret_cast<uint4*>(xs + (i / units) * (k + 32))[i % units] = v[u];
    }
  }
  __syncthreads();
}

// o_proj and down_proj: h[r, c] += the product (rounded to bf16 first: the residual + RMSNorm kernel's roundings).
struct ResidualAdd {
  static constexpr bool kPaired = false;
  bf16_t* h;
  int64_t n;
  __device__ void store(int r, int64_t column, float v) const {
    bf16_t* at = h + r * n + column;
    *at = to_bf16(to_f32(__ldcg(at)) + to_f32(to_bf16(v)));
  }
};

struct Ring {
  char* stages;
  int slot = 0;  // the stage of the next chunk to multiply (chunks multiplied so far, modulo kStages)
};

// The block's sums of a unit split between blocks: into its slot; the last of the unit's blocks to arrive (a counter
// per unit) adds every part in block order and returns true with the total in c (warp 0 only, every lane).
__device__ bool combine_split_unit(const Params& p, const Phase& ph, int64_t unit, float (&c)[4], int lane) {
  const int64_t U = ph.units, C = ph.chunks, B = p.blocks;
  float* slot = p.unit_partials + (blockIdx.x * 2 + split_slot(U, C, B, blockIdx.x, unit)) * 128 + lane * 4;
#pragma unroll
  for (int i = 0; i < 4; ++i) slot[i] = c[i];
  const int64_t lo = owner_of(U, C, B, unit * C), hi = owner_of(U, C, B, unit * C + C - 1);
  unsigned parts = 0;
  for (int64_t o = lo; o <= hi; ++o) parts += share_start(U, C, B, o) < share_start(U, C, B, o + 1);
  __threadfence();  // the slot is visible device-wide before the count says so
  __syncwarp();
  unsigned last = 0;
  if (lane == 0) {
    last = atomicAdd(p.unit_counters + unit, 1u) + 1 == parts;
    if (last) atomicExch(p.unit_counters + unit, 0u);  // ready for the next phase
  }
  last = __shfl_sync(0xffffffffu, last, 0);
  if (!last) return false;
  __threadfence();  // the other parts, ordered before their increments, are read after this one
#pragma unroll
  for (int i = 0; i < 4; ++i) c[i] = 0.0f;
  for (int64_t o = lo; o <= hi; ++o) {
    if (share_start(U, C, B, o) >= share_start(U, C, B, o + 1)) continue;  // an empty share
    const float* part = p.unit_partials + (o * 2 + split_slot(U, C, B, o, unit)) * 128 + lane * 4;
#pragma unroll
    for (int i = 0; i < 4; ++i) c[i] += __ldcg(part + i);
  }
  return true;
}

// This block's share of GEMM phase ph. x: the activations (shared memory, row stride k + 32, or global rows of k
// read through L2 when x_global).
template <class Out>
__device__ void run_units(const Params& p, const Phase& ph, const Out& out, const bf16_t* x, bool x_global,
                          Ring& ring, WeightStream& stream, float* reduce) {
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
  const bool x_row = g < p.a.rows;
  const int64_t C = ph.chunks, x_stride = x_global ? ph.k : ph.k + 32;
  const bf16_t* xr = x + (x_row ? g : 0) * x_stride + t * 8;
  const auto load_x = [&](int64_t chunk, uint4 (&xv)[2]) {
#pragma unroll
    for (int i = 0; i < 2; ++i) {
      const bf16_t* at = xr + chunk * kChunk + (warp * 2 + i) * 32;
      xv[i] = !x_row     ? make_uint4(0, 0, 0, 0)
              : x_global ? __ldcg(reinterpret_cast<const uint4*>(at))
                         : *reinterpret_cast<const uint4*>(at);
    }
  };
  const Share sh = share_of(ph.units, ph.chunks, p.blocks, blockIdx.x);
  for (int seg = 0; seg < sh.segments; ++seg) {
    const int64_t seg_begin = sh.first(seg), seg_end = sh.last(seg);
    int64_t unit = seg_begin / C;                        // kept by counting below: no division per chunk
    int ci = static_cast<int>(seg_begin - unit * C);     // chunk of the unit
    bool from_first = ci == 0;                           // this part of the unit starts at its first chunk
    float c[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    uint4 x_next[2];
    load_x(ci, x_next);
    for (int64_t at = seg_begin; at < seg_end; ++at) {
      uint4 xv[2] = {x_next[0], x_next[1]};
      const int next_ci = ci + 1 == C ? 0 : ci + 1;
      if (at + 1 < seg_end) load_x(next_ci, x_next);  // x does not depend on the unit
      tc::cp_async_wait<kStages - 2>();  // this chunk's copies (of this thread) have landed
      __syncthreads();       // ... and everyone's; the stage refilled below is no longer read
      stream.issue(p, ring.stages + (ring.slot == 0 ? kStages - 1 : ring.slot - 1) * kStageBytes);
      const char* s = ring.stages + ring.slot * kStageBytes;
      ring.slot = ring.slot + 1 == kStages ? 0 : ring.slot + 1;
#pragma unroll
      for (int i = 0; i < 2; ++i) {
        const int offset = (warp * 2 + i) * 64 + t * 16;
        const uint4 lo = *reinterpret_cast<const uint4*>(s + g * kRowBytes + offset);
        const uint4 hi = *reinterpret_cast<const uint4*>(s + (g + 8) * kRowBytes + offset);
        tc::mma_bf16(c, {lo.x, hi.x, lo.y, hi.y}, xv[i].x, xv[i].y);
        tc::mma_bf16(c, {lo.z, hi.z, lo.w, hi.w}, xv[i].z, xv[i].w);
      }
      const bool unit_done = ci + 1 == C;
      ci = next_ci;
      if (!unit_done && at + 1 != seg_end) continue;
      // The end of this block's part of a unit: the warps' sums meet, then the output (or the split unit's combine).
      const bool whole = from_first && unit_done;
#pragma unroll
      for (int i = 0; i < 4; ++i) reduce[(warp * 32 + lane) * 4 + i] = c[i];
      __syncthreads();
      if (warp == 0) {
#pragma unroll
        for (int i = 0; i < 4; ++i)
          for (int v = 1; v < kWarps; ++v) c[i] += reduce[(v * 32 + lane) * 4 + i];
        if (whole || combine_split_unit(p, ph, unit, c, lane)) {
          // c0: (row g, batch 2t), c1: (row g, batch 2t + 1), c2: (row g + 8, batch 2t), c3: (row g + 8, 2t + 1).
#pragma unroll
          for (int i = 0; i < (Out::kPaired ? 2 : 4); ++i) {
            const int batch = 2 * t + (i & 1);
            const int64_t column = unit_column(ph.kind, unit, g + (i >= 2 ? 8 : 0));
            if (batch >= p.a.rows) continue;
            if constexpr (Out::kPaired)
              out.store(batch, column / 2, c[i], c[i + 2]);
            else
              out.store(batch, column, c[i]);
          }
        }
      }
#pragma unroll
      for (int i = 0; i < 4; ++i) c[i] = 0.0f;
      ++unit;
      from_first = true;
    }
  }
}

}  // namespace nvrar::engine::gpu::mega
