// The persistent decode step (decode_megakernel.h): every layer of a TP 1 decode step, the final norm and the lm_head
// in one launch.
//
// Purpose: a decode step at batch 1-8 streams the weights once (16 GB for Llama-3.1-8B) and little else. Launched as
//   ~7 kernels per layer, HBM idles at every boundary (a grid's ramp and drain, and the small kernels between the
//   GEMMs): ~3-4 us per GEMM beyond its bytes, ~0.45 ms of an H200's 4.3 ms step (docs/perf-notes.md). Here one block
//   per SM walks its share of every weight matrix of the step in one continuous stream, so the loads for the next
//   phase are in flight while the block waits for the others at a phase boundary.
// Algorithm: the step is a sequence of phases; every phase but the first starts at a grid barrier.
//   per layer: q/k/v GEMM on rmsnorm(h) (+ RoPE + KV append) | attention | o_proj (h += its output) |
//              gate/up GEMM on rmsnorm(h) (+ SwiGLU) | down_proj (h += its output);
//   then the lm_head GEMM on rmsnorm(h). A GEMM phase's output columns come in units of 16 (weight rows), each
//   multiplied in chunks of 512 elements of k; the phase's chunks are split evenly over the blocks, a unit split
//   between blocks summed by the last of them to finish its part (decode_megakernel_share.h). A chunk goes to tensor
//   cores (mma.sync m16n8k16: the 16 weight rows as A, the <= 8 activation rows as B, the skinny GEMM's staged
//   variant's fragment layout): warp w takes 32-element groups 2 w and 2 w + 1 of each chunk, and the warps' sums meet
//   in shared memory at the end of the block's part of a unit, where warp 0 applies the output (skinny_outputs.cuh's
//   RoPE + append and SwiGLU pairs, the residual add, or the logits store). The weight stream: every thread issues cp.async copies of its 4 x 16 bytes of
//   each chunk into a ring of kStages shared-memory stages, kStages - 1 chunks ahead of the chunk being multiplied,
//   across unit, phase and layer boundaries alike (the weights never depend on the activations). The GEMM inputs
//   rmsnorm(h) (every block computes the norm of the <= 8 rows itself, the residual + RMSNorm kernel's roundings) and
//   the attention output are copied into shared memory at the phase's start; down_proj's input (rows of
//   intermediate_size) is read from L2, one chunk ahead. Attention: decode_megakernel_attention.cuh, items of (token,
//   KV head, key split) over the blocks.
// Launch shape: cooperative, one block of 256 threads per SM (~226 KB of dynamic shared memory: kStages stages of
//   16 rows x 1088 bytes, 68 KB for the activations or the attention's arrays, 4 KB for the warps' sums).
// Sync: cp.async groups and one __syncthreads per chunk (a stage is refilled only after every warp has used it); a
//   grid barrier (an arrival count and a generation word in the workspace, acquire/release, self-resetting) between
//   phases, with a 10 s watchdog that traps; arrival counters for the attention's splits and the split GEMM units
//   (fence, count, the last arrival reads the others' parts). Activations written in this launch are read through L2
//   (__ldcg): other SMs wrote them.
#include "engine/gpu/decode_megakernel.h"

#include <cuda/atomic>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdio>
#include <string>

#include "engine/gpu/bf16_vector.cuh"
#include "engine/gpu/decode_megakernel_attention.cuh"
#include "engine/gpu/decode_megakernel_share.h"
#include "engine/gpu/pointwise.cuh"
#include "engine/gpu/skinny_outputs.cuh"
#include "nvrar/types.h"

