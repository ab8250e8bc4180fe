// Residual add + RMSNorm over rows of an already summed input: the unfused epilogue of allreduce_add_rmsnorm (after
// an algorithm without a fused form, and alone on a one-rank communicator).
//
// Purpose: residual = residual + y; out = rmsnorm(residual) * weight, with Hugging Face LlamaRMSNorm's roundings
//   (rmsnorm.cuh, shared with the one-shot's fused form, so the two agree bit for bit).
// Launch: one block per row (grid-stride over rows past 65535), threads = the row's 16-byte units rounded up to a
//   warp, at most 1024.
// Synchronisation: none across blocks; it lets the next kernel in the stream start early (programmatic dependent
//   launch), since the engine's next GEMM only streams weights until it waits.
#include "gpu/device/residual_rmsnorm.h"

#include <cuda_runtime.h>

#include "core/protocol.h"
#include "gpu/device/device_units.cuh"
#include "gpu/device/element_type.cuh"
#include "gpu/device/pdl.cuh"
#include "gpu/device/rmsnorm.cuh"

namespace nvrar::gpu {

namespace {

template <typename T>
__global__ void __launch_bounds__(kResidualRmsNormMaxThreads)
    residual_rmsnorm_kernel(const T* y, T* residual, const T* weight, T* out, int64_t rows, int64_t hidden,
                            float eps) {
  dev::allow_next_grid();  // the engine's GEMM after this kernel may start streaming its weights
  const bool y_aligned = dev::is_aligned16(y);
  const int64_t row_units = hidden / dev::elems_per_unit<T>();
  const int64_t n = rows * hidden;
  for (int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
    const int64_t base = row * row_units;
    dev::residual_rmsnorm_row<T>(
        row, hidden,
        [&](int64_t j, uint32_t w[4]) {
          dev::load_unit(y, n, base + j, y_aligned, w);
          return true;
        },
        residual, weight, out, eps);
  }
}

}  // namespace

cudaError_t launch_residual_rmsnorm(const void* y, void* residual, const void* weight, void* out, int64_t rows,
                                    int64_t hidden, float eps, DataType dtype, cudaStream_t stream) {
  const int64_t row_units = hidden * static_cast<int64_t>(dtype_size(dtype)) / core::kUnitBytes;
  int threads = static_cast<int>(((row_units + 31) / 32) * 32);
  if (threads > kResidualRmsNormMaxThreads) threads = kResidualRmsNormMaxThreads;
  if (threads < 32) threads = 32;
  const int blocks = static_cast<int>(rows < 65535 ? rows : 65535);
  return dev::with_element_type(dtype, cudaErrorInvalidValue, [&](auto t) {
    using T = typename decltype(t)::type;
    residual_rmsnorm_kernel<T><<<blocks, threads, 0, stream>>>(static_cast<const T*>(y), static_cast<T*>(residual),
                                                               static_cast<const T*>(weight), static_cast<T*>(out),
                                                               rows, hidden, eps);
    return cudaGetLastError();
  });
}

}  // namespace nvrar::gpu
