// Residual add + RMSNorm of an already summed input (residual_rmsnorm.cu).
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "nvrar/types.h"

namespace nvrar::gpu {

constexpr int kResidualRmsNormMaxThreads = 1024;

// residual = residual + y; out = residual * rsqrt(mean(residual^2) + eps) * weight over rows x hidden elements
// (hidden x element size a multiple of 16 bytes). y and out may be the same buffer.
cudaError_t launch_residual_rmsnorm(const void* y, void* residual, const void* weight, void* out, int64_t rows,
                                    int64_t hidden, float eps, DataType dtype, cudaStream_t stream);

}  // namespace nvrar::gpu
