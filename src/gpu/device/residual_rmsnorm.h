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
// (the caller applies NVRAR_PDL; the kernels wait for the previous grid before they read y or the residual either
// way; the decode rows' kernel reads the weight before: see below).
cudaError_t launch_residual_rmsnorm(const void* y, void* residual, const void* weight, void* out, int64_t rows,
                                    int64_t hidden, float eps, DataType dtype, cudaStream_t stream, bool pdl = false);

// The three kernels (residual_rmsnorm.cu), all giving the same bits: warp per row for calls of
// kResidualRmsNormWarpRowsMin rows or more whose rows are 32 to 512 16-byte units, a multiple of 32, with every
// pointer 16-byte aligned; otherwise a block per row, one unit per thread for up to kResidualRmsNormUnitRowsMax rows
// of at most kResidualRmsNormMaxThreads units (decode), else looping over the row. The warp threshold, measured on an
// H100 (8B prefill): 5-6% faster than the block kernel at 4096 rows, 6% slower at 2048. With pdl, the unit-per-thread
// kernel reads the weight before it waits for the previous kernel: that kernel must not write it.
constexpr int64_t kResidualRmsNormWarpRowsMin = 4096;
// The unit-per-thread kernel serves calls of at most this many rows (decode batches). Measured (8B, against the block
// kernel): on an H200 a decode step 0.66% shorter at 1 row, within its noise at 8; on an H100 the norm phase of a
// prefill of 1 x 2048 (2048 rows) 3.3% longer (docs/perf-notes.md). Not measured in between.
constexpr int64_t kResidualRmsNormUnitRowsMax = 64;
enum class ResidualRmsNormKernel { kBlockPerRow, kUnitPerThread, kWarpPerRow };
ResidualRmsNormKernel residual_rmsnorm_kernel_for(int64_t rows, int64_t hidden, DataType dtype);

// launch_residual_rmsnorm with the kernel named (cudaErrorInvalidValue where the row does not suit it or, for the
// warp kernel, a pointer is not 16-byte aligned); for tests that compare them.
cudaError_t launch_residual_rmsnorm_rows(const void* y, void* residual, const void* weight, void* out,
                                         int64_t rows, int64_t hidden, float eps, DataType dtype,
                                         ResidualRmsNormKernel kernel, cudaStream_t stream, bool pdl = false);

}  // namespace nvrar::gpu
