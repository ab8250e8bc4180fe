// Residual add + RMSNorm over rows of an already summed input: the unfused epilogue of allreduce_add_rmsnorm (after
// an algorithm without a fused form, and alone on a one-rank communicator).
//
// Purpose: residual = residual + y; out = rmsnorm(residual) * weight, with Hugging Face LlamaRMSNorm's roundings
//   (rmsnorm.cuh, shared with the one-shot's fused form, so the two agree bit for bit). Without y (nullptr; the
//   engine's norm after a GEMM that added into the residual itself) every kernel normalises the residual as it is
//   and leaves it untouched.
// Three kernels, the same bits (a test compares them):
//   block per row (residual_rmsnorm_kernel): threads = the row's 16-byte units rounded up to a warp, at most 1024;
//     one block per row (grid-stride over rows past 65535), looping over rows of more than 1024 units.
//   unit per thread (residual_rmsnorm_unit_kernel): the same launch shape and order for rows of at most 1024 units
//     (hidden 8192 in bf16), the default for calls of up to kResidualRmsNormUnitRowsMax (64) rows, a decode step's:
//     each thread's weight unit loaded before the wait, its residual unit kept in registers between the two passes.
//     Few rows spread over many SMs; at 2048 rows it was slower than the block kernel (residual_rmsnorm.h).
//   warp per row (warp_rmsnorm_kernel): prefill's many rows (kResidualRmsNormWarpRowsMin or more), rows of 32 to 512
//     units (hidden 256-4096 in bf16) in groups of 32, 16-byte aligned. Lane l of a warp holds units l, l + 32, ...
//     of its row in registers, all loads issued before any is used (~16 KB per warp in flight at hidden 4096; the
//     block kernel's threads hold one unit each, reload the residual and pass two barriers per row). The sum of
//     squares takes the block kernel's order exactly: per unit in element order, a butterfly over the 32 lanes of
//     each group (the block kernel's warps), then a butterfly over the groups' sums (its second level), so inv and
//     every output equal the block kernel's. 4 warps per block (3 blocks per SM: ~168 registers per thread),
//     grid-stride over rows. Measured (8B prefill, 65 calls): an H100, 5-6% faster than the block kernel at 4096
//     rows; an H200, 11.2 ms at 4096 rows and 9.0 at 16384, where the block kernel took 13.2 at 4096
//     (docs/perf-notes.md).
// Synchronisation: none across blocks (nor, in the warp kernel, across warps). All wait for the previous grid before
//   they read y or the residual (programmatic dependent launch where the caller asks for it: the communicator on one
//   rank, so the engine's TP 1 step, measured -0.7 to -1.5% per decode step on an H100; after an all-reduce they are
//   launched plainly, as before, since the all-reduces release their successor at their start and that overlap was
//   not measured); the unit-per-thread kernel reads its weight unit before (weights are never written by the kernel
//   before it). All let the next kernel in the stream start at once, since the engine's next GEMM only streams
//   weights until it waits.
#include "gpu/device/residual_rmsnorm.h"

#include <cuda_runtime.h>

#include "core/protocol.h"
#include "gpu/device/device_units.cuh"
#include "gpu/device/element_type.cuh"
#include "gpu/device/pdl.cuh"
#include "gpu/device/rmsnorm.cuh"

