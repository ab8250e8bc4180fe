// The tensor-core decode attention kernel (attention_mma.cu) as attention.cu calls it: its launch and its share of
// the scratch. Not a public interface: attention() in attention.h is.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "engine/gpu/attention.h"

namespace nvrar::engine::gpu {

// Floats of partial results the kernel may write for any call with at most s.n queries on the current device
// (0 where it does not take s.head_dim).
int64_t mma_attention_partial_floats(const AttentionShape& s);

// DecodeAttention::kTensorCore at head_dim 64 or 128 (Error otherwise). counters: attention_counter_floats() words,
// zero on entry and left zero; partials: mma_attention_partial_floats(s) floats.
void mma_attention(const bf16_t* qkv, const int32_t* seq, const int32_t* lengths, const bf16_t* cache_k,
                   const bf16_t* cache_v, const AttentionShape& s, unsigned* counters, float* partials, bf16_t* out,
                   cudaStream_t stream);

}  // namespace nvrar::engine::gpu
