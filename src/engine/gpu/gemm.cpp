#include "engine/gpu/gemm.h"

#include <cmath>
#include <cstdlib>
#include <string>
#include <utility>

#include <fmt/format.h>

#include "config/gemm_pin.h"
#include "config/settings.h"
#include "engine/gpu/skinny_gemm.h"
#include "nvrar/types.h"

namespace nvrar::engine::gpu {

static_assert(config::kGemmPinVariants == kSkinnyGemmVariants, "NVRAR_LLM_GEMM names every skinny variant");

namespace {

// The output types a GEMM writes; anything else is refused before cuBLASLt sees it.
void check_output(DataType out, int64_t m, int64_t n, int64_t k) {
  if (out != DataType::kBFloat16 && out != DataType::kFloat32)
    throw Error(fmt::format("nvrar-llm: Gemm: a [{} x {}] . [{} x {}]^T GEMM asked for {} output (the engine's GEMMs "
                            "write bfloat16 or float32)", m, k, n, k, dtype_name(out)));
}

// The skinny kernel's epilogue that stores (or, accumulating, adds) plain products of type `out`.
SkinnyEpilogue plain_store(DataType out, bool accumulate = false) {
  using Kind = SkinnyEpilogue::Kind;
  return {out == DataType::kFloat32 ? (accumulate ? Kind::kAddF32 : Kind::kStoreF32) : Kind::kStore};
}

void check(cublasStatus_t s, const char* what, int64_t m, int64_t n, int64_t k) {
  if (s != CUBLAS_STATUS_SUCCESS)
    throw Error(fmt::format("nvrar-llm: cuBLASLt {} failed for a [{} x {}] . [{} x {}]^T GEMM (status {})", what, m, k,
                            n, k, static_cast<int>(s)));
}

}  // namespace

// NVRAR_LLM_GEMM: the settings table has already checked the text with the same parser.
Gemm::Gemm() : Gemm(config::parse_gemm_pin(config::settings().llm_gemm)) {}

Gemm::Gemm(config::GemmPin pin) : pin_(std::move(pin)) {
  if (cublasLtCreate(&handle_) != CUBLAS_STATUS_SUCCESS) throw Error("nvrar-llm: cublasLtCreate failed");
  if (cudaMalloc(&workspace_, workspace_bytes_) != cudaSuccess)
    throw Error("nvrar-llm: GEMM workspace allocation failed");
}

void Gemm::destroy(Plan& p) {
  cublasLtMatrixLayoutDestroy(p.a);
  cublasLtMatrixLayoutDestroy(p.b);
  cublasLtMatrixLayoutDestroy(p.c);
  cublasLtMatmulDescDestroy(p.op);
}

Gemm::~Gemm() {
  for (auto& [key, p] : plans_) destroy(p);
  if (workspace_ != nullptr) cudaFree(workspace_);
  if (handle_ != nullptr) cublasLtDestroy(handle_);
}

// Row-major y = x . w^T is column-major y^T (n x m) = (w^T)^T (k x n, transposed) . x^T (k x m).
// Candidates: cuBLASLt's heuristic returns up to kCandidates algorithms, best guess first, and for m <= 8 our
// skinny_gemm joins them. Outside graph capture each is timed (CUDA events) on passes over `weights`, one GEMM per
// weight matrix back to back, as a forward pass runs them: 1 warm-up pass, then the sum of 3 timed passes; the
// fastest is kept. Given every layer's matrix of the shape (LlamaModel::prepare_gemms), a pass streams far more than
// L2 holds, as a decode step does. With an `epilogue` each candidate does the step's work on its output too: the
// skinny kernels in their epilogue, cuBLASLt followed by the epilogue's kernel (on an H200 at batch 8 the GEMMs
// timed alone chose cuBLASLt for gate/up, and the eager step's "other" phase, which holds the separate SwiGLU, was
// 0.21 ms against 0.04-0.07 at batch 1). Inside a capture (nothing may run) cuBLASLt's first guess is taken.
const Gemm::Plan& Gemm::plan(const void* x, std::span<const void* const> weights, void* y, int64_t m, int64_t n,
                             int64_t k, cudaStream_t stream, DataType out, const TuneEpilogue* epilogue) {
  check_output(out, m, n, k);
  const Key key{m, n, k, out};
  const auto it = plans_.find(key);
  if (it != plans_.end()) return it->second;
  Plan p;
  check(cublasLtMatmulDescCreate(&p.op, CUBLAS_COMPUTE_32F, CUDA_R_32F), "descriptor", m, n, k);
  const cublasOperation_t transa = CUBLAS_OP_T, transb = CUBLAS_OP_N;
  check(cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_TRANSA, &transa, sizeof(transa)), "TRANSA", m, n, k);
  check(cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_TRANSB, &transb, sizeof(transb)), "TRANSB", m, n, k);
  check(cublasLtMatrixLayoutCreate(&p.a, CUDA_R_16BF, k, n, k), "layout A", m, n, k);
  check(cublasLtMatrixLayoutCreate(&p.b, CUDA_R_16BF, k, m, k), "layout B", m, n, k);
  check(cublasLtMatrixLayoutCreate(&p.c, out == DataType::kFloat32 ? CUDA_R_32F : CUDA_R_16BF, n, m, n), "layout C",
        m, n, k);
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
  const auto variant_ok = [&](int variant) {
    for (const void* wi : weights)
      if (!skinny_gemm_supports(x, wi, y, m, n, k, variant) ||
          (epilogue != nullptr && !skinny_gemm_supports(x, wi, epilogue->skinny_out, m, n, k, variant)))
        return false;
    return true;
  };
  const bool skinny = variant_ok(0);  // the shape at all (the other variants add k constraints)
  if ((found > 1 || skinny) && cudaStreamIsCapturing(stream, &capture) == cudaSuccess &&
      capture == cudaStreamCaptureStatusNone) {
    cudaEvent_t start = nullptr, stop = nullptr;
    cudaEventCreate(&start);
    cudaEventCreate(&stop);
    // Sum of 3 timed passes over the weights after a warm-up pass, in ms; infinity if a run failed.
    const auto time_runs = [&](const auto& run) {
      const auto pass = [&] {
        bool ok = true;
        for (const void* wi : weights) ok = run(wi) && ok;
        return ok;
      };
      if (!pass()) return INFINITY;
      cudaEventRecord(start, stream);
      const bool ok = pass() && pass() && pass();
      cudaEventRecord(stop, stream);
      float ms = 0.0f;
      if (!ok || cudaEventSynchronize(stop) != cudaSuccess || cudaEventElapsedTime(&ms, start, stop) != cudaSuccess)
        return INFINITY;
      return ms;
    };
    const float alpha = 1.0f, beta = 0.0f;
    const double us_per_matrix = 1000.0 / (3.0 * static_cast<double>(weights.size()));
    float best = INFINITY;
    for (int i = 0; i < found; ++i) {
      const float ms = time_runs([&](const void* wi) {
        const bool ok = cublasLtMatmul(handle_, p.op, &alpha, wi, p.a, x, p.b, &beta, y, p.c, y, p.c,
                                       &results[i].algo, workspace_, workspace_bytes_, stream) == CUBLAS_STATUS_SUCCESS;
        if (ok && epilogue != nullptr && epilogue->after_cublaslt) epilogue->after_cublaslt();
        return ok && cudaPeekAtLastError() == cudaSuccess;
      });
      if (ms < best) {
        best = ms;
        p.algo = results[i].algo;
      }
    }
    p.timings = fmt::format("{}cublasLt {:.1f}", epilogue != nullptr ? fmt::format("with {}: ", epilogue->name) : "",
                            best * us_per_matrix);
    for (int variant = 0; skinny && variant < kSkinnyGemmVariants; ++variant) {
      if (!variant_ok(variant)) continue;
      const float ms = time_runs([&](const void* wi) {
        if (epilogue != nullptr)
          skinny_gemm(x, wi, epilogue->skinny_out, m, n, k, variant, stream, epilogue->skinny);
        else
          skinny_gemm(x, wi, y, m, n, k, variant, stream, plain_store(out));
        return cudaPeekAtLastError() == cudaSuccess;
      });
      p.timings += fmt::format(", skinny{} {:.1f}", variant, ms * us_per_matrix);
      if (ms < best) {
        best = ms;
        p.skinny_variant = variant;
      }
    }
    cudaEventDestroy(start);
    cudaEventDestroy(stop);
    p.timed_over = weights.size();
  }
  if (const int pinned = pin_.kernel_for({m, n, k}); pinned != config::kGemmTimed) {
    // The single-name form falls back to cuBLASLt where its variant does not take a shape; a shape listed by name
    // with such a variant is refused.
    if (pinned >= 0 && !variant_ok(pinned) && pin_.every_shape == config::kGemmTimed) {
      destroy(p);
      throw Error(fmt::format("nvrar-llm: NVRAR_LLM_GEMM pins {}x{}x{} to {}, which does not take that call (the "
                              "skinny kernel takes at most {} rows, k a multiple of 8, of 256 for variants 2 and 3, "
                              "and 16-byte aligned buffers); pin it to cublaslt or another variant",
                              m, n, k, config::gemm_kernel_name(pinned), kSkinnyGemmMaxRows));
    }
    p.skinny_variant = pinned >= 0 && variant_ok(pinned) ? pinned : -1;
    p.timings += p.timings.empty() ? "pinned" : ", pinned";
  }
  return plans_.emplace(key, p).first->second;
}