namespace nvrar::gpu {

namespace {

template <typename T, bool kAdd>
__global__ void __launch_bounds__(kResidualRmsNormMaxThreads)
    residual_rmsnorm_kernel(const T* y, T* residual, const T* weight, T* out, int64_t rows, int64_t hidden,
                            float eps) {
  dev::allow_next_grid();  // the engine's GEMM after this kernel may start streaming its weights
  dev::wait_for_previous_grid();  // PDL-launched: y (and the residual) come from earlier kernels
  const bool y_aligned = dev::is_aligned16(y);
  const int64_t row_units = hidden / dev::elems_per_unit<T>();
  const int64_t n = rows * hidden;
  for (int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
    const int64_t base = row * row_units;
    dev::residual_rmsnorm_row<T, kAdd>(
        row, hidden,
        [&](int64_t j, uint32_t w[4]) {
          dev::load_unit(y, n, base + j, y_aligned, w);
          return true;
        },
        residual, weight, out, eps);
  }
}

// Block per row, one 16-byte unit per thread (rows of up to kResidualRmsNormMaxThreads units): the block kernel's
// arithmetic and summation order, so its bits, with two loads fewer on the chain after the wait. The thread's
// weight unit is loaded before griddepcontrol.wait (weights are never written by the kernel before), and its
// residual unit stays in registers between the two passes instead of being reloaded. Measured on an H200 (8B decode,
// plans pinned): -0.66% per step at batch 1 x 128, -0.77% at 1 x 8192; releasing the next kernel only at the end
// instead was +1.0% at 1 x 128 (docs/perf-notes.md).
template <typename T, bool kAdd>
__global__ void __launch_bounds__(kResidualRmsNormMaxThreads)
    residual_rmsnorm_unit_kernel(const T* y, T* residual, const T* weight, T* out, int64_t rows, int64_t hidden,
                                 float eps) {
  __shared__ float scratch[32];
  dev::allow_next_grid();  // the engine's GEMM after this kernel may start streaming its weights
  const int64_t row_units = hidden / dev::elems_per_unit<T>();
  const int64_t j = threadIdx.x;
  const bool active = j < row_units;
  uint32_t w[4] = {0, 0, 0, 0};
  if (active) dev::load_unit(weight, hidden, j, dev::is_aligned16(weight), w);
  dev::wait_for_previous_grid();  // PDL-launched: y (and the residual) come from earlier kernels
  const bool y_aligned = dev::is_aligned16(y), res_aligned = dev::is_aligned16(residual);
  const bool out_aligned = dev::is_aligned16(out);
  const int64_t n = rows * hidden;
  for (int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
    const int64_t u = row * row_units + j;
    uint32_t r[4] = {0, 0, 0, 0};
    float sumsq = 0.0f;
    if (active) {
      if constexpr (kAdd) {
        uint32_t yv[4];
        dev::load_unit(y, n, u, y_aligned, yv);
        dev::load_unit(residual, n, u, res_aligned, r);
        dev::unit_add<T>(r, yv);
        dev::store_unit(residual, n, u, res_aligned, r);
      } else {
        dev::load_unit(residual, n, u, res_aligned, r);
      }
      dev::add_unit_squares<T>(r, sumsq);
    }
    const float total = dev::block_sum(sumsq, scratch);  // its first barrier guards scratch across rows
    const float inv = rsqrtf(total / static_cast<float>(hidden) + eps);
    if (active) {
      uint32_t o[4];
      dev::unit_rmsnorm<T>(r, w, inv, o);
      dev::store_unit(out, n, u, out_aligned, o);
    }
  }
}

constexpr int kWarpRowMaxGroups = 16;  // groups of 32 units a lane holds: rows of up to 512 units
constexpr int kWarpRowWarps = 4;

// Rows of `groups` x 32 units, every pointer 16-byte aligned (the launcher checks): plain 16-byte loads, predicated
// by g < groups, so all of a row's loads are in flight before the first is used.
template <typename T, bool kAdd>
__global__ void __launch_bounds__(kWarpRowWarps * 32, 3)
    warp_rmsnorm_kernel(const uint4* y, uint4* residual, const uint4* weight, uint4* out, int64_t rows, int groups,
                        int64_t hidden, float eps) {
  dev::allow_next_grid();
  dev::wait_for_previous_grid();
  const int lane = threadIdx.x & 31;
  const int64_t row_units = static_cast<int64_t>(groups) * 32;
  for (int64_t row = static_cast<int64_t>(blockIdx.x) * kWarpRowWarps + (threadIdx.x >> 5); row < rows;
       row += static_cast<int64_t>(gridDim.x) * kWarpRowWarps) {
    const int64_t base = row * row_units + lane;
    uint4 r[kWarpRowMaxGroups], yv[kWarpRowMaxGroups];
#pragma unroll
    for (int g = 0; g < kWarpRowMaxGroups; ++g)
      if (g < groups) {
        if constexpr (kAdd) yv[g] = y[base + 32 * g];
        r[g] = residual[base + 32 * g];
      }
    float group_sum[kWarpRowMaxGroups];
#pragma unroll
    for (int g = 0; g < kWarpRowMaxGroups; ++g) {
      group_sum[g] = 0.0f;
      if (g < groups) {
        if constexpr (kAdd) {
          dev::unit_add<T>(reinterpret_cast<uint32_t*>(&r[g]), reinterpret_cast<const uint32_t*>(&yv[g]));
          residual[base + 32 * g] = r[g];
        }
        float v = 0.0f;
        dev::add_unit_squares<T>(reinterpret_cast<const uint32_t*>(&r[g]), v);
#pragma unroll
        for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);  // block_sum's first level
        group_sum[g] = v;
      }
    }
    float total = 0.0f;
#pragma unroll
    for (int g = 0; g < kWarpRowMaxGroups; ++g)
      if (lane == g) total = group_sum[g];  // lanes past the groups keep 0, as block_sum's second level
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) total += __shfl_xor_sync(0xffffffffu, total, o);
    const float inv = rsqrtf(total / static_cast<float>(hidden) + eps);
#pragma unroll
    for (int g = 0; g < kWarpRowMaxGroups; ++g)
      if (g < groups) {
        const uint4 w = weight[lane + 32 * g];
        uint4 o;
        dev::unit_rmsnorm<T>(reinterpret_cast<const uint32_t*>(&r[g]), reinterpret_cast<const uint32_t*>(&w), inv,
                             reinterpret_cast<uint32_t*>(&o));
        out[base + 32 * g] = o;
      }
  }
}

// 16-byte units in a row of `hidden` elements.
int64_t units_per_row(int64_t hidden, DataType dtype) {
  return hidden * static_cast<int64_t>(dtype_size(dtype)) / core::kUnitBytes;
}

