#include "engine/gpu/gemm.h"

#include <cmath>
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
// CUDA events, L2 flushed before each) and the fastest kept; inside a capture (nothing may run) cuBLASLt's first guess is taken. Timing
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
  const bool skinny = skinny_gemm_supports(x, w, y, m, n, k);
  if ((found > 1 || skinny) && cudaStreamIsCapturing(stream, &capture) == cudaSuccess &&
      capture == cudaStreamCaptureStatusNone) {
    // In a decode step every weight comes from HBM (the step reads far more than L2 holds), so each timed run
    // starts with L2 flushed by writing a buffer larger than it; only the GEMM sits between the events.
    const std::size_t flush_bytes = std::size_t{128} << 20;
    void* flush = nullptr;
    if (cudaMalloc(&flush, flush_bytes) != cudaSuccess) flush = nullptr;
    cudaEvent_t start = nullptr, stop = nullptr;
    cudaEventCreate(&start);
    cudaEventCreate(&stop);
    // Total of 5 runs after 2 warm-up runs, in ms; infinity if a run failed.
    const auto time_runs = [&](const auto& run) {
      if (!run() || !run()) return INFINITY;
      float total = 0.0f;
      for (int r = 0; r < 5; ++r) {
        if (flush != nullptr) cudaMemsetAsync(flush, r, flush_bytes, stream);
        cudaEventRecord(start, stream);
        const bool ok = run();
        cudaEventRecord(stop, stream);
        float ms = 0.0f;
        if (!ok || cudaEventSynchronize(stop) != cudaSuccess || cudaEventElapsedTime(&ms, start, stop) != cudaSuccess)
          return INFINITY;
        total += ms;
      }
      return total;
    };
    const float alpha = 1.0f, beta = 0.0f;
    float best = INFINITY;
    for (int i = 0; i < found; ++i) {
      const float ms = time_runs([&] {
        return cublasLtMatmul(handle_, p.op, &alpha, w, p.a, x, p.b, &beta, y, p.c, y, p.c, &results[i].algo,
                              workspace_, workspace_bytes_, stream) == CUBLAS_STATUS_SUCCESS;
      });
      if (ms < best) {
        best = ms;
        p.algo = results[i].algo;
      }
    }
    for (int variant = 0; skinny && variant < kSkinnyGemmVariants; ++variant) {
      const float ms = time_runs([&] {
        skinny_gemm(x, w, y, m, n, k, variant, stream);
        return cudaPeekAtLastError() == cudaSuccess;
      });
      if (ms < best) {
        best = ms;
        p.skinny_variant = variant;
      }
    }
    cudaEventDestroy(start);
    cudaEventDestroy(stop);
    if (flush != nullptr) {
      cudaStreamSynchronize(stream);
      cudaFree(flush);
    }
  }
  return plans_.emplace(key, p).first->second;
}

std::string Gemm::choices() const {
  std::string out;
  for (const auto& [key, p] : plans_) {
    const auto [m, n, k] = key;
    out += fmt::format("{}{}x{}x{} {}", out.empty() ? "" : ", ", m, n, k, p.skinny_variant >= 0 ? fmt::format("skinny{}", p.skinny_variant) : std::string("cublasLt"));
  }
  return out;
}

void Gemm::linear(const void* x, const void* w, void* y, int64_t m, int64_t n, int64_t k, cudaStream_t stream) {
  const Plan& p = plan(x, w, y, m, n, k, stream);
  if (p.skinny_variant >= 0 && skinny_gemm_supports(x, w, y, m, n, k)) {
    skinny_gemm(x, w, y, m, n, k, p.skinny_variant, stream);
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