namespace nvrar::engine::gpu {

namespace {

using namespace mega;
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
__device__ const char* phase_name(int name) {
  switch (name) {
    case 0: return "q/k/v";
    case 1: return "attention";
    case 2: return "o_proj";
    case 3: return "gate/up";
    case 4: return "down_proj";
    default: return "lm_head";
  }
}

struct Workspace {  // at the start of the workspace; the arrival counters and partials follow
  unsigned count, generation;
};

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

// Weight row of output column c (the pairings of skinny_outputs.cuh), and a unit's tile row r -> column.
__device__ __forceinline__ int64_t weight_row(const Params& p, int kind, int64_t c) {
  if (kind == kQkv) {
    const int64_t half = p.a.head_dim / 2, pair = c / 2;
    return pair / half * 2 * half + pair % half + (c % 2) * half;
  }
  if (kind == kGateUp) return c / 2 + (c % 2) * p.a.inter;
  return c;
}
__device__ __forceinline__ int64_t tile_column(int kind, int64_t unit, int r) {
  const bool paired = kind == kQkv || kind == kGateUp;
  return unit * 16 + (paired ? 2 * (r % 8) + r / 8 : r);
}

__device__ __forceinline__ void cp_async_16(void* smem, const void* gmem) {
  const unsigned to = static_cast<unsigned>(__cvta_generic_to_shared(smem));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(to), "l"(gmem) : "memory");
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
__device__ __forceinline__ void cp_async_wait_ring() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(kStages - 2) : "memory");
}

// The block's walk over its weight chunks, phase by phase (its Share of each), the same on every thread; each thread
// holds the addresses of its four pieces of the current unit's rows.
struct WeightStream {
  int phase = 0, segment = 0;
  int64_t at = 0;  // chunk index in the phase
  bool done = false;
  Phase ph;
  Share sh;
  const char* src[4];

  __device__ void set_rows(const Params& p) {
    const int64_t unit = at / ph.chunks;
    const int piece = threadIdx.x % 64;
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const int r = threadIdx.x / 64 + 4 * j;
      const int64_t row = weight_row(p, ph.kind, tile_column(ph.kind, unit, r));
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
    if (++at == sh.last(segment)) {
      ++segment;
      enter_segment(p);
    } else if (at % ph.chunks == 0) {
      set_rows(p);
    }
  }
  // Copies the current chunk into `stage` (nothing once the stream is done) and moves on; always one commit group.
  __device__ void issue(const Params& p, char* stage) {
    if (!done) {
      const int piece = threadIdx.x % 64;
#pragma unroll
      for (int j = 0; j < 4; ++j)
        cp_async_16(stage + (threadIdx.x / 64 + 4 * j) * kRowBytes + piece * 16,
                    src[j] + at % ph.chunks * (kChunk * 2));
      advance(p);
    }
    cp_async_commit();
  }
};

__device__ __forceinline__ uint64_t global_ns() {
  uint64_t t;
  asm volatile("mov.u64 %0, %globaltimer;" : "=l"(t));
  return t;
}

// Grid barrier: every block's writes before it are visible to every block after it.
__device__ void grid_barrier(Workspace* ws, unsigned blocks, int layer, int name) {
  __syncthreads();
  if (threadIdx.x == 0) {
    cuda::atomic_ref<unsigned, cuda::thread_scope_device> count(ws->count), generation(ws->generation);
    const unsigned gen = generation.load(cuda::memory_order_acquire);
    __threadfence();
    if (count.fetch_add(1u, cuda::memory_order_acq_rel) == blocks - 1) {
      count.store(0u, cuda::memory_order_relaxed);
      generation.store(gen + 1, cuda::memory_order_release);
    } else {
      const uint64_t start = global_ns();
      while (generation.load(cuda::memory_order_acquire) == gen) {
        if (global_ns() - start > kWatchdogNs) {
          printf("nvrar-llm: persistent decode kernel: block %d waited over 10 s for the other blocks before %s of "
                 "layer %d; stopping the kernel\n",
                 blockIdx.x, phase_name(name), layer);
          __trap();
        }
      }
    }
    __threadfence();
  }
  __syncthreads();
}

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
    for (int u = 0; u < kUnits; ++u) {
      float v[8];
      unpack_bf16x8(hv[r][u], v);
#pragma unroll
      for (int e = 0; e < 8; ++e) s += v[e] * v[e];
    }
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
      float v[8], w[8];
      unpack_bf16x8(hv[r][u], v);
      unpack_bf16x8(wv[u], w);
      uint4 out;
      bf16_t* o = reinterpret_cast<bf16_t*>(&out);
