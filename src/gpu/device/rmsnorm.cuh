// Residual add + RMSNorm of one row, the epilogue shared by the fused all-reduce (oneshot.cu) and the
// engine. Arithmetic follows Hugging Face's LlamaRMSNorm in bf16/fp16 models, rounding where it rounds:
//   r   = round(residual + y)                       (the new residual, stored)
//   inv = rsqrt(mean(float(r)^2) + eps)             (fp32)
//   out = round(float(weight) * float(round(float(r) * inv)))
// Launch shape: one block per row, any multiple of 32 threads up to 1024; every thread of the block must call.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "gpu/device/device_units.cuh"

namespace nvrar::gpu::dev {

// Sum of v over the block; every thread gets the result. `scratch` holds 32 floats of shared memory.
__device__ __forceinline__ float block_sum(float v, float* scratch) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  const int warp = threadIdx.x >> 5;
  const int lane = threadIdx.x & 31;
  const int warps = (blockDim.x + 31) >> 5;
  __syncthreads();  // scratch may still be read by a previous call
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  float s = lane < warps ? scratch[lane] : 0.0f;
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
  return s;
}

// sumsq += the squares of a unit's elements, in element order (the order every caller must share for equal bits).
template <typename T>
__device__ __forceinline__ void add_unit_squares(const uint32_t r[4], float& sumsq) {
#pragma unroll
  for (int e = 0; e < elems_per_unit<T>(); ++e) {
    const float v = unit_get<T>(r, e);
    sumsq += v * v;
  }
}

// o = round(weight * round(r * inv)), element-wise: the normalised unit.
template <typename T>
__device__ __forceinline__ void unit_rmsnorm(const uint32_t r[4], const uint32_t w[4], float inv, uint32_t o[4]) {
  float v[elems_per_unit<T>()];
#pragma unroll
  for (int e = 0; e < elems_per_unit<T>(); ++e) {
    const float normed = core::to_float(core::from_float<T>(unit_get<T>(r, e) * inv));
    v[e] = unit_get<T>(w, e) * normed;
  }
  unit_from_floats<T>(v, o);
}

// Row `row` of hidden elements (hidden x sizeof(T) a multiple of 16 bytes). get_y(j, w) fills unit j of the row's
// summed input and returns false when the call was aborted (then nothing more is written for the row). kAdd = false:
// no input; the row normalises the residual as it is (get_y is not called, the residual not stored).
template <typename T, bool kAdd = true, typename GetY>
__device__ inline bool residual_rmsnorm_row(int64_t row, int64_t hidden, GetY get_y, T* residual, const T* weight,
                                            T* out, float eps) {
  __shared__ float scratch[32];
  __shared__ int block_ok;
  constexpr int kElems = elems_per_unit<T>();
  const int64_t row_units = hidden / kElems;
  const int64_t base = row * row_units;
  const bool res_aligned = is_aligned16(residual);
  const bool w_aligned = is_aligned16(weight);
  const bool out_aligned = is_aligned16(out);
  const int64_t n = (row + 1) * hidden;  // bounds for the unit helpers (rows are whole units)
  if (threadIdx.x == 0) block_ok = 1;
  __syncthreads();
  bool ok = true;
  float sumsq = 0.0f;
  for (int64_t j = threadIdx.x; j < row_units; j += blockDim.x) {
    uint32_t r[4];
    if constexpr (kAdd) {
      uint32_t y[4];
      if (!get_y(j, y)) {
        ok = false;
        break;
      }
      load_unit(residual, n, base + j, res_aligned, r);
      unit_add<T>(r, y);
      store_unit(residual, n, base + j, res_aligned, r);
    } else {
      load_unit(residual, n, base + j, res_aligned, r);
    }
    add_unit_squares<T>(r, sumsq);
  }
  if (!ok) block_ok = 0;
  const float total = block_sum(sumsq, scratch);  // contains barriers: block_ok is settled after it
  if (!block_ok) return false;
  const float inv = rsqrtf(total / static_cast<float>(hidden) + eps);
  for (int64_t j = threadIdx.x; j < row_units; j += blockDim.x) {
    uint32_t r[4], w[4], o[4];
    load_unit(residual, n, base + j, res_aligned, r);
    load_unit(weight, hidden, j, w_aligned, w);
    unit_rmsnorm<T>(r, w, inv, o);
    store_unit(out, n, base + j, out_aligned, o);
  }
  __syncthreads();  // block_ok and scratch are reused by the block's next row
  return true;
}

}  // namespace nvrar::gpu::dev
