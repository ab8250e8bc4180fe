// Element-wise and small kernels of the engine (layers.h). Each kernel: one thread per output element or one block
// per row, as noted; no inter-block synchronisation.
#include "engine/gpu/layers.h"

#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

#include "core/numeric.h"
#include "engine/gpu/bf16_vector.cuh"
#include "engine/gpu/pointwise.cuh"
#include "gpu/device/device_units.cuh"
#include "gpu/device/rmsnorm.cuh"

namespace nvrar::engine::gpu {

namespace {

using core::Bf16;

constexpr int kThreads = 256;
int blocks_for(int64_t n) { return static_cast<int>((n + kThreads - 1) / kThreads); }
bool aligned(const void* p) { return reinterpret_cast<std::uintptr_t>(p) % 16 == 0; }  // 16-byte accesses

// Embedding: one thread per (token, column).
__global__ void embedding_kernel(const int32_t* tokens, int64_t n, const bf16_t* table, int64_t hidden, bf16_t* out) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n * hidden) return;
  const int64_t t = i / hidden;
  out[i] = table[static_cast<int64_t>(tokens[t]) * hidden + i % hidden];
}

// RoPE (+ KV append): one thread per (token, head, pair i < head_dim / 2) over the q and k heads, and, when
// appending, the v heads too. A k thread writes its rotated pair to cache_k as well, a v thread copies its pair.
__global__ void rope_kernel(bf16_t* qkv, int64_t n, int64_t qkv_cols, int q_heads, int kv_heads, int head_dim,
                            const int32_t* positions, const float* inv_freq, const int32_t* seq, bf16_t* cache_k,
                            bf16_t* cache_v, int64_t max_seq) {
  const int half = head_dim / 2;
  const bool append = cache_k != nullptr;
  const int heads = q_heads + (append ? 2 : 1) * kv_heads;
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n * heads * half) return;
  const int pair = static_cast<int>(i % half);
  const int head = static_cast<int>((i / half) % heads);
  const int64_t t = i / (static_cast<int64_t>(half) * heads);
  bf16_t* x = qkv + t * qkv_cols + static_cast<int64_t>(head) * head_dim;  // k heads follow the q heads, v the k
  const int64_t cache_row =
      append ? kv_cache_row(seq[t], kv_heads, (head - q_heads) % kv_heads, max_seq, positions[t], head_dim) : 0;
  if (head >= q_heads + kv_heads) {  // a v head: copy only
    cache_v[cache_row + pair] = x[pair];
    cache_v[cache_row + pair + half] = x[pair + half];
    return;
  }
  bf16_t y1, y2;
  rope_pair(to_f32(x[pair]), to_f32(x[pair + half]), positions[t], inv_freq[pair], y1, y2);
  x[pair] = y1;
  x[pair + half] = y2;
  if (append && head >= q_heads) {
    cache_k[cache_row + pair] = y1;
    cache_k[cache_row + pair + half] = y2;
  }
}

