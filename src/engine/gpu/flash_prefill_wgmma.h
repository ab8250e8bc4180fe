// The Hopper prefill attention kernels, called by flash_prefill_attention: flash_prefill_wgmma.cu for
// FlashKernel::kWgmma and kWgmmaTma, flash_prefill_wgmma_overlap.cu for FlashKernel::kWgmmaOverlap (the softmax overlapped with
// the warpgroup's own products), flash_prefill_wgmma_ws.cu for FlashKernel::kWgmmaWs (a TMA producer warp, the
// warpgroups' products in turns). The same contract (flash_prefill.h), 128-row query tiles, head_dim 64 or 128.
// Compiled for sm_90a only; on any other GPU they throw nvrar::Error naming the kernel and the GPU's compute
// capability.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>
#include <string>

#include "engine/gpu/attention.h"
#include "engine/prefill_plan.h"

namespace nvrar::engine::gpu {

// Whether the current GPU runs these kernels (compute capability 9.0): kWgmmaWs is the engine's default prefill kernel
// there.
bool wgmma_prefill_runs_here();

// Throws nvrar::Error naming `kernel` (its NVRAR_LLM_PREFILL_ATTENTION value) unless the current GPU is compute
// capability 9.0.
void require_wgmma_gpu(const std::string& kernel);

// tma: K and V brought by TMA (FlashKernel::kWgmmaTma; s.cache_sequences must be set), else by cp.async.
void flash_prefill_attention_wgmma(const bf16_t* qkv, const PrefillTile* tiles, int64_t num_tiles,
                                   const bf16_t* cache_k, const bf16_t* cache_v, const AttentionShape& s, bool tma,
                                   bf16_t* out, cudaStream_t stream);

void flash_prefill_attention_wgmma_overlap(const bf16_t* qkv, const PrefillTile* tiles, int64_t num_tiles,
                                           const bf16_t* cache_k, const bf16_t* cache_v, const AttentionShape& s,
                                           bf16_t* out, cudaStream_t stream);

// FlashKernel::kWgmmaWs (flash_prefill_wgmma_ws.cu); s.cache_sequences must be set (TMA).
void flash_prefill_attention_wgmma_ws(const bf16_t* qkv, const PrefillTile* tiles, int64_t num_tiles,
                                      const bf16_t* cache_k, const bf16_t* cache_v, const AttentionShape& s,
                                      bf16_t* out, cudaStream_t stream);

}  // namespace nvrar::engine::gpu
