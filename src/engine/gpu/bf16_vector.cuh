// Device helper shared by the engine's kernels: eight bf16 values read as one 16-byte load, widened to float.
#pragma once

#include <cuda_runtime.h>

#include "core/numeric.h"
#include "engine/gpu/layers.h"

namespace nvrar::engine::gpu {

__device__ __forceinline__ void unpack_bf16x8(const uint4& raw, float* out) {
  const bf16_t* h = reinterpret_cast<const bf16_t*>(&raw);
#pragma unroll
  for (int i = 0; i < 8; ++i) out[i] = core::to_float(core::Bf16{h[i]});
}

}  // namespace nvrar::engine::gpu