// RoPE (+ KV append), one block per token row (grid-stride past 2^31 - 1 rows), for head_dim a multiple of 16 and
// 16-byte aligned rows: the per-pair kernel above recomputed cos and sin for every head and ran 64-bit index
// arithmetic and 2-byte accesses per pair; a prefill's RoPE + append streams ~0.44 GB per layer at 8 x 2048 tokens.
// Threads 0 .. half - 1 first put the row's bf16-rounded cos and sin per pair in shared memory; then item j of
// heads x (half / 8) is chunk j % (half / 8) (8 consecutive pairs: 16 bytes of each half of the head) of head
// j / (half / 8): q and k heads rotated in place with rope_rotate (the same bits as rope_pair), k heads also to
// cache_k, v heads copied to cache_v, all with 16-byte loads and stores. Threads: heads x half / 8 rounded up to a
// warp, at most 1024 (items stride by the block); dynamic shared memory: head_dim floats.
__global__ void rope_rows_kernel(bf16_t* qkv, int64_t n, int64_t qkv_cols, int q_heads, int kv_heads, int head_dim,
                                 const int32_t* positions, const float* inv_freq, const int32_t* seq, bf16_t* cache_k,
                                 bf16_t* cache_v, int64_t max_seq) {
  extern __shared__ float cos_sin[];  // [half] cos, then [half] sin
  const int half = head_dim / 2, chunks = half / 8;
  const bool append = cache_k != nullptr;
  const int heads = q_heads + (append ? 2 : 1) * kv_heads;
  for (int64_t t = blockIdx.x; t < n; t += gridDim.x) {
    const int32_t position = positions[t];
    for (int p = threadIdx.x; p < half; p += blockDim.x)
      rope_cos_sin(position, inv_freq[p], cos_sin[p], cos_sin[half + p]);
    __syncthreads();
    bf16_t* row = qkv + t * qkv_cols;
    for (int j = threadIdx.x; j < heads * chunks; j += blockDim.x) {
      const int head = j / chunks, p0 = (j % chunks) * 8;
      uint4* x1 = reinterpret_cast<uint4*>(row + head * head_dim + p0);
      uint4* x2 = reinterpret_cast<uint4*>(row + head * head_dim + half + p0);
      uint4 a = *x1, b = *x2;
      if (head < q_heads + kv_heads) {
        float fa[8], fb[8];
        unpack_bf16x8(a, fa);
        unpack_bf16x8(b, fb);
        bf16_t* ya = reinterpret_cast<bf16_t*>(&a);
        bf16_t* yb = reinterpret_cast<bf16_t*>(&b);
#pragma unroll
        for (int i = 0; i < 8; ++i) rope_rotate(fa[i], fb[i], cos_sin[p0 + i], cos_sin[half + p0 + i], ya[i], yb[i]);
        *x1 = a;
        *x2 = b;
      }
      if (!append || head < q_heads) continue;
      const int kv_head = (head - q_heads) % kv_heads;
      bf16_t* cache = head < q_heads + kv_heads ? cache_k : cache_v;
      bf16_t* out = cache + kv_cache_row(seq[t], kv_heads, kv_head, max_seq, position, head_dim);
      *reinterpret_cast<uint4*>(out + p0) = a;
      *reinterpret_cast<uint4*>(out + half + p0) = b;
    }
    __syncthreads();  // cos_sin is rewritten for the next row
  }
}

// SwiGLU: one thread per (token, kVector consecutive intermediate indices): 1, or 8 with 16-byte loads and store
// (inter a multiple of 8, 16-byte aligned buffers). A prefill's SwiGLU streams ~1.4 GB per layer at 8 x 2048 tokens;
// with 2-byte accesses it ran at about a third of HBM's rate.
template <int kVector>
__global__ void swiglu_kernel(const bf16_t* gate_up, int64_t n, int64_t inter, bf16_t* out) {
  static_assert(kVector == 1 || kVector == 8, "one element, or one 16-byte vector of 8");
  nvrar::gpu::dev::allow_next_grid();  // the GEMM after this kernel may start streaming its weights
  const int64_t units = inter / kVector;
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n * units) return;
  const int64_t t = i / units, j = (i % units) * kVector;
  const bf16_t* gate = gate_up + t * 2 * inter + j;
  const bf16_t* up = gate + inter;
  if constexpr (kVector == 1) {
    out[t * inter + j] = swiglu_one(to_f32(*gate), to_f32(*up));
  } else {
    float g[8], u[8];
    unpack_bf16x8(*reinterpret_cast<const uint4*>(gate), g);
    unpack_bf16x8(*reinterpret_cast<const uint4*>(up), u);
    uint4 packed;
    bf16_t* o = reinterpret_cast<bf16_t*>(&packed);
#pragma unroll
    for (int k = 0; k < 8; ++k) o[k] = swiglu_one(g[k], u[k]);
    *reinterpret_cast<uint4*>(out + t * inter + j) = packed;
  }
}

