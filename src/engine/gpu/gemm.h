// Row-major bf16 GEMMs of a linear layer through cuBLASLt: y[m, n] = x[m, k] . w[n, k]^T (w as Hugging Face
// stores a Linear weight, [out_features, in_features]), fp32 accumulation, bf16 output (or fp32: `out`, for
// NVRAR_LLM_ACTIVATIONS=fp32). Algorithms are chosen once per (m, n, k, output type): cuBLASLt's heuristic candidates
// (and, for m <= 8, skinny_gemm) timed on tune() or the first call outside graph capture, the fastest cached; the
// workspace is owned here, so calls are graph-capturable.
#pragma once

#include <cublasLt.h>
#include <cuda_runtime_api.h>

#include <cstdint>
#include <functional>
#include <map>
#include <span>
#include <string>
#include <tuple>

#include "config/gemm_pin.h"
#include "nvrar/types.h"
#include "engine/gpu/skinny_gemm.h"

namespace nvrar::engine::gpu {

// What a decode step does to a GEMM's output, for Gemm::tune to time with every candidate: a skinny kernel does it in
// its epilogue (`skinny`, writing `skinny_out`), a cuBLASLt GEMM is followed by the kernel `after_cublaslt` launches
// (e.g. SwiGLU after gate/up, RoPE + KV append after q/k/v). `name` labels the timings.
struct TuneEpilogue {
  const char* name = "";
  SkinnyEpilogue skinny;
  void* skinny_out = nullptr;
  std::function<void()> after_cublaslt;
};

class Gemm {
 public:
  Gemm();  // pins from NVRAR_LLM_GEMM
  explicit Gemm(config::GemmPin pin);  // these pins instead (tests)
  ~Gemm();
  Gemm(const Gemm&) = delete;
  Gemm& operator=(const Gemm&) = delete;

  // x, w: device bf16 arrays, y of type `out` (kBFloat16 or kFloat32); m, n, k > 0. Throws nvrar::Error naming the
  // shape on a cuBLASLt failure or another output type.
  void linear(const void* x, const void* w, void* y, int64_t m, int64_t n, int64_t k, cudaStream_t stream,
              DataType out = DataType::kBFloat16);

  // The call through the skinny kernel with `epilogue` (skinny_gemm.h), where a skinny kernel is what tune() or
  // linear() already chose for (m, n, k); returns false and launches nothing otherwise (cuBLASLt's shapes, a shape
  // not chosen yet), and the caller runs linear() and the epilogue's own kernel. The choice looked up is the one for
  // fp32 outputs where the epilogue takes fp32 products (fp32 set, kStoreF32, kAddF32), else bf16's.
  bool linear_skinny(const void* x, const void* w, void* y, int64_t m, int64_t n, int64_t k, cudaStream_t stream,
                     const SkinnyEpilogue& epilogue);

  // y += x . w^T in cuBLASLt's epilogue (beta 1, y read and written in place; the fp32 sum rounded once, unless the
  // chosen algorithm splits k and reduces its partial sums in bf16) where cuBLASLt is what linear() chooses for
  // (m, n, k); a shape not chosen yet is chosen first with `scratch` (room for m x n bf16) as the timed calls' output.
  // Returns false and adds nothing to y where a skinny kernel is chosen. With out = kFloat32, y and scratch are fp32
  // and the call always adds: the fp32 sum added once to y's fp32 value, by cuBLASLt (beta 1) or by the skinny kernel
  // (SkinnyEpilogue kAddF32).
  bool linear_accumulate(const void* x, const void* w, void* y, int64_t m, int64_t n, int64_t k, cudaStream_t stream,
                         void* scratch, DataType out = DataType::kBFloat16);

  // Chooses the kernel for (m, n, k) and output type `out` by timing passes over all of `weights` (e.g. every layer's
  // matrix of that shape), unless already chosen on as many matrices. Not during graph capture.
  // With `epilogue`, every candidate is timed doing that work too (the skinny variants with its SkinnyEpilogue,
  // cuBLASLt followed by its kernel), so that they are compared doing what the step does; it must write only memory
  // of its own (scratch KV rows for RoPE + append).
  void tune(const void* x, std::span<const void* const> weights, void* y, int64_t m, int64_t n, int64_t k,
            cudaStream_t stream, DataType out = DataType::kBFloat16, const TuneEpilogue* epilogue = nullptr);

  // The kernel chosen for each shape so far, e.g. "8x6144x4096 skinny, 8x4096x4096 cublasLt" (" fp32 out" after
  // the shape of an fp32-output choice).
  std::string choices() const;

  // The same choices in NVRAR_LLM_GEMM's list form (config/gemm_pin.h), e.g.
  // "1x4096x4096=skinny0,8x4096x4096=cublaslt": set it to this to make a later run use them (cuBLASLt's algorithm
  // is still timed). A shape chosen for both output types is listed once (a pin applies to both).
  std::string plan_text() const;

 private:
  struct Plan {
    cublasLtMatmulDesc_t op = nullptr;
    cublasLtMatrixLayout_t a = nullptr, b = nullptr, c = nullptr;
    cublasLtMatmulAlgo_t algo{};
    int skinny_variant = -1;  // >= 0: that skinny_gemm variant measured faster than every cuBLASLt candidate
    std::size_t timed_over = 0;  // matrices the choice was timed on (0: not timed, cuBLASLt's first guess)
    std::string timings;  // "cublasLt 12.1, skinny0 20.3, ...": us per matrix, best cuBLASLt candidate ("with
                          // SwiGLU: cublasLt ...": each timed with tune()'s epilogue)
  };
  using Key = std::tuple<int64_t, int64_t, int64_t, DataType>;  // m, n, k, output type
  const Plan& plan(const void* x, std::span<const void* const> weights, void* y, int64_t m, int64_t n, int64_t k,
                   cudaStream_t stream, DataType out, const TuneEpilogue* epilogue = nullptr);
  static void destroy(Plan& p);
  // y = x . w^T + beta y by the plan's cuBLASLt algorithm (beta 0 or 1); throws naming `what` and the shape.
  void run_cublaslt(const Plan& p, const void* x, const void* w, void* y, float beta, int64_t m, int64_t n, int64_t k,
                    cudaStream_t stream, const char* what);

  config::GemmPin pin_;  // NVRAR_LLM_GEMM (config/gemm_pin.h)
  cublasLtHandle_t handle_ = nullptr;
  void* workspace_ = nullptr;
  std::size_t workspace_bytes_ = std::size_t{32} << 20;
  std::map<Key, Plan> plans_;
};

}  // namespace nvrar::engine::gpu
