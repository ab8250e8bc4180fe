// The fused decode attention kernel (attention_fused.cu) as attention.cu calls it: its launch, its share of the
// scratch, and the split policy attention_mma.cu shares. Not a public interface: attention() in attention.h is.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>
#include <string>

#include "engine/gpu/attention.h"

namespace nvrar::engine::gpu {

// SMs of the current device, read once per device (cudaDevAttrMultiProcessorCount); Error when it cannot be read.
int sm_count();

// Query heads per block of the split decode kernels: the largest of 8, 4, 2, 1 dividing q_heads / kv_heads (a block
// reads its KV head's rows once for all of them).
int heads_per_block(const AttentionShape& s);

// The split policy of the split decode kernels (fused_split is it for the fused kernel): `heads` query heads per
// block, splits of whole tiles of `tile_keys` keys: the fewest keys per split that keep the grid within one wave of
// `resident` x SMs blocks, raised to 256 keys where 256 still gives 2 blocks per SM; at most
// merge::kMaxSplitWeights / heads splits.
FusedSplit split_keys(const AttentionShape& s, int sms, int heads, int resident, int64_t tile_keys);

// A split kernel's call: its grid (splits, q_heads / G, n), once the (query, head group) pairs that have several
// splits are known to fit the scratch's counters (else Error), and the start of its error messages ("nvrar-llm: NAME
// decode attention (head_dim, heads per block, grid): ").
struct SplitGrid {
  dim3 grid;
  std::string context;
};
SplitGrid split_grid(const std::string& name, const AttentionShape& s, const FusedSplit& f);

// Floats of partial results the fused kernel may write for any call with at most s.n queries (s.q_heads, s.kv_heads,
// s.head_dim as given) on the current device.
int64_t fused_attention_partial_floats(const AttentionShape& s);

// DecodeAttention::kFused. counters: attention_counter_floats() words, zero on entry and left zero; partials:
// fused_attention_partial_floats(s) floats.
void fused_attention(const bf16_t* qkv, const int32_t* seq, const int32_t* lengths, const bf16_t* cache_k,
                     const bf16_t* cache_v, const AttentionShape& s, unsigned* counters, float* partials, bf16_t* out,
                     cudaStream_t stream);

}  // namespace nvrar::engine::gpu
