// Attention of queries against the KV cache (attention.cu, attention_fused.cu, attention_mma.cu), for decode and
// prefill alike: query t (a row of the fused qkv buffer, after RoPE) of sequence seq[t] attends to that sequence's
// cache positions [0, lengths[t]). Causal prefill is the same call with lengths[t] = position + 1. Grouped-query:
// query head h reads KV head h / (q_heads / kv_heads). fp32 scores, softmax and accumulation (the tensor-core kernel
// rounds the probabilities to bf16 for P V); output bf16 [n, q_heads * head_dim].
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
  int64_t cache_sequences = 0;  // sequences the KV cache holds (its slices: cache_sequences x kv_heads); 0: unknown
                                // (only the TMA prefill kernel needs it)
};

// The two kernels of a call (NVRAR_LLM_DECODE_ATTENTION picks the decode one in the engine; prefill without the
// tensor-core kernel keeps split-K).
enum class DecodeAttention {
  kSplitK,  // 32-key or longer splits (up to ~1024 blocks), then a combine kernel over (query, head)
  kFused,   // longer splits (~2-4 blocks per SM, >= 256 keys where the context allows); the last block of each
            // (query, head group) to finish merges the splits, so one kernel per call
  kTensorCore,  // the fused kernel's splits (one where max_len <= 256 keys) and merge with the dot products on
                // tensor cores (mma.sync, the G heads of a KV head as the rows of a tile; P rounded to bf16);
                // head_dim 64 and 128, else kFused
};

// Scratch (floats) for any call of any kernel with at most s.n queries and s.q_heads, s.head_dim: the fused and
// tensor-core kernels' arrival counters first (a fixed count per device, see attention_counter_floats), then the
// partial results. The whole scratch must be zeroed once after allocation (the counters must start at 0; every call
// leaves them at 0 again, so graph replays need no memset). Reads the device's SM count (the splits depend on it).
int64_t attention_scratch_floats(const AttentionShape& s);
// The counters' share of the scratch: 4 x the current device's SM count, rounded up to 16 bytes.
int64_t attention_counter_floats();

bool attention_supports_head_dim(int head_dim);

// kSplitK ("flash-decoding"): the keys of each (query, head) are cut into splits (32 keys or more, sized so the grid
// fills the GPU); a block of four warps handles one split with an online softmax per group of lanes, merges them,
// and writes (max, sum, acc); a second kernel merges the splits.
// kFused: attention_fused.cu (one kernel, cp.async-pipelined key loads, the merge in the last block of a head group).
// kTensorCore: attention_mma.cu (the same splits and merge; S and P V by mma.sync). Launched with programmatic
// dependent launch (unless NVRAR_PDL=0), it reads seq, lengths and every key and value of row t but the last
// (position lengths[t] - 1) before it waits for the previous kernel: the kernel before it may write q and each row's
// newest key and value (a decode step's qkv GEMM or RoPE + append), nothing else that this call reads.
// scratch: attention_scratch_floats(s) floats, zeroed once after allocation; lengths[t] <= s.max_len.
void attention(const bf16_t* qkv, const int32_t* seq, const int32_t* lengths, const bf16_t* cache_k,
               const bf16_t* cache_v, const AttentionShape& s, DecodeAttention kernel, float* scratch, bf16_t* out,
               cudaStream_t stream);

// Whether DecodeAttention::kTensorCore takes this head size (64, 128); attention() runs kFused for the others.
bool mma_attention_supports(int head_dim);

// The fused kernel's split of a call on a GPU of `sms` SMs (CPU only; for tests and reports). heads_per_block: the
// largest of 8, 4, 2, 1 dividing q_heads / kv_heads; blocks = splits x n x q_heads / heads_per_block, of which a row
// uses ceil(lengths[t] / keys_per_split); blocks_per_sm: the residency the split assumes (__launch_bounds__).
struct FusedSplit {
  int heads_per_block = 1;
  int blocks_per_sm = 4;
  int64_t keys_per_split = 0;
  int64_t splits = 1;
  int64_t blocks = 0;
};
FusedSplit fused_split(const AttentionShape& s, int sms);
// Blocks of the fused kernel for (head_dim, heads_per_block) that the current device keeps resident per SM
// (cudaOccupancyMaxActiveBlocksPerMultiprocessor); fused_split assumes FusedSplit::blocks_per_sm.
int fused_attention_resident_blocks(int head_dim, int heads_per_block);
// The same for the tensor-core kernel (64-key tiles; FusedSplit::blocks_per_sm 3 at head_dim 128, 4 at 64; rows of
// at most 256 keys in one split), and the blocks of it the current device keeps resident per SM (-1 for a head size
// it does not take).
FusedSplit mma_split(const AttentionShape& s, int sms);
int mma_attention_resident_blocks(int head_dim, int heads_per_block);

}  // namespace nvrar::engine::gpu