// Groups of 32 units in a row of `hidden` elements if the warp kernel takes it (1 to kWarpRowMaxGroups), else 0.
int warp_row_groups(int64_t hidden, DataType dtype) {
  const int64_t units = units_per_row(hidden, dtype);
  return units % 32 == 0 && units / 32 >= 1 && units / 32 <= kWarpRowMaxGroups ? static_cast<int>(units / 32) : 0;
}

bool aligned16(const void* a, const void* b, const void* c, const void* d) {
  return ((reinterpret_cast<uintptr_t>(a) | reinterpret_cast<uintptr_t>(b) | reinterpret_cast<uintptr_t>(c) |
           reinterpret_cast<uintptr_t>(d)) & 15) == 0;
}

// The block kernel `rows` rows of `hidden` elements take: one unit per thread for few rows that fit one block each.
ResidualRmsNormKernel block_kernel_for(int64_t rows, int64_t hidden, DataType dtype) {
  const int64_t row_units = units_per_row(hidden, dtype);
  return rows <= kResidualRmsNormUnitRowsMax && row_units <= kResidualRmsNormMaxThreads
             ? ResidualRmsNormKernel::kUnitPerThread
             : ResidualRmsNormKernel::kBlockPerRow;
}

}  // namespace

ResidualRmsNormKernel residual_rmsnorm_kernel_for(int64_t rows, int64_t hidden, DataType dtype) {
  if (rows >= kResidualRmsNormWarpRowsMin && warp_row_groups(hidden, dtype) > 0)
    return ResidualRmsNormKernel::kWarpPerRow;
  return block_kernel_for(rows, hidden, dtype);
}

cudaError_t launch_residual_rmsnorm_rows(const void* y, void* residual, const void* weight, void* out,
                                         int64_t rows, int64_t hidden, float eps, DataType dtype,
                                         ResidualRmsNormKernel kernel, cudaStream_t stream, bool pdl) {
  if (kernel == ResidualRmsNormKernel::kWarpPerRow) {
    const int groups = warp_row_groups(hidden, dtype);
    if (groups == 0 || !aligned16(y, residual, weight, out)) return cudaErrorInvalidValue;
    const int64_t wanted = (rows + kWarpRowWarps - 1) / kWarpRowWarps;
    const int blocks = static_cast<int>(wanted < 65535 ? wanted : 65535);
    return dev::with_element_type(dtype, cudaErrorInvalidValue, [&](auto t) {
      using T = typename decltype(t)::type;
      const cudaError_t e = dev::launch_kernel(
          y != nullptr ? warp_rmsnorm_kernel<T, true> : warp_rmsnorm_kernel<T, false>, blocks, kWarpRowWarps * 32,
          stream, pdl, static_cast<const uint4*>(y), static_cast<uint4*>(residual), static_cast<const uint4*>(weight),
          static_cast<uint4*>(out), rows, groups, hidden, eps);
      return e != cudaSuccess ? e : cudaGetLastError();
    });
  }
  const int64_t row_units = units_per_row(hidden, dtype);
  if (kernel == ResidualRmsNormKernel::kUnitPerThread && row_units > kResidualRmsNormMaxThreads)
    return cudaErrorInvalidValue;
  int threads = static_cast<int>(((row_units + 31) / 32) * 32);
  if (threads > kResidualRmsNormMaxThreads) threads = kResidualRmsNormMaxThreads;
  if (threads < 32) threads = 32;
  const int blocks = static_cast<int>(rows < 65535 ? rows : 65535);
  return dev::with_element_type(dtype, cudaErrorInvalidValue, [&](auto t) {
    using T = typename decltype(t)::type;
    const auto typed = [&](auto kernel_fn) {
      const cudaError_t e = dev::launch_kernel(kernel_fn, blocks, threads, stream, pdl, static_cast<const T*>(y),
                                               static_cast<T*>(residual), static_cast<const T*>(weight),
                                               static_cast<T*>(out), rows, hidden, eps);
      return e != cudaSuccess ? e : cudaGetLastError();
    };
    if (kernel == ResidualRmsNormKernel::kUnitPerThread)
      return typed(y != nullptr ? residual_rmsnorm_unit_kernel<T, true> : residual_rmsnorm_unit_kernel<T, false>);
    return typed(y != nullptr ? residual_rmsnorm_kernel<T, true> : residual_rmsnorm_kernel<T, false>);
  });
}

cudaError_t launch_residual_rmsnorm(const void* y, void* residual, const void* weight, void* out, int64_t rows,
                                    int64_t hidden, float eps, DataType dtype, cudaStream_t stream, bool pdl) {
  ResidualRmsNormKernel kernel = residual_rmsnorm_kernel_for(rows, hidden, dtype);
  if (kernel == ResidualRmsNormKernel::kWarpPerRow && !aligned16(y, residual, weight, out))
    kernel = block_kernel_for(rows, hidden, dtype);  // the warp kernel needs 16-byte aligned pointers
  return launch_residual_rmsnorm_rows(y, residual, weight, out, rows, hidden, eps, dtype, kernel, stream, pdl);
}

}  // namespace nvrar::gpu