void Gemm::tune(const void* x, std::span<const void* const> weights, void* y, int64_t m, int64_t n, int64_t k,
                cudaStream_t stream, DataType out, const TuneEpilogue* epilogue) {
  if (weights.empty()) return;
  // A plan timed on fewer matrices (a first call through linear(), e.g. a prefill of length 1) is timed again.
  const auto it = plans_.find(Key{m, n, k, out});
  if (it != plans_.end()) {
    if (it->second.timed_over >= weights.size()) return;
    destroy(it->second);
    plans_.erase(it);
  }
  plan(x, weights, y, m, n, k, stream, out, epilogue);
}

std::string Gemm::choices() const {
  std::string out;
  for (const auto& [key, p] : plans_) {
    const auto [m, n, k, type] = key;
    const std::string kernel = p.skinny_variant >= 0 ? fmt::format("skinny{}", p.skinny_variant) : "cublasLt";
    out += fmt::format("{}{}x{}x{}{} {}", out.empty() ? "" : ", ", m, n, k,
                       type == DataType::kFloat32 ? " fp32 out" : "", kernel);
    if (!p.timings.empty()) out += " (" + p.timings + " us)";
  }
  return out;
}

std::string Gemm::plan_text() const {
  std::string out;
  std::tuple<int64_t, int64_t, int64_t> last{-1, -1, -1};
  for (const auto& [key, p] : plans_) {
    const auto [m, n, k, type] = key;
    if (std::make_tuple(m, n, k) == last) continue;  // the same shape's other output type (ordered next to it)
    last = {m, n, k};
    const int kernel = p.skinny_variant >= 0 ? p.skinny_variant : config::kGemmCublasLt;
    out += fmt::format("{}{}x{}x{}={}", out.empty() ? "" : ",", m, n, k, config::gemm_kernel_name(kernel));
  }
  return out;
}

