// The engine's element-wise and small kernels (layers.cu), bf16 activations with fp32 math, rounding where
// Hugging Face's bf16 LlamaForCausalLM rounds so that logits can be compared with it. Host launchers only; all
// stream-ordered and graph-capturable. Shapes: n tokens (rows), row-major.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

namespace nvrar::engine::gpu {

using bf16_t = uint16_t;  // bf16 storage (core::Bf16 bits)

// Whether the engine's PDL-aware kernels (skinny GEMMs, tensor-core decode attention) are launched with programmatic
// dependent launch: NVRAR_PDL, default on (gpu/device/pdl.cuh).
bool pdl_enabled();

// out[t, :] = table[tokens[t], :], hidden columns.
void embedding_lookup(const int32_t* tokens, int64_t n, const bf16_t* table, int64_t hidden, bf16_t* out,
                      cudaStream_t stream);

// Rotary embedding in place on the q and k heads of a fused qkv buffer (row stride qkv_cols): q heads at column
// h * head_dim, k heads after the q_heads. Position of token t: positions[t]. inv_freq: head_dim / 2 floats.
// HF's rotate_half convention; cos/sin rounded to bf16, as transformers does.
void rope_qk(bf16_t* qkv, int64_t n, int64_t qkv_cols, int q_heads, int kv_heads, int head_dim,
             const int32_t* positions, const float* inv_freq, cudaStream_t stream, bool per_pair = false);

// rope_qk, and in the same kernel the KV append: the rotated k heads and the v heads of token t go to the cache
// [max_batch][kv_heads][max_seq][head_dim] (k and v alike) of sequence seq[t] at position positions[t].
// Both take a block per token row with 16-byte accesses where head_dim is a multiple of 16 and the rows and cache are
// 16-byte aligned, else a thread per pair; per_pair forces the latter (tests: both give the same bits).
void rope_qk_append(bf16_t* qkv, int64_t n, int64_t qkv_cols, int q_heads, int kv_heads, int head_dim,
                    const int32_t* positions, const float* inv_freq, const int32_t* seq, bf16_t* cache_k,
                    bf16_t* cache_v, int64_t max_seq, cudaStream_t stream, bool per_pair = false);
// Whether rope_qk (cache pointers null) and rope_qk_append take the block-per-row kernel for these buffers.
bool rope_rows_fit(const bf16_t* qkv, int64_t qkv_cols, int head_dim, const bf16_t* cache_k, const bf16_t* cache_v);

// out[t, i] = round(round(silu(gate[t, i])) * up[t, i]) with gate = gate_up[:, :inter], up = gate_up[:, inter:].
void swiglu(const bf16_t* gate_up, int64_t n, int64_t inter, bf16_t* out, cudaStream_t stream);

// Row argmax of logits [n, vocab_cols] (first index on ties): best value and index + index_offset.
void argmax_rows(const bf16_t* logits, int64_t n, int64_t vocab_cols, int64_t index_offset, float* best_value,
                 int32_t* best_index, cudaStream_t stream);

// Picks, per row, the best of `ranks` candidates laid out [ranks][n] (largest value, then smallest index).
void argmax_merge(const float* values, const int32_t* indices, int ranks, int64_t n, int32_t* tokens,
                  cudaStream_t stream);

// Deterministic pseudo-random bf16 weights: the [rows x cols] block at (row0, col0) of a global tensor with
// global_cols columns, element (r, c) = offset + scale x u, u uniform in [-1, 1) from hash(seed, global index), so
// every TP size builds shards of the same global model. out has row stride `ld`.
void fill_uniform(bf16_t* out, int64_t rows, int64_t cols, int64_t ld, uint64_t seed, int64_t global_cols,
                  int64_t row0, int64_t col0, float scale, float offset, cudaStream_t stream);

// Decode bookkeeping after a step: positions[i] += 1, lengths[i] += 1 for i < n.
void advance_positions(int32_t* positions, int32_t* lengths, int64_t n, cudaStream_t stream);

// dst[r, :] = src[rows[r], :], cols columns.
void gather_rows(const bf16_t* src, const int32_t* rows, int64_t n, int64_t cols, bf16_t* dst, cudaStream_t stream);

// RMSNorm without a residual: out = round(w * round(x * rsqrt(mean(x^2) + eps))).
void rmsnorm(const bf16_t* x, const bf16_t* weight, bf16_t* out, int64_t rows, int64_t hidden, float eps,
             cudaStream_t stream);

}  // namespace nvrar::engine::gpu
