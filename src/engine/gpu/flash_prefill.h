// Causal prefill attention on tensor cores (flash_prefill.cu): the queries of a prefill chunk against the KV cache,
// FlashAttention-style. The chunk's query tiles (engine/prefill_plan.h, one sequence each) are uploaded as
// PrefillTile records; tile i's row r (position pos0 + r) attends to its sequence's cache positions [0, pos0 + r].
// K/V are read where the runner keeps them ([seq][kv_head][max_seq][head_dim]) after RoPE and the append of this
// chunk, so earlier chunks' keys are seen without copying. Grouped-query: query head h reads KV head
// h / (q_heads / kv_heads). fp32 scores, online softmax and accumulation; P rounded to bf16 for the P.V product
// (as FlashAttention does); output bf16 [rows][q_heads * head_dim].
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "engine/gpu/attention.h"
#include "engine/prefill_plan.h"

namespace nvrar::engine::gpu {

constexpr int kFlashTileRows = 64;       // query rows per tile (plan_prefill's tile_rows), every head_dim
constexpr int kFlashWideTileRows = 128;  // the wide tiles of every kernel but kMma64, head_dim <= 128

// The tensor-core prefill kernels (NVRAR_LLM_PREFILL_ATTENTION): mma.sync on 64-row query tiles (flash; head_dim
// 64/128/256), mma.sync on 128-row tiles (flash128; 64/128), or Hopper's wgmma on 128-row tiles (wgmma; 64/128,
// compute capability 9.0 only, flash_prefill_wgmma.cu), the same with the softmax overlapped with the warpgroup's
// products and 128-key tiles (wgmma2; flash_prefill_wgmma_overlap.cu), or wgmma with K and V brought by TMA
// (wgmma-tma; flash_prefill_wgmma.cu; needs AttentionShape::cache_sequences), or wgmma2's products fed by a TMA
// producer warp with the two warpgroups taking turns at the tensor cores (wgmma-ws; flash_prefill_wgmma_ws.cu; needs
// AttentionShape::cache_sequences).
enum class FlashKernel { kMma64, kMma128, kWgmma, kWgmmaOverlap, kWgmmaTma, kWgmmaWs };

const char* flash_kernel_name(FlashKernel kernel);  // e.g. "flash (64-row tiles)": messages, bench output
int flash_tile_rows(FlashKernel kernel);                     // the plan's tile_rows for this kernel
bool flash_prefill_supports_head_dim(int head_dim);          // kMma64's head_dims: 64, 128, 256
bool flash_prefill_supports(FlashKernel kernel, int head_dim);  // the shape only; the wgmma kernels check the GPU
                                                                // at launch

// tiles: device array of num_tiles PrefillTile records (rows within this chunk), planned with flash_tile_rows(kernel)
// rows per tile. s: the chunk's shape (s.n rows, qkv row stride, heads, head_dim, max_seq). An unsupported pair, or
// a wgmma kernel on a GPU other than compute capability 9.0, throws nvrar::Error naming it. Stream-ordered.
void flash_prefill_attention(const bf16_t* qkv, const PrefillTile* tiles, int64_t num_tiles, const bf16_t* cache_k,
                             const bf16_t* cache_v, const AttentionShape& s, FlashKernel kernel, bf16_t* out,
                             cudaStream_t stream);

}  // namespace nvrar::engine::gpu
