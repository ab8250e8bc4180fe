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

// The RoPE + KV append the kernel does itself when positions is set (rope_append_attention): the positions of the
// rows, RoPE's inverse frequencies, and the cache again, writable (the same arrays as cache_k and cache_v).
struct MmaRopeAppend {
  const int32_t* positions = nullptr;
  const float* inv_freq = nullptr;
  bf16_t* cache_k = nullptr;
  bf16_t* cache_v = nullptr;
};

// DecodeAttention::kTensorCore at head_dim 64 or 128 (Error otherwise). counters: attention_counter_floats() words,
// zero on entry and left zero; partials: mma_attention_partial_floats(s) floats. rope.positions set: qkv's q and k
// are not yet rotated and the row's k and v not yet in the cache (see MmaRopeAppend).
void mma_attention(const bf16_t* qkv, const int32_t* seq, const int32_t* lengths, const bf16_t* cache_k,
                   const bf16_t* cache_v, const AttentionShape& s, unsigned* counters, float* partials, bf16_t* out,
                   cudaStream_t stream, const MmaRopeAppend& rope = {});

}  // namespace nvrar::engine::gpu
