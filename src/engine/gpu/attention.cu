// Split-K attention over the KV cache (attention.h).
//
// Kernel 1 (partial): grid (splits, q_heads / G, n); 4 warps. A block serves G query heads that share one KV head
//   (G: the largest of 8, 4, 2, 1 dividing q_heads / kv_heads that still leaves ~2 blocks per SM), so each key and
//   value row is read once for all G heads instead of once per head. A key row of head_dim bf16 is read by head_dim / 8 lanes with one 16-byte load
//   each, so a warp works on 32 / (head_dim / 8) keys at once ("slots": 8 per block at head_dim 128). Each slot
//   takes keys begin + slot, begin + slot + slots, ... of its split, kUnroll per iteration (all loads issued before
//   the math): per head, score = q . k / sqrt(D) summed by xor-shuffles inside the slot's lanes, online softmax
//   (running max m, sum l, acc = sum p v over the slot's 8 dims per lane). The iteration count is uniform across
//   the block (a slot past the end masks its key), so the shuffles never diverge. The slots merge through shared
//   memory; the block writes m, l and acc[D] of its split for each of its heads to scratch.
// Kernel 2 (combine): grid (q_heads, n); head_dim threads: merges the splits (rescaling by exp(m_s - m)), divides
//   by the total sum and rounds to bf16.
// Split size: keys_per_split() starts at 32 keys and doubles while the grid would exceed ~1024 blocks, so a decode
//   step (few queries) gets many short splits and a prefill (many queries) few long ones.
// No inter-block synchronisation: the two kernels are ordered by the stream.
// attention() also dispatches DecodeAttention::kFused (attention_fused.cu) and kTensorCore (attention_mma.cu).
// Scratch: those kernels' counters (attention_counter_floats), then the partials of whichever kernel runs, so split-K
// calls (a prefill) never touch the counters a later fused or tensor-core call relies on being 0.
#include "engine/gpu/attention.h"

#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>

#include "core/numeric.h"
#include "engine/gpu/attention_fused.h"
#include "engine/gpu/attention_mma.h"
#include "engine/gpu/bf16_vector.cuh"
#include "gpu/device/pdl.cuh"