// Argmax: one block of kArgmaxThreads threads per row; each thread scans 16-byte units of 8 elements, units
// tid, tid + kArgmaxThreads, ... with four loads in flight (a 128256-wide row is ~16 units per thread: four round trips
// to memory, where 256 threads reading one element at a time took ~500 dependent steps), elements past the last whole
// unit or of a row not 16-byte aligned one at a time; then a shared-memory tree (value, then lowest index). NaN ranks
// below everything (as in sampling.cu); a row with nothing above -inf (all NaN or -inf) gives column 0, so the token
// is always a valid id (a NaN forward once sent an out-of-range token into the next step's embedding).
constexpr int kArgmaxThreads = 1024;

__device__ __forceinline__ void argmax_take(float x, int64_t j, float& v, int64_t& idx) {
  if (x > v) {  // strictly greater, columns in increasing order: the first index of a tie wins within a thread
    v = x;
    idx = j;
  }
}

__global__ void __launch_bounds__(kArgmaxThreads) argmax_kernel(const bf16_t* logits, int64_t cols, int64_t offset,
                                                                float* best_value, int32_t* best_index) {
  __shared__ float sv[kArgmaxThreads];
  __shared__ int64_t si[kArgmaxThreads];
  const bf16_t* row = logits + static_cast<int64_t>(blockIdx.x) * cols;
  float v = -INFINITY;
  int64_t idx = INT64_MAX;
  const bool aligned = reinterpret_cast<uintptr_t>(row) % 16 == 0;
  const int64_t units = aligned ? cols / 8 : 0;
  constexpr int kInFlight = 4;
  for (int64_t base = threadIdx.x; base < units; base += kInFlight * kArgmaxThreads) {
    uint4 raw[kInFlight];
#pragma unroll
    for (int u = 0; u < kInFlight; ++u) {
      const int64_t unit = base + u * kArgmaxThreads;
      raw[u] = unit < units ? reinterpret_cast<const uint4*>(row)[unit] : make_uint4(0, 0, 0, 0);
    }
#pragma unroll
    for (int u = 0; u < kInFlight; ++u) {
      const int64_t unit = base + u * kArgmaxThreads;
      if (unit >= units) break;
      const bf16_t* e = reinterpret_cast<const bf16_t*>(&raw[u]);
#pragma unroll
      for (int k = 0; k < 8; ++k) argmax_take(to_f32(e[k]), unit * 8 + k, v, idx);
    }
  }
  for (int64_t j = units * 8 + threadIdx.x; j < cols; j += kArgmaxThreads) argmax_take(to_f32(row[j]), j, v, idx);
  sv[threadIdx.x] = v;
  si[threadIdx.x] = idx;
  __syncthreads();
  for (int s = kArgmaxThreads / 2; s > 0; s >>= 1) {
    if (threadIdx.x < s) {
      const float ov = sv[threadIdx.x + s];
      const int64_t oi = si[threadIdx.x + s];
      if (ov > sv[threadIdx.x] || (ov == sv[threadIdx.x] && oi < si[threadIdx.x])) {
        sv[threadIdx.x] = ov;
        si[threadIdx.x] = oi;
      }
    }
    __syncthreads();
  }
  if (threadIdx.x == 0) {
    best_value[blockIdx.x] = sv[0];
    best_index[blockIdx.x] = static_cast<int32_t>((si[0] == INT64_MAX ? 0 : si[0]) + offset);
  }
}

__global__ void argmax_merge_kernel(const float* values, const int32_t* indices, int ranks, int64_t n,
                                    int32_t* tokens) {
  const int64_t r = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (r >= n) return;
  float v = values[r];
  int32_t idx = indices[r];
  for (int k = 1; k < ranks; ++k) {
    const float ov = values[k * n + r];
    const int32_t oi = indices[k * n + r];
    if (ov > v || (ov == v && oi < idx)) {
      v = ov;
      idx = oi;
    }
  }
  tokens[r] = idx;
}

__device__ __forceinline__ uint64_t mix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

