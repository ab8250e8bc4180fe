// Attention of queries against the KV cache (attention.cu), for decode and prefill alike: query t (a row of the
// fused qkv buffer, after RoPE) of sequence seq[t] attends to that sequence's cache positions [0, lengths[t]).
// Causal prefill is the same call with lengths[t] = position + 1. Grouped-query: query head h reads KV head
// h / (q_heads / kv_heads). fp32 scores, softmax and accumulation; output bf16 [n, q_heads * head_dim].
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "engine/gpu/layers.h"

namespace nvrar::engine::gpu {

struct AttentionShape {
  int64_t n = 0;         // queries (tokens)
  int64_t qkv_cols = 0;  // row stride of the qkv buffer
  int q_heads = 0;
  int kv_heads = 0;
  int head_dim = 0;      // 32, 64, 128 or 256 (attention_supports_head_dim)
  int64_t max_seq = 0;   // cache positions per sequence
  int64_t max_len = 0;   // largest lengths[t] of the call (sizes the split)
};

// Scratch (floats) for the partial results of any call with at most s.n queries and s.q_heads, s.head_dim.
int64_t attention_scratch_floats(const AttentionShape& s);

bool attention_supports_head_dim(int head_dim);

// Split-K ("flash-decoding"): the keys of each (query, head) are cut into splits (32 keys or more, sized so the grid
// fills the GPU); a block of four warps handles one split with an online softmax per group of lanes, merges them,
// and writes (max, sum, acc); a second kernel merges the splits. scratch: attention_scratch_floats(s) floats.
void attention(const bf16_t* qkv, const int32_t* seq, const int32_t* lengths, const bf16_t* cache_k,
               const bf16_t* cache_v, const AttentionShape& s, float* scratch, bf16_t* out, cudaStream_t stream);

}  // namespace nvrar::engine::gpu
