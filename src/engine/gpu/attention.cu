// Split-K attention over the KV cache (attention.h).
//
// Kernel 1 (partial): grid (splits, q_heads, n); 4 warps. A key row of head_dim bf16 is read by head_dim / 8 lanes
//   with one 16-byte load each, so a warp works on 32 / (head_dim / 8) keys at once ("slots": 8 per block at
//   head_dim 128). Each slot takes keys begin + slot, begin + slot + slots, ... of its split, two per iteration
//   (both loads issued before the math): score = q . k / sqrt(D) summed by xor-shuffles inside the slot's lanes,
//   online softmax (running max m, sum l, acc = sum p v over the slot's 8 dims per lane). The iteration count is
//   uniform across the block (a slot past the end masks its key), so the shuffles never diverge. The slots merge
//   through shared memory; the block writes m, l and acc[D] of its split to scratch.
// Kernel 2 (combine): grid (q_heads, n); head_dim threads: merges the splits (rescaling by exp(m_s - m)), divides
//   by the total sum and rounds to bf16.
// Split size: keys_per_split() starts at 32 keys and doubles while the grid would exceed ~1024 blocks, so a decode
//   step (few queries) gets many short splits and a prefill (many queries) few long ones.
// No inter-block synchronisation: the two kernels are ordered by the stream.
#include "engine/gpu/attention.h"

#include <cuda_runtime.h>

#include <cmath>

#include "core/numeric.h"
#include "engine/gpu/bf16_vector.cuh"
#include "gpu/device/pdl.cuh"

namespace nvrar::engine::gpu {

namespace {

using core::Bf16;
constexpr int kWarps = 4;
constexpr int kUnroll = 2;  // keys per slot per iteration
constexpr int64_t kTargetBlocks = 1024;
constexpr int64_t kMinKeysPerSplit = 32;


__host__ __device__ int64_t keys_per_split(int64_t n, int q_heads, int64_t max_len) {
  int64_t kps = kMinKeysPerSplit;
  while (kps < max_len && (max_len + kps - 1) / kps * n * q_heads > kTargetBlocks) kps *= 2;
  return kps;
}

template <int kLanesPerKey>
__global__ void __launch_bounds__(kWarps * 32)
    attention_partial_kernel(const bf16_t* qkv, const int32_t* seq, const int32_t* lengths, const bf16_t* cache_k,
                             const bf16_t* cache_v, AttentionShape s, int64_t kps, float* scratch) {
  constexpr int D = kLanesPerKey * 8;
  constexpr int kSlots = kWarps * 32 / kLanesPerKey;
  const int split = blockIdx.x, head = blockIdx.y;
  const int64_t t = blockIdx.z;
  const int slot = threadIdx.x / kLanesPerKey, sub = threadIdx.x % kLanesPerKey;
  const int64_t len = lengths[t];
  const int64_t begin = static_cast<int64_t>(split) * kps;
  const int64_t end = begin + kps < len ? begin + kps : len;
  const int64_t splits = (s.max_len + kps - 1) / kps;
  float* out = scratch + ((t * s.q_heads + head) * splits + split) * (2 + D);
  if (begin >= len) {  // an empty split: contributes nothing
    if (threadIdx.x == 0) {
      out[0] = -INFINITY;
      out[1] = 0.0f;
    }
    for (int d = threadIdx.x; d < D; d += blockDim.x) out[2 + d] = 0.0f;
    return;
  }
  const int kv_head = head / (s.q_heads / s.kv_heads);
  const float scale = rsqrtf(static_cast<float>(D));
  float q[8];
  unpack_bf16x8(*reinterpret_cast<const uint4*>(qkv + t * s.qkv_cols + static_cast<int64_t>(head) * D + sub * 8), q);
  const int64_t base = (static_cast<int64_t>(seq[t]) * s.kv_heads + kv_head) * s.max_seq;
  float m = -INFINITY, l = 0.0f, acc[8] = {};
  for (int64_t j0 = begin; j0 < end; j0 += kSlots * kUnroll) {
    uint4 kraw[kUnroll], vraw[kUnroll];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int64_t j = j0 + u * kSlots + slot;
      if (j < end) {
        kraw[u] = *reinterpret_cast<const uint4*>(cache_k + (base + j) * D + sub * 8);
        vraw[u] = *reinterpret_cast<const uint4*>(cache_v + (base + j) * D + sub * 8);
      } else {
        kraw[u] = vraw[u] = make_uint4(0, 0, 0, 0);
      }
    }
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      float k[8];
      unpack_bf16x8(kraw[u], k);
      float dot = 0.0f;
#pragma unroll
      for (int i = 0; i < 8; ++i) dot += q[i] * k[i];
#pragma unroll
      for (int o = kLanesPerKey / 2; o > 0; o >>= 1) dot += __shfl_xor_sync(0xffffffffu, dot, o);
      if (j0 + u * kSlots + slot >= end) continue;  // after the shuffles: every lane takes part in them
      const float score = dot * scale;
      const float m_new = fmaxf(m, score);
      const float correction = __expf(m - m_new);  // 0 on the slot's first key (m = -inf)
      const float p = __expf(score - m_new);
      l = l * correction + p;
      float v[8];
      unpack_bf16x8(vraw[u], v);
#pragma unroll
      for (int i = 0; i < 8; ++i) acc[i] = acc[i] * correction + p * v[i];
      m = m_new;
    }
  }
  // Merge the slots: shared m, l per slot, then acc rescaled to the block's max.
  __shared__ float sm[kSlots], sl[kSlots];
  __shared__ float sacc[kSlots][D];
  if (sub == 0) {
    sm[slot] = m;
    sl[slot] = l;
  }
#pragma unroll
  for (int i = 0; i < 8; ++i) sacc[slot][sub * 8 + i] = acc[i];
  __syncthreads();
  float bm = -INFINITY;
  for (int w = 0; w < kSlots; ++w) bm = fmaxf(bm, sm[w]);
  if (threadIdx.x == 0) {
    float bl = 0.0f;
    for (int w = 0; w < kSlots; ++w)
      if (sm[w] > -INFINITY) bl += sl[w] * __expf(sm[w] - bm);
    out[0] = bm;
    out[1] = bl;
  }
  for (int d = threadIdx.x; d < D; d += blockDim.x) {
    float a = 0.0f;
    for (int w = 0; w < kSlots; ++w)
      if (sm[w] > -INFINITY) a += sacc[w][d] * __expf(sm[w] - bm);
    out[2 + d] = a;
  }
}

