// The Hopper prefill attention kernel (flash_prefill_wgmma.cu), called by flash_prefill_attention for
// FlashKernel::kWgmma: the same contract (flash_prefill.h), 128-row query tiles, head_dim 64 or 128. Compiled for
// sm_90a only; on any other GPU it throws nvrar::Error naming the GPU's compute capability.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "engine/gpu/attention.h"
#include "engine/prefill_plan.h"

namespace nvrar::engine::gpu {

// Whether the current GPU runs this kernel (compute capability 9.0): the engine's default prefill kernel there.
bool wgmma_prefill_runs_here();

void flash_prefill_attention_wgmma(const bf16_t* qkv, const PrefillTile* tiles, int64_t num_tiles,
                                   const bf16_t* cache_k, const bf16_t* cache_v, const AttentionShape& s, bf16_t* out,
                                   cudaStream_t stream);

}  // namespace nvrar::engine::gpu
