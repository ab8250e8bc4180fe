// RoPE of one pair of a head's elements, shared by layers.cu's RoPE kernel and the tensor-core decode attention's
// fused RoPE (attention_mma.cu), so both give the same bits. Device code.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "core/numeric.h"
#include "engine/gpu/layers.h"

namespace nvrar::engine::gpu {

// (x1, x2) = (x[i], x[i + head_dim / 2]) rotated by position x inv_freq[i], rounded where transformers rounds: cos and
// sin to bf16, each partial product to bf16, each sum to bf16.
__device__ __forceinline__ void rope_pair(float x1, float x2, int32_t position, float inv_freq, bf16_t& y1,
                                          bf16_t& y2) {
  const auto b = [](float v) { return core::from_float<core::Bf16>(v).bits; };
  const auto f = [](bf16_t v) { return core::to_float(core::Bf16{v}); };
  const float angle = static_cast<float>(position) * inv_freq;
  const float c = f(b(cosf(angle)));
  const float s = f(b(sinf(angle)));
  y1 = b(f(b(x1 * c)) + f(b(-x2 * s)));
  y2 = b(f(b(x2 * c)) + f(b(x1 * s)));
}

}  // namespace nvrar::engine::gpu
