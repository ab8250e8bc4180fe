// The fp32 residual stream (NVRAR_LLM_RESIDUAL=fp32): the embedding into fp32 rows, the first RMSNorm of the
// stream, and the residual add + RMSNorm after each row-parallel GEMM's all-reduce. Transformers' bf16 Llama rounds
// its hidden_states to bf16 after each of a layer's two residual adds; here the stream stays in fp32 and only the
// normalised output, the next GEMM's input, is bf16. That output keeps LlamaRMSNorm's order and roundings on an fp32
// input r:
//   inv = rsqrt(mean(r^2) + eps)                  (fp32, sum of squares in fp32)
//   out = round(float(weight) * float(round(r * inv)))
// Rows of `hidden` elements, row-major; hidden a multiple of 8 and every pointer 16-byte aligned (nvrar::Error
// otherwise: the kernels use 16-byte loads). Stream-ordered, graph-capturable, no allocation; rows 0 launches nothing.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "engine/gpu/layers.h"

namespace nvrar::engine::gpu {

// out[t, :] = float(table[tokens[t], :]) (exact), hidden columns.
void embedding_lookup_f32(const int32_t* tokens, int64_t n, const bf16_t* table, int64_t hidden, float* out,
                          cudaStream_t stream);

// out = rmsnorm(x) * weight of fp32 rows x, which are left unchanged.
void rmsnorm_f32(const float* x, const bf16_t* weight, bf16_t* out, int64_t rows, int64_t hidden, float eps,
                 cudaStream_t stream);

// residual += float(partial) (an fp32 add per element, no bf16 rounding); out = rmsnorm(residual) * weight.
// partial: the all-reduced output of o_proj or down_proj (at TP 1 the GEMM's output itself). partial may alias out
// (same element size: the thread that reads a unit of partial is the one that writes that unit of out).
void residual_rmsnorm_f32(const bf16_t* partial, float* residual, const bf16_t* weight, bf16_t* out, int64_t rows,
                          int64_t hidden, float eps, cudaStream_t stream);
// The same with fp32 partial sums (NVRAR_LLM_ACTIVATIONS=fp32 at TP > 1: the all-reduce sums fp32). partial must not
// alias out: bf16 row r of out would overlap fp32 row r / 2 of partial, which another block may not have read yet.
void residual_rmsnorm_f32(const float* partial, float* residual, const bf16_t* weight, bf16_t* out, int64_t rows,
                          int64_t hidden, float eps, cudaStream_t stream);

}  // namespace nvrar::engine::gpu