#pragma unroll
      for (int e = 0; e < 8; ++e) o[e] = to_bf16(w[e] * to_f32(to_bf16(v[e] * inv)));
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
  const int64_t units = k / 8, total = rows * units;
  for (int64_t base = threadIdx.x; base < total; base += 8 * kThreads) {
    uint4 v[8];
#pragma unroll
    for (int u = 0; u < 8; ++u) {
      const int64_t i = base + u * kThreads;
      v[u] = i < total ? __ldcg(reinterpret_cast<const uint4*>(in + i / units * k) + i % units) : make_uint4(0, 0, 0, 0);
    }
#pragma unroll
    for (int u = 0; u < 8; ++u) {
      const int64_t i = base + u * kThreads;
      if (i < total) reinterpret_cast<uint4*>(xs + i / units * (k + 32))[i % units] = v[u];
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

__device__ __forceinline__ void mma_bf16_16816(float (&c)[4], uint32_t a0, uint32_t a1, uint32_t a2, uint32_t a3,
                                               uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%0,%1,%2,%3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
}

struct Ring {
  char* stages;
  int64_t consumed = 0;  // chunks multiplied so far (the next is in stage consumed % kStages)
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
    float c[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    uint4 x_next[2];
    load_x(seg_begin % C, x_next);
    for (int64_t at = seg_begin; at < seg_end; ++at) {
      uint4 xv[2] = {x_next[0], x_next[1]};
      if (at + 1 < seg_end) load_x((at + 1) % C, x_next);  // x does not depend on the unit
      cp_async_wait_ring();  // this chunk's copies (of this thread) have landed
      __syncthreads();       // ... and everyone's; the stage refilled below is no longer read
      stream.issue(p, ring.stages + ((ring.consumed + kStages - 1) % kStages) * kStageBytes);
      const char* s = ring.stages + (ring.consumed % kStages) * kStageBytes;
      ++ring.consumed;
#pragma unroll
      for (int i = 0; i < 2; ++i) {
        const int offset = (warp * 2 + i) * 64 + t * 16;
        const uint4 lo = *reinterpret_cast<const uint4*>(s + g * kRowBytes + offset);
        const uint4 hi = *reinterpret_cast<const uint4*>(s + (g + 8) * kRowBytes + offset);
        mma_bf16_16816(c, lo.x, hi.x, lo.y, hi.y, xv[i].x, xv[i].y);
        mma_bf16_16816(c, lo.z, hi.z, lo.w, hi.w, xv[i].z, xv[i].w);
      }
      if ((at + 1) % C != 0 && at + 1 != seg_end) continue;
      // The end of this block's part of a unit: the warps' sums meet, then the output (or the split unit's combine).
      const int64_t unit = at / C;
      const bool whole = seg_begin <= unit * C && (at + 1) % C == 0;
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
            const int64_t column = tile_column(ph.kind, unit, g + (i >= 2 ? 8 : 0));
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
    }
  }
}

template <int D>
__device__ __forceinline__ void attend_group(int G, const AttentionItem& it, char* act, unsigned* last) {
  switch (G) {
    case 8: return attend_split<8, D>(it, act, last);
    case 4: return attend_split<4, D>(it, act, last);
    case 2: return attend_split<2, D>(it, act, last);
    default: return attend_split<1, D>(it, act, last);
  }
}

__device__ void attention_phase(const Params& p, int layer, char* act, unsigned* last) {
  const MegakernelArgs& a = p.a;
  const int G = a.q_heads / a.kv_heads;
  const int64_t q_cols = static_cast<int64_t>(a.q_heads) * a.head_dim;
  const int64_t qkv_cols = q_cols + 2LL * a.kv_heads * a.head_dim;
  const int64_t items = static_cast<int64_t>(a.rows) * a.kv_heads * p.splits;
  for (int64_t i = blockIdx.x; i < items; i += p.blocks) {
    const int split = static_cast<int>(i % p.splits);
    const int kv = static_cast<int>(i / p.splits % a.kv_heads);
    const int t = static_cast<int>(i / p.splits / a.kv_heads);
    const int len = a.lengths[t];
    const int used = (len + p.keys_per_split - 1) / p.keys_per_split;
    if (len < 1 || used > p.splits) {  // the merge would never complete: stop rather than leave stale rows
      if (threadIdx.x == 0)
        printf("nvrar-llm: persistent decode kernel: row %d attends to %d keys (takes 1 to max_len %lld)\n", t, len,
               static_cast<long long>(a.max_len));
      __trap();
    }
    if (split >= used) continue;
    AttentionItem it;
    it.q = a.qkv + t * qkv_cols + static_cast<int64_t>(kv) * G * a.head_dim;
    const int64_t row0 = kv_cache_row(a.seq[t], a.kv_heads, kv, a.max_seq, 0, a.head_dim);
    it.cache_k = a.layers[layer].cache_k + row0;
    it.cache_v = a.layers[layer].cache_v + row0;
    it.begin = split * p.keys_per_split;
    it.end = min(len, it.begin + p.keys_per_split);
    it.single = used == 1;
    it.out_row = a.attn + t * q_cols + static_cast<int64_t>(kv) * G * a.head_dim;
    it.partials = merge::Partials{p.part_acc, p.part_ml,
                                  (static_cast<int64_t>(t) * a.q_heads + static_cast<int64_t>(kv) * G) * p.splits,
                                  p.splits};
    it.split = split;
    it.counter = p.counters + t * a.kv_heads + kv;
    it.used = used;
    if (a.head_dim == 128)
      attend_group<128>(G, it, act, last);
    else
      attend_group<64>(G, it, act, last);
  }
}

__global__ void __launch_bounds__(kThreads, 1) decode_megakernel_kernel(const __grid_constant__ Params p) {
  extern __shared__ __align__(16) char shared[];
  __shared__ float norm_red[kMegakernelMaxRows * kWarps];
  __shared__ unsigned last_flag;
  Ring ring{shared};
  char* act = shared + kStages * kStageBytes;
  auto* xs = reinterpret_cast<bf16_t*>(act);
  auto* reduce = reinterpret_cast<float*>(act + kActBytes);
  auto* ws = static_cast<Workspace*>(p.a.workspace);
  const MegakernelArgs& a = p.a;
  const unsigned blocks = static_cast<unsigned>(p.blocks);

  WeightStream stream;
  stream.begin(p);
  for (int s = 0; s < kStages - 1; ++s) stream.issue(p, ring.stages + s * kStageBytes);

  const int64_t q_cols = static_cast<int64_t>(a.q_heads) * a.head_dim;
  for (int index = 0; index <= 4 * a.num_layers; ++index) {
    const Phase ph = phase_of(p, index);
    if (index > 0) grid_barrier(ws, blocks, ph.layer, ph.kind == kQkv ? 0 : ph.kind + 1);
    const MegakernelLayer& l = a.layers[ph.kind == kHead ? 0 : ph.layer];
    switch (ph.kind) {
      case kQkv: {
        norm_rows(p, l.ln_in, xs, norm_red);
        const RopeAppendPairs out{a.qkv, ph.n,           a.q_heads, a.kv_heads,  a.head_dim / 2, a.positions,
                                  a.inv_freq, a.seq, l.cache_k, l.cache_v, a.max_seq, false};
        run_units(p, ph, out, xs, false, ring, stream, reduce);
        grid_barrier(ws, blocks, ph.layer, 1);
        attention_phase(p, ph.layer, act, &last_flag);
        break;
      }
      case kO:
        copy_rows(a.attn, a.rows, q_cols, xs);
        run_units(p, ph, ResidualAdd{a.h, a.hidden}, xs, false, ring, stream, reduce);
        break;
      case kGateUp:
        norm_rows(p, l.ln_post, xs, norm_red);
        run_units(p, ph, SwiGluPairs{a.act, a.inter, false}, xs, false, ring, stream, reduce);
        break;
      case kDown:
        run_units(p, ph, ResidualAdd{a.h, a.hidden}, a.act, true, ring, stream, reduce);
        break;
      default:
        norm_rows(p, a.final_norm, xs, norm_red);
        run_units(p, ph, StoreColumns{a.logits, a.vocab_cols, SkinnyEpilogue::Kind::kStore}, xs, false, ring,
                  stream, reduce);
        break;
    }
  }
  asm volatile("cp.async.wait_all;\n" ::: "memory");
}

// The attention's arrival counters: one per (row, KV head) of the largest batch, whatever this step's rows (so a
// smaller step never finds a larger one's partials where its counters are).
int64_t counter_bytes(int kv_heads) {
  return (static_cast<int64_t>(kMegakernelMaxRows) * kv_heads * 4 + 255) / 256 * 256;
}

int device_sms() {
  int device = 0, sms = 0;
  cudaError_t e = cudaGetDevice(&device);
  static int cached[64] = {};  // per device: the SM count does not change
  if (e == cudaSuccess && device < 64 && cached[device] > 0) return cached[device];
  if (e == cudaSuccess) e = cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device);
  if (e == cudaSuccess && device < 64) cached[device] = sms;
  if (e != cudaSuccess)
    throw Error(std::string("nvrar-llm: persistent decode kernel: reading the SM count: ") + cudaGetErrorString(e));
  return sms;
}

}  // namespace

