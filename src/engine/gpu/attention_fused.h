// The fused decode attention kernel (attention_fused.cu) as attention.cu calls it: its launch and its share of the
// scratch. Not a public interface: attention() in attention.h is.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "engine/gpu/attention.h"

namespace nvrar::engine::gpu {

// SMs of the current device, read once per device (cudaDevAttrMultiProcessorCount); Error when it cannot be read.
int sm_count();

// Floats of partial results the fused kernel may write for any call with at most s.n queries (s.q_heads, s.kv_heads,
// s.head_dim as given) on the current device.
int64_t fused_attention_partial_floats(const AttentionShape& s);

// DecodeAttention::kFused. counters: attention_counter_floats() words, zero on entry and left zero; partials:
// fused_attention_partial_floats(s) floats.
void fused_attention(const bf16_t* qkv, const int32_t* seq, const int32_t* lengths, const bf16_t* cache_k,
                     const bf16_t* cache_v, const AttentionShape& s, unsigned* counters, float* partials, bf16_t* out,
                     cudaStream_t stream);

}  // namespace nvrar::engine::gpu