__global__ void fill_uniform_kernel(bf16_t* out, int64_t rows, int64_t cols, int64_t ld, uint64_t seed,
                                    int64_t global_cols, int64_t row0, int64_t col0, float scale, float offset) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= rows * cols) return;
  const int64_t r = i / cols, c = i % cols;
  const uint64_t global = static_cast<uint64_t>((row0 + r) * global_cols + col0 + c);
  const uint64_t h = mix64(seed ^ mix64(global));
  const float u = static_cast<float>(h >> 40) * (1.0f / 16777216.0f);  // [0, 1)
  out[r * ld + c] = to_bf16(offset + (2.0f * u - 1.0f) * scale);
}

__global__ void advance_kernel(int32_t* positions, int32_t* lengths, int64_t n) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n) return;
  positions[i] += 1;
  lengths[i] += 1;
}

__global__ void gather_rows_kernel(const bf16_t* src, const int32_t* rows, int64_t n, int64_t cols, bf16_t* dst) {
  nvrar::gpu::dev::allow_next_grid();  // the GEMM after this kernel may start streaming its weights
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n * cols) return;
  dst[i] = src[static_cast<int64_t>(rows[i / cols]) * cols + i % cols];
}

// RMSNorm of a row without residual: the shared row epilogue with a zero summand and the input as the residual
// (r = x + 0 = x is written back unchanged).
__global__ void rmsnorm_kernel(const bf16_t* x, const bf16_t* weight, bf16_t* out, int64_t rows, int64_t hidden,
                               float eps) {
  nvrar::gpu::dev::allow_next_grid();  // the GEMM after this kernel may start streaming its weights
  for (int64_t row = blockIdx.x; row < rows; row += gridDim.x)
    nvrar::gpu::dev::residual_rmsnorm_row<Bf16>(
        row, hidden,
        [](int64_t, uint32_t y[4]) {
          y[0] = y[1] = y[2] = y[3] = 0;
          return true;
        },
        const_cast<Bf16*>(reinterpret_cast<const Bf16*>(x)), reinterpret_cast<const Bf16*>(weight),
        reinterpret_cast<Bf16*>(out), eps);
}

}  // namespace

void embedding_lookup(const int32_t* tokens, int64_t n, const bf16_t* table, int64_t hidden, bf16_t* out,
                      cudaStream_t stream) {
  embedding_kernel<<<blocks_for(n * hidden), kThreads, 0, stream>>>(tokens, n, table, hidden, out);
}

bool rope_rows_fit(const bf16_t* qkv, int64_t qkv_cols, int head_dim, const bf16_t* cache_k, const bf16_t* cache_v) {
  return head_dim % 16 == 0 && qkv_cols % 8 == 0 && aligned(qkv) && aligned(cache_k) && aligned(cache_v);
}

namespace {

void launch_rope(bf16_t* qkv, int64_t n, int64_t qkv_cols, int q_heads, int kv_heads, int head_dim,
                 const int32_t* positions, const float* inv_freq, const int32_t* seq, bf16_t* cache_k,
                 bf16_t* cache_v, int64_t max_seq, bool rows, cudaStream_t stream) {
  if (n < 1) return;
  const int heads = q_heads + (cache_k != nullptr ? 2 : 1) * kv_heads;
  if (rows) {
    const int items = heads * (head_dim / 16);
    const int threads = std::min(1024, std::max(32, (items + 31) / 32 * 32));
    const int blocks = static_cast<int>(std::min<int64_t>(n, INT32_MAX));
    rope_rows_kernel<<<blocks, threads, head_dim * sizeof(float), stream>>>(
        qkv, n, qkv_cols, q_heads, kv_heads, head_dim, positions, inv_freq, seq, cache_k, cache_v, max_seq);
    return;
  }
  const int64_t threads = n * heads * (head_dim / 2);
  rope_kernel<<<blocks_for(threads), kThreads, 0, stream>>>(qkv, n, qkv_cols, q_heads, kv_heads, head_dim, positions,
                                                            inv_freq, seq, cache_k, cache_v, max_seq);
}

}  // namespace