std::string decode_megakernel_refusal(int rows, int num_layers, int hidden, int q_heads, int kv_heads, int head_dim,
                                      int inter, int64_t vocab_cols) {
  const int64_t q_cols = static_cast<int64_t>(q_heads) * head_dim;
  const int group = kv_heads > 0 ? q_heads / kv_heads : 0;
  if (rows < 1 || rows > kMegakernelMaxRows)
    return "batch " + std::to_string(rows) + " (takes 1 to " + std::to_string(kMegakernelMaxRows) + " rows)";
  if (num_layers < 1 || num_layers > kMegakernelMaxLayers)
    return std::to_string(num_layers) + " layers (takes 1 to " + std::to_string(kMegakernelMaxLayers) + ")";
  if (head_dim != 64 && head_dim != 128) return "head_dim " + std::to_string(head_dim) + " (takes 64 or 128)";
  if (kv_heads < 1 || q_heads % kv_heads != 0 || (group != 1 && group != 2 && group != 4 && group != 8))
    return std::to_string(q_heads) + " query heads over " + std::to_string(kv_heads) +
           " KV heads (takes 1, 2, 4 or 8 query heads per KV head)";
  if (hidden % kChunk != 0 || q_cols % kChunk != 0 || inter % kChunk != 0)
    return "hidden_size " + std::to_string(hidden) + ", q_heads x head_dim " + std::to_string(q_cols) +
           ", intermediate_size " + std::to_string(inter) + " (takes multiples of " + std::to_string(kChunk) + ")";
  if (hidden > 8192) return "hidden_size " + std::to_string(hidden) + " (takes at most 8192)";
  if (vocab_cols % 16 != 0) return "vocabulary shard " + std::to_string(vocab_cols) + " (takes a multiple of 16)";
  if (static_cast<int64_t>(rows) * (std::max<int64_t>(hidden, q_cols) + 32) * 2 > kActBytes)
    return std::to_string(rows) + " rows of " + std::to_string(std::max<int64_t>(hidden, q_cols)) +
           " activations (takes rows x (that + 32) x 2 bytes <= " + std::to_string(kActBytes) + ")";
  int device = 0, optin = 0, per_sm = 0;
  if (cudaGetDevice(&device) != cudaSuccess ||
      cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, device) != cudaSuccess) {
    cudaGetLastError();
    return "no CUDA device to run it on";
  }
  if (optin < kSharedBytes + 512)
    return "this GPU's " + std::to_string(optin) + " bytes of shared memory per block (takes " +
           std::to_string(kSharedBytes + 512) + ")";
  cudaFuncSetAttribute(decode_megakernel_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, kSharedBytes);
  if (cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, decode_megakernel_kernel, kThreads, kSharedBytes) !=
          cudaSuccess ||
      per_sm < 1) {
    cudaGetLastError();
    return "no SM of this GPU holds a block of the kernel";
  }
  return "";
}

