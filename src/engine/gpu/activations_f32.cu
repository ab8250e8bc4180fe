// The fp32-input RoPE + KV append and SwiGLU of NVRAR_LLM_ACTIVATIONS=fp32 (activations_f32.h).
//
// rope_append_f32_kernel. Purpose: rotate the q and k heads of fp32 q/k/v rows, round them and the v heads to bf16,
//   and append k and v to the KV cache. Algorithm: one block per token row (grid-stride past 65535 rows); threads
//   0 .. half - 1 first put the row's fp32 cos and sin per pair in shared memory (rope_cos_sin_f32), then item j of
//   heads x half is pair j % half of head j / half: consecutive threads read consecutive fp32 elements (coalesced
//   4-byte loads) of both halves, rotate them in fp32 (rope_rotate_f32) and write the two results rounded once to
//   bf16. Launch: 256 threads, head_dim floats of dynamic shared memory. Sync: one barrier after the cos/sin table,
//   one before the next row's.
// swiglu_f32_kernel. Purpose: silu(gate) x up in fp32, rounded once (swiglu_f32_one). Algorithm: one thread per 8
//   intermediate indices (two 16-byte loads of gate and two of up, one 16-byte store) where inter is a multiple of 8
//   and the buffers 16-byte aligned, else one per index.
//   Launch: 256 threads per block, enough blocks for every unit. Sync: none.
// SwiGLU, like layers.cu's, lets the next PDL-launched kernel of the stream (the down GEMM) start early
// (allow_next_grid); its griddepcontrol.wait still waits for this one to end.
#include "engine/gpu/activations_f32.h"

#include <cuda_runtime.h>

#include <algorithm>
#include <string>

#include "engine/gpu/pointwise.cuh"
#include "gpu/device/pdl.cuh"
#include "nvrar/types.h"

namespace nvrar::engine::gpu {

namespace {

constexpr int kThreads = 256;

__global__ void __launch_bounds__(kThreads)
    rope_append_f32_kernel(const float* qkv32, int64_t n, int64_t qkv_cols, int q_heads, int kv_heads, int head_dim,
                           const int32_t* positions, const float* inv_freq, const int32_t* seq, bf16_t* cache_k,
                           bf16_t* cache_v, int64_t max_seq, bf16_t* qkv) {
  extern __shared__ float cos_sin[];  // [half] cos, then [half] sin
  const int half = head_dim / 2;
  const int heads = q_heads + 2 * kv_heads;
  for (int64_t t = blockIdx.x; t < n; t += gridDim.x) {
    const int32_t position = positions[t];
    for (int p = threadIdx.x; p < half; p += blockDim.x)
      rope_cos_sin_f32(position, inv_freq[p], cos_sin[p], cos_sin[half + p]);
    __syncthreads();
    const float* in = qkv32 + t * qkv_cols;
    bf16_t* out = qkv + t * qkv_cols;
    for (int j = threadIdx.x; j < heads * half; j += blockDim.x) {
      const int head = j / half, p = j % half;
      const int64_t at = static_cast<int64_t>(head) * head_dim + p;
      bf16_t y1, y2;
      if (head < q_heads + kv_heads) {
        rope_rotate_f32(in[at], in[at + half], cos_sin[p], cos_sin[half + p], y1, y2);
      } else {
        y1 = to_bf16(in[at]);
        y2 = to_bf16(in[at + half]);
      }
      out[at] = y1;
      out[at + half] = y2;
      if (head < q_heads) continue;
      const int kv_head = (head - q_heads) % kv_heads;
      bf16_t* cache = head < q_heads + kv_heads ? cache_k : cache_v;
      bf16_t* row = cache + kv_cache_row(seq[t], kv_heads, kv_head, max_seq, position, head_dim);
      row[p] = y1;
      row[p + half] = y2;
    }
    __syncthreads();  // cos_sin is rewritten for the next row
  }
}

template <int kVector>
__global__ void __launch_bounds__(kThreads)
    swiglu_f32_kernel(const float* gate_up, int64_t n, int64_t inter, bf16_t* out) {
  static_assert(kVector == 1 || kVector == 8, "one element, or 8 (two 16-byte loads of each input)");
  nvrar::gpu::dev::allow_next_grid();  // the GEMM after this kernel may start streaming its weights
  const int64_t units = inter / kVector;
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n * units) return;
  const int64_t t = i / units, j = (i % units) * kVector;
  const float* gate = gate_up + t * 2 * inter + j;
  const float* up = gate + inter;
  if constexpr (kVector == 1) {
    out[t * inter + j] = swiglu_f32_one(*gate, *up);
  } else {
    const float4 g[2] = {reinterpret_cast<const float4*>(gate)[0], reinterpret_cast<const float4*>(gate)[1]};
    const float4 u[2] = {reinterpret_cast<const float4*>(up)[0], reinterpret_cast<const float4*>(up)[1]};
    uint4 packed;
    bf16_t* o = reinterpret_cast<bf16_t*>(&packed);
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      o[4 * h + 0] = swiglu_f32_one(g[h].x, u[h].x);
      o[4 * h + 1] = swiglu_f32_one(g[h].y, u[h].y);
      o[4 * h + 2] = swiglu_f32_one(g[h].z, u[h].z);
      o[4 * h + 3] = swiglu_f32_one(g[h].w, u[h].w);
    }
    *reinterpret_cast<uint4*>(out + t * inter + j) = packed;
  }
}

