// Split-K attention over the KV cache (attention.h).
//
// Kernel 1 (partial): grid (splits, q_heads, n); 4 warps. Lane l of a warp holds dims l, l + 32, ... of the query
//   (head_dim / 32 of them). Warp w takes keys begin + w, begin + w + 4, ... of the split: score = q . k / sqrt(D)
//   by a warp reduction, online softmax (running max m, sum l, acc = sum p v). The four warps merge through shared
//   memory; the block writes m, l and acc[D] of its split to scratch.
// Kernel 2 (combine): grid (q_heads, n); head_dim threads: merges the splits (rescaling by exp(m_s - m)), divides
//   by the total sum and rounds to bf16.
// No inter-block synchronisation: the two kernels are ordered by the stream.
#include "engine/gpu/attention.h"

#include <cuda_runtime.h>

#include <cmath>

#include "core/numeric.h"

namespace nvrar::engine::gpu {

namespace {

using core::Bf16;
constexpr int kWarps = 4;
constexpr int kMaxDimsPerLane = 8;  // head_dim <= 256

__device__ __forceinline__ float f(bf16_t v) { return core::to_float(Bf16{v}); }

__host__ __device__ int64_t splits_for(int64_t max_len) { return (max_len + kKeysPerSplit - 1) / kKeysPerSplit; }

__global__ void __launch_bounds__(kWarps * 32)
    attention_partial_kernel(const bf16_t* qkv, const int32_t* seq, const int32_t* lengths, const bf16_t* cache_k,
                             const bf16_t* cache_v, AttentionShape s, float* scratch) {
  const int split = blockIdx.x, head = blockIdx.y;
  const int64_t t = blockIdx.z;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int dims = s.head_dim / 32;
  const int64_t len = lengths[t];
  const int64_t begin = static_cast<int64_t>(split) * kKeysPerSplit;
  const int64_t end = begin + kKeysPerSplit < len ? begin + kKeysPerSplit : len;
  const int64_t splits = splits_for(s.max_len);
  float* out = scratch + ((t * s.q_heads + head) * splits + split) * (2 + s.head_dim);
  if (begin >= len) {  // an empty split: contributes nothing
    if (threadIdx.x == 0) {
      out[0] = -INFINITY;
      out[1] = 0.0f;
    }
    for (int d = threadIdx.x; d < s.head_dim; d += blockDim.x) out[2 + d] = 0.0f;
    return;
  }
  const int kv_head = head / (s.q_heads / s.kv_heads);
  const float scale = rsqrtf(static_cast<float>(s.head_dim));
  float q[kMaxDimsPerLane];
  const bf16_t* qrow = qkv + t * s.qkv_cols + static_cast<int64_t>(head) * s.head_dim;
  for (int i = 0; i < dims; ++i) q[i] = f(qrow[lane + 32 * i]);
  const int64_t base = (static_cast<int64_t>(seq[t]) * s.kv_heads + kv_head) * s.max_seq;
  float m = -INFINITY, l = 0.0f, acc[kMaxDimsPerLane] = {};
  for (int64_t j = begin + warp; j < end; j += kWarps) {
    const bf16_t* k = cache_k + (base + j) * s.head_dim;
    float dot = 0.0f;
    for (int i = 0; i < dims; ++i) dot += q[i] * f(k[lane + 32 * i]);
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) dot += __shfl_xor_sync(0xffffffffu, dot, o);
    const float score = dot * scale;
    const float m_new = fmaxf(m, score);
    const float correction = __expf(m - m_new);  // 0 on the first key (m = -inf)
    const float p = __expf(score - m_new);
    l = l * correction + p;
    const bf16_t* v = cache_v + (base + j) * s.head_dim;
    for (int i = 0; i < dims; ++i) acc[i] = acc[i] * correction + p * f(v[lane + 32 * i]);
    m = m_new;
  }
  // Merge the warps: shared m, l per warp, then acc rescaled to the block's max.
  __shared__ float sm[kWarps], sl[kWarps];
  __shared__ float sacc[kWarps][256];
  if (lane == 0) {
    sm[warp] = m;
    sl[warp] = l;
  }
  for (int i = 0; i < dims; ++i) sacc[warp][lane + 32 * i] = acc[i];
  __syncthreads();
  float bm = -INFINITY;
  for (int w = 0; w < kWarps; ++w) bm = fmaxf(bm, sm[w]);
  if (threadIdx.x == 0) {
    float bl = 0.0f;
    for (int w = 0; w < kWarps; ++w)
      if (sm[w] > -INFINITY) bl += sl[w] * __expf(sm[w] - bm);
    out[0] = bm;
    out[1] = bl;
  }
  for (int d = threadIdx.x; d < s.head_dim; d += blockDim.x) {
    float a = 0.0f;
    for (int w = 0; w < kWarps; ++w)
      if (sm[w] > -INFINITY) a += sacc[w][d] * __expf(sm[w] - bm);
    out[2 + d] = a;
  }
}

__global__ void attention_combine_kernel(AttentionShape s, const int32_t* lengths, const float* scratch,
                                         bf16_t* out) {
  const int head = blockIdx.x;
  const int64_t t = blockIdx.y;
  const int64_t splits = splits_for(s.max_len);
  const int64_t used = (lengths[t] + kKeysPerSplit - 1) / kKeysPerSplit;
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

int64_t attention_scratch_floats(const AttentionShape& s) {
  return s.n * s.q_heads * splits_for(s.max_len) * (2 + s.head_dim);
}

void attention(const bf16_t* qkv, const int32_t* seq, const int32_t* lengths, const bf16_t* cache_k,
               const bf16_t* cache_v, const AttentionShape& s, float* scratch, bf16_t* out, cudaStream_t stream) {
  const dim3 grid(static_cast<unsigned>(splits_for(s.max_len)), static_cast<unsigned>(s.q_heads),
                  static_cast<unsigned>(s.n));
  attention_partial_kernel<<<grid, kWarps * 32, 0, stream>>>(qkv, seq, lengths, cache_k, cache_v, s, scratch);
  attention_combine_kernel<<<dim3(static_cast<unsigned>(s.q_heads), static_cast<unsigned>(s.n)),
                             static_cast<unsigned>(s.head_dim), 0, stream>>>(s, lengths, scratch, out);
}

}  // namespace nvrar::engine::gpu