namespace {

struct WorkspaceLayout {
  int64_t counters, attention_partials, unit_counters, unit_partials, bytes;
};
WorkspaceLayout layout(int max_rows, int q_heads, int kv_heads, int head_dim, int hidden, int inter,
                       int64_t vocab_cols) {
  const auto round = [](int64_t b) { return (b + 255) / 256 * 256; };
  const int64_t blocks = device_sms(), splits = blocks;  // at most one split per block
  const int64_t rows = std::clamp(max_rows, 1, kMegakernelMaxRows);
  const int64_t units = std::max({static_cast<int64_t>(q_heads + 2 * kv_heads) * head_dim, int64_t{hidden},
                                  2 * int64_t{inter}, vocab_cols}) / 16;
  WorkspaceLayout l{};
  l.counters = 256;  // after the grid barrier's words
  l.attention_partials = l.counters + counter_bytes(kv_heads);
  l.unit_counters = l.attention_partials + round(rows * q_heads * splits * (head_dim + 2) * 4);
  l.unit_partials = l.unit_counters + round(units * 4);
  l.bytes = l.unit_partials + blocks * 2 * 128 * 4;
  return l;
}

}  // namespace

int64_t decode_megakernel_workspace_bytes(int max_rows, int q_heads, int kv_heads, int head_dim, int hidden, int inter,
                                          int64_t vocab_cols) {
  return layout(max_rows, q_heads, kv_heads, head_dim, hidden, inter, vocab_cols).bytes;
}

