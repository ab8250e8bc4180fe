#include "engine/gpu/gemm.h"

#include <string>

#include <fmt/format.h>

#include "engine/gpu/skinny_gemm.h"
#include "nvrar/types.h"

namespace nvrar::engine::gpu {

namespace {

void check(cublasStatus_t s, const char* what, int64_t m, int64_t n, int64_t k) {
  if (s != CUBLAS_STATUS_SUCCESS)
    throw Error(fmt::format("nvrar-llm: cuBLASLt {} failed for a [{} x {}] . [{} x {}]^T GEMM (status {})", what, m, k,
                            n, k, static_cast<int>(s)));
}

}  // namespace

Gemm::Gemm() {
  if (cublasLtCreate(&handle_) != CUBLAS_STATUS_SUCCESS) throw Error("nvrar-llm: cublasLtCreate failed");
  if (cudaMalloc(&workspace_, workspace_bytes_) != cudaSuccess) throw Error("nvrar-llm: GEMM workspace allocation failed");
}

Gemm::~Gemm() {
  for (auto& [key, p] : plans_) {
    cublasLtMatrixLayoutDestroy(p.a);
    cublasLtMatrixLayoutDestroy(p.b);
    cublasLtMatrixLayoutDestroy(p.c);
    cublasLtMatmulDescDestroy(p.op);
  }
  if (workspace_ != nullptr) cudaFree(workspace_);
  if (handle_ != nullptr) cublasLtDestroy(handle_);
}

// Row-major y = x . w^T is column-major y^T (n x m) = (w^T)^T (k x n, transposed) . x^T (k x m).
// Candidates: cuBLASLt's heuristic returns up to kCandidates algorithms, best guess first, and for m <= 8 our
// skinny_gemm joins them. Outside graph capture each is timed on the call's own operands (2 warm-up + 5 timed runs,
// CUDA events) and the fastest kept; inside a capture (nothing may run) cuBLASLt's first guess is taken. Timing
// matters most for decode's skinny GEMMs (m = batch), which are passes over the weights.
const Gemm::Plan& Gemm::plan(const void* x, const void* w, void* y, int64_t m, int64_t n, int64_t k,
                             cudaStream_t stream) {
  const auto key = std::make_tuple(m, n, k);
  const auto it = plans_.find(key);
  if (it != plans_.end()) return it->second;
  Plan p;
  check(cublasLtMatmulDescCreate(&p.op, CUBLAS_COMPUTE_32F, CUDA_R_32F), "descriptor", m, n, k);
  const cublasOperation_t transa = CUBLAS_OP_T, transb = CUBLAS_OP_N;
  check(cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_TRANSA, &transa, sizeof(transa)), "TRANSA", m, n, k);
  check(cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_TRANSB, &transb, sizeof(transb)), "TRANSB", m, n, k);
  check(cublasLtMatrixLayoutCreate(&p.a, CUDA_R_16BF, k, n, k), "layout A", m, n, k);
  check(cublasLtMatrixLayoutCreate(&p.b, CUDA_R_16BF, k, m, k), "layout B", m, n, k);
  check(cublasLtMatrixLayoutCreate(&p.c, CUDA_R_16BF, n, m, n), "layout C", m, n, k);
  cublasLtMatmulPreference_t pref = nullptr;
  check(cublasLtMatmulPreferenceCreate(&pref), "preference", m, n, k);
  check(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &workspace_bytes_,
                                             sizeof(workspace_bytes_)),
        "workspace preference", m, n, k);
  constexpr int kCandidates = 16;
  cublasLtMatmulHeuristicResult_t results[kCandidates] = {};
  int found = 0;
  const cublasStatus_t s =
      cublasLtMatmulAlgoGetHeuristic(handle_, p.op, p.a, p.b, p.c, p.c, pref, kCandidates, results, &found);
  cublasLtMatmulPreferenceDestroy(pref);
  check(s, "heuristic", m, n, k);
  if (found == 0) check(CUBLAS_STATUS_NOT_SUPPORTED, "heuristic (no algorithm)", m, n, k);
  p.algo = results[0].algo;
  cudaStreamCaptureStatus capture = cudaStreamCaptureStatusNone;
  if (found > 1 && cudaStreamIsCapturing(stream, &capture) == cudaSuccess && capture == cudaStreamCaptureStatusNone) {
    cudaEvent_t start = nullptr, stop = nullptr;
    cudaEventCreate(&start);
    cudaEventCreate(&stop);
    const float alpha = 1.0f, beta = 0.0f;
    float best = 0.0f;
    for (int i = 0; i < found; ++i) {
      auto run = [&] {
        return cublasLtMatmul(handle_, p.op, &alpha, w, p.a, x, p.b, &beta, y, p.c, y, p.c, &results[i].algo,
                              workspace_, workspace_bytes_, stream);
      };
      if (run() != CUBLAS_STATUS_SUCCESS || run() != CUBLAS_STATUS_SUCCESS) continue;  // skip what fails to run
      cudaEventRecord(start, stream);
      for (int r = 0; r < 5; ++r) run();
      cudaEventRecord(stop, stream);
      float ms = 0.0f;
      if (cudaEventSynchronize(stop) != cudaSuccess || cudaEventElapsedTime(&ms, start, stop) != cudaSuccess) continue;
      if (best == 0.0f || ms < best) {
        best = ms;
        p.algo = results[i].algo;
      }
    }
    if (skinny_gemm_supports(x, w, y, m, n, k)) {
      for (int r = 0; r < 2; ++r) skinny_gemm(x, w, y, m, n, k, stream);
      cudaEventRecord(start, stream);
      for (int r = 0; r < 5; ++r) skinny_gemm(x, w, y, m, n, k, stream);
      cudaEventRecord(stop, stream);
      float ms = 0.0f;
      if (cudaEventSynchronize(stop) == cudaSuccess && cudaEventElapsedTime(&ms, start, stop) == cudaSuccess &&
          (best == 0.0f || ms < best)) {
        best = ms;
        p.skinny = true;
      }
    }
    cudaEventDestroy(start);
    cudaEventDestroy(stop);
  }
  return plans_.emplace(key, p).first->second;
}

void Gemm::linear(const void* x, const void* w, void* y, int64_t m, int64_t n, int64_t k, cudaStream_t stream) {
  const Plan& p = plan(x, w, y, m, n, k, stream);
  if (p.skinny && skinny_gemm_supports(x, w, y, m, n, k)) {
    skinny_gemm(x, w, y, m, n, k, stream);
    const cudaError_t e = cudaGetLastError();
    if (e != cudaSuccess)
      throw Error(fmt::format("nvrar-llm: skinny GEMM launch failed for a [{} x {}] . [{} x {}]^T GEMM: {}", m, k, n,
                              k, cudaGetErrorString(e)));
    return;
  }
  const float alpha = 1.0f, beta = 0.0f;
  check(cublasLtMatmul(handle_, p.op, &alpha, w, p.a, x, p.b, &beta, y, p.c, y, p.c, &p.algo, workspace_,
                       workspace_bytes_, stream),
        "matmul", m, n, k);
}

}  // namespace nvrar::engine::gpu