namespace nvrar::engine::gpu {

namespace {

using core::Bf16;
constexpr int kWarps = 4;
constexpr int kUnroll = 4;  // keys per slot per iteration
constexpr int64_t kTargetBlocks = 1024;
constexpr int64_t kMinKeysPerSplit = 32;

constexpr int64_t kMinBlocks = 264;  // two per SM of an H100 / H200: below it, parallelism beats K/V sharing

// Query heads per block: the largest of 8, 4, 2, 1 that divides the grouped-query ratio and still gives the grid
// kMinBlocks blocks at the shortest splits (a short context has few splits: there one head per block fills the GPU).
int heads_per_block(int q_heads, int kv_heads, int64_t n, int64_t max_len) {
  const int ratio = q_heads / kv_heads;
  const int64_t splits = (max_len + kMinKeysPerSplit - 1) / kMinKeysPerSplit;
  for (int g = 8; g > 1; g /= 2)
    if (ratio % g == 0 && splits * n * (q_heads / g) >= kMinBlocks) return g;
  return 1;
}

int64_t keys_per_split(int64_t n, int groups, int64_t max_len) {
  int64_t kps = kMinKeysPerSplit;
  while (kps < max_len && (max_len + kps - 1) / kps * n * groups > kTargetBlocks) kps *= 2;
  return kps;
}

template <int kLanesPerKey, int G>
__global__ void __launch_bounds__(kWarps * 32)
    attention_partial_kernel(const bf16_t* qkv, const int32_t* seq, const int32_t* lengths, const bf16_t* cache_k,
                             const bf16_t* cache_v, AttentionShape s, int64_t kps, float* scratch) {
  constexpr int D = kLanesPerKey * 8;
  constexpr int kSlots = kWarps * 32 / kLanesPerKey;
  const int split = blockIdx.x, head0 = blockIdx.y * G;
  const int64_t t = blockIdx.z;
  const int slot = threadIdx.x / kLanesPerKey, sub = threadIdx.x % kLanesPerKey;
  const int64_t len = lengths[t];
  const int64_t begin = static_cast<int64_t>(split) * kps;
  const int64_t end = begin + kps < len ? begin + kps : len;
  const int64_t splits = (s.max_len + kps - 1) / kps;
  auto out_of = [&](int g) { return scratch + ((t * s.q_heads + head0 + g) * splits + split) * (2 + D); };
  if (begin >= len) {  // an empty split: contributes nothing
#pragma unroll
    for (int g = 0; g < G; ++g) {
      float* out = out_of(g);
      if (threadIdx.x == 0) {
        out[0] = -INFINITY;
        out[1] = 0.0f;
      }
      for (int d = threadIdx.x; d < D; d += blockDim.x) out[2 + d] = 0.0f;
    }
    return;
  }
  const int kv_head = head0 / (s.q_heads / s.kv_heads);
  const float scale = rsqrtf(static_cast<float>(D));
  float q[G][8];
#pragma unroll
  for (int g = 0; g < G; ++g) {
    unpack_bf16x8(
        *reinterpret_cast<const uint4*>(qkv + t * s.qkv_cols + static_cast<int64_t>(head0 + g) * D + sub * 8), q[g]);
#pragma unroll
    for (int i = 0; i < 8; ++i) q[g][i] *= scale;
  }
  const int64_t base = (static_cast<int64_t>(seq[t]) * s.kv_heads + kv_head) * s.max_seq;
  float m[G], l[G], acc[G][8];
#pragma unroll
  for (int g = 0; g < G; ++g) {
    m[g] = -INFINITY;
    l[g] = 0.0f;
#pragma unroll
    for (int i = 0; i < 8; ++i) acc[g][i] = 0.0f;
  }
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
      float k[8], v[8];
      unpack_bf16x8(kraw[u], k);
      unpack_bf16x8(vraw[u], v);
      float dot[G];
#pragma unroll
      for (int g = 0; g < G; ++g) {
        dot[g] = 0.0f;
#pragma unroll
        for (int i = 0; i < 8; ++i) dot[g] += q[g][i] * k[i];
      }
#pragma unroll
      for (int o = kLanesPerKey / 2; o > 0; o >>= 1)
#pragma unroll
        for (int g = 0; g < G; ++g) dot[g] += __shfl_xor_sync(0xffffffffu, dot[g], o);
      if (j0 + u * kSlots + slot >= end) continue;  // after the shuffles: every lane takes part in them
#pragma unroll
      for (int g = 0; g < G; ++g) {
        const float m_new = fmaxf(m[g], dot[g]);
        const float correction = __expf(m[g] - m_new);  // 0 on the slot's first key (m = -inf)
        const float p = __expf(dot[g] - m_new);
        l[g] = l[g] * correction + p;
#pragma unroll
        for (int i = 0; i < 8; ++i) acc[g][i] = acc[g][i] * correction + p * v[i];
        m[g] = m_new;
      }
    }
  }
  // Merge the slots, one head at a time: shared m, l per slot, then acc rescaled to the block's max.
  __shared__ float sm[kSlots], sl[kSlots];
  __shared__ float sacc[kSlots][D];
#pragma unroll
  for (int g = 0; g < G; ++g) {
    if (g > 0) __syncthreads();  // the previous head's merge has read the shared arrays
    if (sub == 0) {
      sm[slot] = m[g];
      sl[slot] = l[g];
    }
#pragma unroll
    for (int i = 0; i < 8; ++i) sacc[slot][sub * 8 + i] = acc[g][i];
    __syncthreads();
    float bm = -INFINITY;
    for (int w = 0; w < kSlots; ++w) bm = fmaxf(bm, sm[w]);
    float* out = out_of(g);
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
  // keys_per_split() keeps splits x n x groups at most max(kTargetBlocks, n x groups) for any n <= s.n, so the
  // (query, head, split) entries are at most max(kTargetBlocks, n) x q_heads.
  const int64_t split_k = std::max<int64_t>(s.n, kTargetBlocks) * s.q_heads * (2 + s.head_dim);
  return attention_counter_floats() +
         std::max({split_k, fused_attention_partial_floats(s), mma_attention_partial_floats(s)});
}

namespace {

template <int kLanesPerKey>
void launch_partial(int group, dim3 grid, const bf16_t* qkv, const int32_t* seq, const int32_t* lengths,
                    const bf16_t* cache_k, const bf16_t* cache_v, const AttentionShape& s, int64_t kps, float* scratch,
                    cudaStream_t stream) {
  const unsigned threads = kWarps * 32;
  switch (group) {
    case 8:
      attention_partial_kernel<kLanesPerKey, 8><<<grid, threads, 0, stream>>>(qkv, seq, lengths, cache_k, cache_v, s,
                                                                              kps, scratch);
      break;
    case 4:
      attention_partial_kernel<kLanesPerKey, 4><<<grid, threads, 0, stream>>>(qkv, seq, lengths, cache_k, cache_v, s,
                                                                              kps, scratch);
      break;
    case 2:
      attention_partial_kernel<kLanesPerKey, 2><<<grid, threads, 0, stream>>>(qkv, seq, lengths, cache_k, cache_v, s,
                                                                              kps, scratch);
      break;
    default:
      attention_partial_kernel<kLanesPerKey, 1><<<grid, threads, 0, stream>>>(qkv, seq, lengths, cache_k, cache_v, s,
                                                                              kps, scratch);
      break;
  }
}

}  // namespace

void attention(const bf16_t* qkv, const int32_t* seq, const int32_t* lengths, const bf16_t* cache_k,
               const bf16_t* cache_v, const AttentionShape& s, DecodeAttention kernel, float* scratch, bf16_t* out,
               cudaStream_t stream) {
  unsigned* counters = reinterpret_cast<unsigned*>(scratch);
  scratch += attention_counter_floats();  // the partials of whichever kernel runs
  if (kernel == DecodeAttention::kTensorCore && mma_attention_supports(s.head_dim)) {
    mma_attention(qkv, seq, lengths, cache_k, cache_v, s, counters, scratch, out, stream);
    return;
  }
  if (kernel != DecodeAttention::kSplitK) {  // kFused, and kTensorCore at other head sizes
    fused_attention(qkv, seq, lengths, cache_k, cache_v, s, counters, scratch, out, stream);
    return;
  }
  const int group = heads_per_block(s.q_heads, s.kv_heads, s.n, s.max_len);
  const int64_t kps = keys_per_split(s.n, s.q_heads / group, s.max_len);
  const dim3 grid(static_cast<unsigned>((s.max_len + kps - 1) / kps), static_cast<unsigned>(s.q_heads / group),
                  static_cast<unsigned>(s.n));
  switch (s.head_dim) {
    case 32:
      launch_partial<4>(group, grid, qkv, seq, lengths, cache_k, cache_v, s, kps, scratch, stream);
      break;
    case 64:
      launch_partial<8>(group, grid, qkv, seq, lengths, cache_k, cache_v, s, kps, scratch, stream);
      break;
    case 128:
      launch_partial<16>(group, grid, qkv, seq, lengths, cache_k, cache_v, s, kps, scratch, stream);
      break;
    default:  // 256 (attention_supports_head_dim)
      launch_partial<32>(group, grid, qkv, seq, lengths, cache_k, cache_v, s, kps, scratch, stream);
      break;
  }
  attention_combine_kernel<<<dim3(static_cast<unsigned>(s.q_heads), static_cast<unsigned>(s.n)),
                             static_cast<unsigned>(s.head_dim), 0, stream>>>(s, kps, lengths, scratch, out);
}

}  // namespace nvrar::engine::gpu