void decode_megakernel(const MegakernelArgs& args, cudaStream_t stream) {
  const std::string refusal = decode_megakernel_refusal(args.rows, args.num_layers, args.hidden, args.q_heads,
                                                        args.kv_heads, args.head_dim, args.inter, args.vocab_cols);
  if (!refusal.empty()) throw Error("nvrar-llm: persistent decode kernel: " + refusal);
  const WorkspaceLayout l =
      layout(args.rows, args.q_heads, args.kv_heads, args.head_dim, args.hidden, args.inter, args.vocab_cols);
  const int64_t need = l.bytes;
  if (args.workspace == nullptr || args.workspace_bytes < need)
    throw Error("nvrar-llm: persistent decode kernel: a workspace of " + std::to_string(args.workspace_bytes) +
                " bytes for " + std::to_string(args.rows) + " rows (takes " + std::to_string(need) + ")");
  Params p{};
  p.a = args;
  p.blocks = device_sms();
  // Attention splits: about one item per block over the rows' KV heads, at least 64 keys each, in warps of 32 keys.
  const int64_t max_len = std::max<int64_t>(1, args.max_len);
  const int64_t heads = static_cast<int64_t>(args.rows) * args.kv_heads;
  int64_t splits = std::clamp<int64_t>((p.blocks + heads - 1) / heads, 1, (max_len + 63) / 64);
  int64_t keys = (max_len + splits - 1) / splits;
  keys = (keys + 31) / 32 * 32;
  p.keys_per_split = static_cast<int>(keys);
  p.splits = static_cast<int>((max_len + keys - 1) / keys);
  char* w = static_cast<char*>(args.workspace);
  p.counters = reinterpret_cast<unsigned*>(w + l.counters);
  p.part_acc = reinterpret_cast<float*>(w + l.attention_partials);
  p.part_ml = p.part_acc + static_cast<int64_t>(args.rows) * args.q_heads * p.splits * args.head_dim;
  p.unit_counters = reinterpret_cast<unsigned*>(w + l.unit_counters);
  p.unit_partials = reinterpret_cast<float*>(w + l.unit_partials);

  cudaLaunchConfig_t config{};
  config.gridDim = dim3(static_cast<unsigned>(p.blocks));
  config.blockDim = dim3(kThreads);
  config.dynamicSmemBytes = kSharedBytes;
  config.stream = stream;
  cudaLaunchAttribute attribute{};
  attribute.id = cudaLaunchAttributeCooperative;
  attribute.val.cooperative = 1;
  config.attrs = &attribute;
  config.numAttrs = 1;
  cudaError_t e = cudaLaunchKernelEx(&config, decode_megakernel_kernel, p);
  if (e == cudaSuccess) e = cudaGetLastError();
  if (e != cudaSuccess)
    throw Error("nvrar-llm: persistent decode kernel: launch of " + std::to_string(p.blocks) + " blocks x " +
                std::to_string(kThreads) + " threads with " + std::to_string(kSharedBytes) +
                " bytes of shared memory failed: " + cudaGetErrorString(e));
}

}  // namespace nvrar::engine::gpu