bool aligned(const void* p) { return reinterpret_cast<std::uintptr_t>(p) % 16 == 0; }
unsigned blocks_for(int64_t threads) { return static_cast<unsigned>((threads + kThreads - 1) / kThreads); }

}  // namespace

void rope_qk_append_f32(const float* qkv32, int64_t n, int64_t qkv_cols, int q_heads, int kv_heads, int head_dim,
                        const int32_t* positions, const float* inv_freq, const int32_t* seq, bf16_t* cache_k,
                        bf16_t* cache_v, int64_t max_seq, bf16_t* qkv, cudaStream_t stream) {
  if (head_dim < 2 || head_dim % 2 != 0 || q_heads < 1 || kv_heads < 1 ||
      qkv_cols < static_cast<int64_t>(q_heads + 2 * kv_heads) * head_dim)
    throw Error("nvrar-llm: rope_qk_append_f32: head_dim " + std::to_string(head_dim) + ", " +
                std::to_string(q_heads) + " q heads, " + std::to_string(kv_heads) + " kv heads in rows of " +
                std::to_string(qkv_cols) + " (takes head_dim even and rows of at least (q + 2 kv heads) head_dim)");
  if (n < 1) return;
  if (qkv32 == nullptr || positions == nullptr || inv_freq == nullptr || seq == nullptr || cache_k == nullptr ||
      cache_v == nullptr || qkv == nullptr || max_seq < 1)
    throw Error("nvrar-llm: rope_qk_append_f32: " + std::to_string(n) +
                " rows need the input, positions, inv_freq, seq, both caches and the output set, and max_seq >= 1");
  const unsigned blocks = static_cast<unsigned>(std::min<int64_t>(n, 65535));
  rope_append_f32_kernel<<<blocks, kThreads, head_dim * sizeof(float), stream>>>(
      qkv32, n, qkv_cols, q_heads, kv_heads, head_dim, positions, inv_freq, seq, cache_k, cache_v, max_seq, qkv);
}

void swiglu_f32(const float* gate_up, int64_t n, int64_t inter, bf16_t* out, cudaStream_t stream) {
  if (n < 1 || inter < 1) return;
  if (inter % 8 == 0 && aligned(gate_up) && aligned(out))
    swiglu_f32_kernel<8><<<blocks_for(n * inter / 8), kThreads, 0, stream>>>(gate_up, n, inter, out);
  else
    swiglu_f32_kernel<1><<<blocks_for(n * inter), kThreads, 0, stream>>>(gate_up, n, inter, out);
}

}  // namespace nvrar::engine::gpu
