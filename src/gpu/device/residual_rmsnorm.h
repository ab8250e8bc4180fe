// Residual add + RMSNorm of an already summed input (residual_rmsnorm.cu).
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "nvrar/types.h"

namespace nvrar::gpu {

constexpr int kResidualRmsNormMaxThreads = 1024;

// residual = residual + y; out = residual * rsqrt(mean(residual^2) + eps) * weight over rows x hidden elements
// (hidden x element size a multiple of 16 bytes). y and out may be the same buffer. y may be nullptr: out =
// rmsnorm(residual) * weight alone, the residual left untouched. pdl: launched with programmatic dependent launch
// (the caller applies NVRAR_PDL; the kernels wait for the previous grid before their first load either way).
cudaError_t launch_residual_rmsnorm(const void* y, void* residual, const void* weight, void* out, int64_t rows,
                                    int64_t hidden, float eps, DataType dtype, cudaStream_t stream, bool pdl = false);

// The warp-per-row kernel (residual_rmsnorm.cu) serves calls of this many rows or more whose rows are 32 to 512
// 16-byte units, a multiple of 32, with every pointer 16-byte aligned; fewer rows (decode) take the block-per-row
// kernel. Both give the same bits. The threshold, measured on an H100 (8B prefill): 5-6% faster than the block
// kernel at 4096 rows, 6% slower at 2048.
constexpr int64_t kResidualRmsNormWarpRowsMin = 4096;
bool residual_rmsnorm_takes_warp_rows(int64_t rows, int64_t hidden, DataType dtype);

// launch_residual_rmsnorm with the kernel named (warp_rows: the warp-per-row kernel, cudaErrorInvalidValue where the
// row does not suit it or a pointer is not 16-byte aligned); for tests that compare the two.
cudaError_t launch_residual_rmsnorm_rows(const void* y, void* residual, const void* weight, void* out,
                                         int64_t rows, int64_t hidden, float eps, DataType dtype, bool warp_rows,
                                         cudaStream_t stream, bool pdl = false);

}  // namespace nvrar::gpu