__global__ void attention_combine_kernel(AttentionShape s, int64_t kps, const int32_t* lengths, const float* scratch,
                                         bf16_t* out) {
  nvrar::gpu::dev::allow_next_grid();  // the GEMM after this kernel may start streaming its weights
  const int head = blockIdx.x;
  const int64_t t = blockIdx.y;
  const int64_t splits = (s.max_len + kps - 1) / kps;
  const int64_t used = (lengths[t] + kps - 1) / kps;
  const float* part = scratch + (t * s.q_heads + head) * splits * (2 + s.head_dim);
  float m = -INFINITY;
  for (int64_t k = 0; k < used; ++k) m = fmaxf(m, part[k * (2 + s.head_dim)]);
  for (int d = threadIdx.x; d < s.head_dim; d += blockDim.x) {
    float l = 0.0f, a = 0.0f;
    for (int64_t k = 0; k < used; ++k) {
      const float* p = part + k * (2 + s.head_dim);
      const float w = __expf(p[0] - m);
      l += p[1] * w;
      a += p[2 + d] * w;
    }
    out[t * s.q_heads * s.head_dim + static_cast<int64_t>(head) * s.head_dim + d] =
        core::from_float<Bf16>(l > 0.0f ? a / l : 0.0f).bits;
  }
}

}  // namespace

bool attention_supports_head_dim(int head_dim) {
  return head_dim == 32 || head_dim == 64 || head_dim == 128 || head_dim == 256;
}

int64_t attention_scratch_floats(const AttentionShape& s) {
  // keys_per_split() keeps splits x n x q_heads at most max(kTargetBlocks, n x q_heads) for any n <= s.n.
  const int64_t entries = s.n * s.q_heads > kTargetBlocks ? s.n * s.q_heads : kTargetBlocks;
  return entries * (2 + s.head_dim);
}

void attention(const bf16_t* qkv, const int32_t* seq, const int32_t* lengths, const bf16_t* cache_k,
               const bf16_t* cache_v, const AttentionShape& s, float* scratch, bf16_t* out, cudaStream_t stream) {
  const int64_t kps = keys_per_split(s.n, s.q_heads, s.max_len);
  const dim3 grid(static_cast<unsigned>((s.max_len + kps - 1) / kps), static_cast<unsigned>(s.q_heads),
                  static_cast<unsigned>(s.n));
  const unsigned threads = kWarps * 32;
  switch (s.head_dim) {
    case 32:
      attention_partial_kernel<4><<<grid, threads, 0, stream>>>(qkv, seq, lengths, cache_k, cache_v, s, kps, scratch);
      break;
    case 64:
      attention_partial_kernel<8><<<grid, threads, 0, stream>>>(qkv, seq, lengths, cache_k, cache_v, s, kps, scratch);
      break;
    case 128:
      attention_partial_kernel<16><<<grid, threads, 0, stream>>>(qkv, seq, lengths, cache_k, cache_v, s, kps, scratch);
      break;
    default:  // 256 (attention_supports_head_dim)
      attention_partial_kernel<32><<<grid, threads, 0, stream>>>(qkv, seq, lengths, cache_k, cache_v, s, kps, scratch);
      break;
  }
  attention_combine_kernel<<<dim3(static_cast<unsigned>(s.q_heads), static_cast<unsigned>(s.n)),
                             static_cast<unsigned>(s.head_dim), 0, stream>>>(s, kps, lengths, scratch, out);
}

}  // namespace nvrar::engine::gpu
