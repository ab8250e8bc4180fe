// The fp32 residual stream's kernels (residual_f32.h).
//
// Purpose: keep the Llama residual stream in fp32 (NVRAR_LLM_RESIDUAL=fp32) while every GEMM input stays bf16.
// Algorithm (residual_rmsnorm_f32_kernel): one block per row. Pass 1: each thread takes 8-element units of the row
//   (16 bytes of bf16 partial sums, 32 bytes of fp32 residual), adds the partial to the residual in fp32, stores the
//   residual and sums the squares of what it stored; a block reduction (gpu/device/rmsnorm.cuh's block_sum) gives
//   the row's sum. Pass 2: each thread reloads its own residual units (its own stores, so no barrier is needed for
//   them) and writes round(w * round(r * inv)) as bf16. Without a partial (rmsnorm_f32) pass 1 only reads.
// Launch: threads = the row's units rounded up to a warp, 32 to 1024 (a thread takes several units past 8192
//   elements); blocks = min(rows, 65535), grid-stride over the rows beyond. Static shared memory: 32 floats
//   (block_sum's scratch).
// Synchronisation: none across blocks. Like the engine's bf16 rmsnorm, each kernel lets the next PDL-launched kernel
//   of its stream start early (allow_next_grid); that kernel's griddepcontrol.wait still waits for this one to end.
#include "engine/gpu/residual_f32.h"

#include <cuda_runtime.h>

#include <cstdint>
#include <initializer_list>
#include <string>

#include "core/numeric.h"
#include "engine/gpu/bf16_vector.cuh"
#include "gpu/device/pdl.cuh"
#include "gpu/device/rmsnorm.cuh"
#include "nvrar/types.h"

namespace nvrar::engine::gpu {

namespace {

constexpr int kUnit = 8;           // elements per unit: one 16-byte bf16 load, two 16-byte fp32 loads
constexpr int kMaxThreads = 1024;  // CUDA's limit per block
constexpr int kThreads = 256;      // embedding: one thread per element
constexpr int64_t kMaxBlocks = 65535;

__device__ __forceinline__ void load_f32x8(const float* p, float* v) {
  const float4 lo = reinterpret_cast<const float4*>(p)[0];
  const float4 hi = reinterpret_cast<const float4*>(p)[1];
  v[0] = lo.x;
  v[1] = lo.y;
  v[2] = lo.z;
  v[3] = lo.w;
  v[4] = hi.x;
  v[5] = hi.y;
  v[6] = hi.z;
  v[7] = hi.w;
}

__device__ __forceinline__ void store_f32x8(float* p, const float* v) {
  reinterpret_cast<float4*>(p)[0] = make_float4(v[0], v[1], v[2], v[3]);
  reinterpret_cast<float4*>(p)[1] = make_float4(v[4], v[5], v[6], v[7]);
}

// Residual (+ partial: bf16 sums, or fp32 ones at NVRAR_LLM_ACTIVATIONS=fp32) and RMSNorm of fp32 rows; kAdd
// false: the residual is only read. A bf16 partial may alias out (an fp32 one may not: residual_f32.h): the
// thread that reads a unit of partial is the one that later writes that unit of out. No pointer is __restrict__ or
// read through the read-only path (the previous kernels of the graph write them; docs/engine.md, PDL).
template <bool kAdd, class Partial>
__global__ void __launch_bounds__(kMaxThreads)
    residual_rmsnorm_f32_kernel(const Partial* partial, float* residual, const bf16_t* weight, bf16_t* out,
                                int64_t rows, int64_t hidden, float eps) {
  nvrar::gpu::dev::allow_next_grid();  // the GEMM after this kernel may start streaming its weights
  __shared__ float scratch[32];
  const int64_t units = hidden / kUnit;
  for (int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
    float* r = residual + row * hidden;
    float sumsq = 0.0f;
    for (int64_t j = threadIdx.x; j < units; j += blockDim.x) {
      float v[kUnit];
      load_f32x8(r + j * kUnit, v);
      if constexpr (kAdd) {
        float y[kUnit];
        if constexpr (sizeof(Partial) == 4) {
          load_f32x8(partial + row * hidden + j * kUnit, y);
        } else {
          const uint4 raw = reinterpret_cast<const uint4*>(partial + row * hidden)[j];  // one 16-byte load
          unpack_bf16x8(raw, y);
        }
#pragma unroll
        for (int e = 0; e < kUnit; ++e) v[e] += y[e];
        store_f32x8(r + j * kUnit, v);
      }
#pragma unroll
      for (int e = 0; e < kUnit; ++e) sumsq += v[e] * v[e];
    }
    // block_sum's leading barrier also keeps the next row from overwriting scratch before every thread read it.
    const float total = nvrar::gpu::dev::block_sum(sumsq, scratch);
    const float inv = rsqrtf(total / static_cast<float>(hidden) + eps);
    for (int64_t j = threadIdx.x; j < units; j += blockDim.x) {
      float v[kUnit], w[kUnit];
      load_f32x8(r + j * kUnit, v);
      const uint4 raw = reinterpret_cast<const uint4*>(weight)[j];
      unpack_bf16x8(raw, w);
      uint4 packed;
      bf16_t* o = reinterpret_cast<bf16_t*>(&packed);
#pragma unroll
      for (int e = 0; e < kUnit; ++e) {
        const float normed = core::to_float(core::from_float<core::Bf16>(v[e] * inv));
        o[e] = core::from_float<core::Bf16>(w[e] * normed).bits;
      }
      reinterpret_cast<uint4*>(out + row * hidden)[j] = packed;
    }
  }
}

// Embedding into fp32: one thread per (token, column).
__global__ void embedding_f32_kernel(const int32_t* tokens, int64_t n, const bf16_t* table, int64_t hidden,
                                     float* out) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n * hidden) return;
  out[i] = core::to_float(core::Bf16{table[static_cast<int64_t>(tokens[i / hidden]) * hidden + i % hidden]});
}

bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15) == 0; }

void check_shape(const char* call, int64_t hidden, std::initializer_list<const void*> pointers) {
  bool ok = hidden > 0 && hidden % kUnit == 0;
  for (const void* p : pointers) ok = ok && aligned16(p);
  if (!ok)
    throw Error(std::string("nvrar-llm: ") + call + ": hidden " + std::to_string(hidden) +
                " (needs a multiple of 8) or a pointer not 16-byte aligned");
}

template <bool kAdd, class Partial>
void launch(const Partial* partial, float* residual, const bf16_t* weight, bf16_t* out, int64_t rows, int64_t hidden,
            float eps, cudaStream_t stream) {
  const int64_t units = hidden / kUnit;
  int64_t threads = (units + 31) / 32 * 32;
  threads = threads < 32 ? 32 : threads > kMaxThreads ? kMaxThreads : threads;
  const int64_t blocks = rows < kMaxBlocks ? rows : kMaxBlocks;
  const dim3 grid(static_cast<unsigned>(blocks)), block(static_cast<unsigned>(threads));
  residual_rmsnorm_f32_kernel<kAdd, Partial><<<grid, block, 0, stream>>>(partial, residual, weight, out, rows, hidden,
                                                                          eps);
}

}  // namespace

void embedding_lookup_f32(const int32_t* tokens, int64_t n, const bf16_t* table, int64_t hidden, float* out,
                          cudaStream_t stream) {
  if (n <= 0) return;
  const int64_t blocks = (n * hidden + kThreads - 1) / kThreads;
  embedding_f32_kernel<<<static_cast<unsigned>(blocks), kThreads, 0, stream>>>(tokens, n, table, hidden, out);
}

void rmsnorm_f32(const float* x, const bf16_t* weight, bf16_t* out, int64_t rows, int64_t hidden, float eps,
                 cudaStream_t stream) {
  if (rows <= 0) return;
  check_shape("rmsnorm_f32", hidden, {x, weight, out});
  launch<false, bf16_t>(nullptr, const_cast<float*>(x), weight, out, rows, hidden, eps, stream);
}

void residual_rmsnorm_f32(const bf16_t* partial, float* residual, const bf16_t* weight, bf16_t* out, int64_t rows,
                          int64_t hidden, float eps, cudaStream_t stream) {
  if (rows <= 0) return;
  check_shape("residual_rmsnorm_f32", hidden, {partial, residual, weight, out});
  launch<true>(partial, residual, weight, out, rows, hidden, eps, stream);
}

void residual_rmsnorm_f32(const float* partial, float* residual, const bf16_t* weight, bf16_t* out, int64_t rows,
                          int64_t hidden, float eps, cudaStream_t stream) {
  if (rows <= 0) return;
  check_shape("residual_rmsnorm_f32 (fp32 partial)", hidden, {partial, residual, weight, out});
  launch<true>(partial, residual, weight, out, rows, hidden, eps, stream);
}

}  // namespace nvrar::engine::gpu