void rope_qk(bf16_t* qkv, int64_t n, int64_t qkv_cols, int q_heads, int kv_heads, int head_dim,
             const int32_t* positions, const float* inv_freq, cudaStream_t stream, bool per_pair) {
  launch_rope(qkv, n, qkv_cols, q_heads, kv_heads, head_dim, positions, inv_freq, nullptr, nullptr, nullptr, 0,
              !per_pair && rope_rows_fit(qkv, qkv_cols, head_dim, nullptr, nullptr), stream);
}

void rope_qk_append(bf16_t* qkv, int64_t n, int64_t qkv_cols, int q_heads, int kv_heads, int head_dim,
                    const int32_t* positions, const float* inv_freq, const int32_t* seq, bf16_t* cache_k,
                    bf16_t* cache_v, int64_t max_seq, cudaStream_t stream, bool per_pair) {
  launch_rope(qkv, n, qkv_cols, q_heads, kv_heads, head_dim, positions, inv_freq, seq, cache_k, cache_v, max_seq,
              !per_pair && rope_rows_fit(qkv, qkv_cols, head_dim, cache_k, cache_v), stream);
}

void swiglu(const bf16_t* gate_up, int64_t n, int64_t inter, bf16_t* out, cudaStream_t stream) {
  if (inter % 8 == 0 && aligned(gate_up) && aligned(out))
    swiglu_kernel<8><<<blocks_for(n * inter / 8), kThreads, 0, stream>>>(gate_up, n, inter, out);
  else
    swiglu_kernel<1><<<blocks_for(n * inter), kThreads, 0, stream>>>(gate_up, n, inter, out);
}

void argmax_rows(const bf16_t* logits, int64_t n, int64_t vocab_cols, int64_t index_offset, float* best_value,
                 int32_t* best_index, cudaStream_t stream) {
  argmax_kernel<<<static_cast<unsigned>(n), kArgmaxThreads, 0, stream>>>(logits, vocab_cols, index_offset,
                                                                        best_value, best_index);
}

void argmax_merge(const float* values, const int32_t* indices, int ranks, int64_t n, int32_t* tokens,
                  cudaStream_t stream) {
  argmax_merge_kernel<<<blocks_for(n), kThreads, 0, stream>>>(values, indices, ranks, n, tokens);
}

void fill_uniform(bf16_t* out, int64_t rows, int64_t cols, int64_t ld, uint64_t seed, int64_t global_cols,
                  int64_t row0, int64_t col0, float scale, float offset, cudaStream_t stream) {
  fill_uniform_kernel<<<blocks_for(rows * cols), kThreads, 0, stream>>>(out, rows, cols, ld, seed, global_cols, row0,
                                                                        col0, scale, offset);
}

void advance_positions(int32_t* positions, int32_t* lengths, int64_t n, cudaStream_t stream) {
  advance_kernel<<<blocks_for(n), kThreads, 0, stream>>>(positions, lengths, n);
}

void gather_rows(const bf16_t* src, const int32_t* rows, int64_t n, int64_t cols, bf16_t* dst, cudaStream_t stream) {
  gather_rows_kernel<<<blocks_for(n * cols), kThreads, 0, stream>>>(src, rows, n, cols, dst);
}

void rmsnorm(const bf16_t* x, const bf16_t* weight, bf16_t* out, int64_t rows, int64_t hidden, float eps,
             cudaStream_t stream) {
  const int64_t units = hidden / 8;
  int threads = static_cast<int>(((units + 31) / 32) * 32);
  threads = threads < 32 ? 32 : threads > 1024 ? 1024 : threads;
  rmsnorm_kernel<<<static_cast<unsigned>(rows < 65535 ? rows : 65535), threads, 0, stream>>>(x, weight, out, rows,
                                                                                              hidden, eps);
}

}  // namespace nvrar::engine::gpu
