// Skinny GEMM for decode (skinny_gemm.cu): y[m, n] = x[m, k] . w[n, k]^T for m <= 8 rows (the decode batch), bf16
// in and out, fp32 accumulation. At such m a linear layer is a pass over the weights, so the kernel is built to
// stream w at HBM bandwidth; Gemm times it against cuBLASLt's candidates and uses it only where it is faster.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

namespace nvrar::engine::gpu {

constexpr int64_t kSkinnyGemmMaxRows = 8;

// variant: 0, 1 (CUDA-core tilings), 2 or 3 (tensor cores fed from shared-memory stages, 4 or 8 warps per 16
// rows) of the same computation (skinny_gemm.cu). Launched with programmatic dependent launch unless NVRAR_PDL=0:
// the weights start streaming while the previous kernel of the stream finishes.
constexpr int kSkinnyGemmVariants = 4;

// Whether skinny_gemm takes this call: 1 <= m <= 8, k a multiple of 8 (of 256 for variants 2 and 3),
// every pointer 16-byte aligned.
bool skinny_gemm_supports(const void* x, const void* w, const void* y, int64_t m, int64_t n, int64_t k,
                          int variant = 0);
void skinny_gemm(const void* x, const void* w, void* y, int64_t m, int64_t n, int64_t k, int variant,
                 cudaStream_t stream);

}  // namespace nvrar::engine::gpu