bool Gemm::linear_skinny(const void* x, const void* w, void* y, int64_t m, int64_t n, int64_t k, cudaStream_t stream,
                         const SkinnyEpilogue& epilogue) {
  using Kind = SkinnyEpilogue::Kind;  // fp32 set only on the paired epilogues (skinny_gemm refuses it elsewhere)
  const bool fp32_products = epilogue.fp32 || epilogue.kind == Kind::kStoreF32 || epilogue.kind == Kind::kAddF32;
  const auto it = plans_.find(Key{m, n, k, fp32_products ? DataType::kFloat32 : DataType::kBFloat16});
  if (it == plans_.end() || it->second.skinny_variant < 0 ||
      !skinny_gemm_supports(x, w, y, m, n, k, it->second.skinny_variant))
    return false;
  skinny_gemm(x, w, y, m, n, k, it->second.skinny_variant, stream, epilogue);
  const cudaError_t e = cudaGetLastError();
  if (e != cudaSuccess)
    throw Error(fmt::format("nvrar-llm: skinny GEMM launch failed for a [{} x {}] . [{} x {}]^T GEMM with an "
                            "epilogue: {}", m, k, n, k, cudaGetErrorString(e)));
  return true;
}

void Gemm::linear(const void* x, const void* w, void* y, int64_t m, int64_t n, int64_t k, cudaStream_t stream,
                  DataType out) {
  const void* const one[] = {w};
  const Plan& p = plan(x, one, y, m, n, k, stream, out);
  if (p.skinny_variant >= 0 && skinny_gemm_supports(x, w, y, m, n, k, p.skinny_variant)) {
    skinny_gemm(x, w, y, m, n, k, p.skinny_variant, stream, plain_store(out));
    const cudaError_t e = cudaGetLastError();
    if (e != cudaSuccess)
      throw Error(fmt::format("nvrar-llm: skinny GEMM launch failed for a [{} x {}] . [{} x {}]^T GEMM: {}", m, k, n,
                              k, cudaGetErrorString(e)));
    return;
  }
  run_cublaslt(p, x, w, y, 0.0f, m, n, k, stream, "matmul");
}

void Gemm::run_cublaslt(const Plan& p, const void* x, const void* w, void* y, float beta, int64_t m, int64_t n,
                        int64_t k, cudaStream_t stream, const char* what) {
  const float alpha = 1.0f;
  check(cublasLtMatmul(handle_, p.op, &alpha, w, p.a, x, p.b, &beta, y, p.c, y, p.c, &p.algo, workspace_,
                       workspace_bytes_, stream),
        what, m, n, k);
}

bool Gemm::linear_accumulate(const void* x, const void* w, void* y, int64_t m, int64_t n, int64_t k,
                             cudaStream_t stream, void* scratch, DataType out) {
  const void* const one[] = {w};
  const Plan& p = plan(x, one, scratch, m, n, k, stream, out);
  if (p.skinny_variant >= 0) {
    if (out != DataType::kFloat32) return false;  // bf16: the caller writes the product and adds it with the norm
    if (skinny_gemm_supports(x, w, y, m, n, k, p.skinny_variant)) {
      skinny_gemm(x, w, y, m, n, k, p.skinny_variant, stream, plain_store(out, true));
      const cudaError_t e = cudaGetLastError();
      if (e != cudaSuccess)
        throw Error(fmt::format("nvrar-llm: skinny GEMM launch failed for a [{} x {}] . [{} x {}]^T GEMM adding into "
                                "fp32: {}", m, k, n, k, cudaGetErrorString(e)));
      return true;
    }
  }
  run_cublaslt(p, x, w, y, 1.0f, m, n, k, stream, "matmul (accumulating)");
  return true;
}

}  // namespace nvrar::engine::gpu
