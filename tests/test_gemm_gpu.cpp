// The engine's GEMMs on one GPU (skipped without one): cuBLASLt linear and the skinny decode GEMM against float64,
// and the skinny GEMM's input reads under programmatic dependent launch in a replayed graph.
#include <gtest/gtest.h>

#include <cuda_runtime_api.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "engine_gpu_test_support.h"
#include "engine/gpu/gemm.h"
#include "engine/gpu/layers.h"
#include "engine/gpu/skinny_gemm.h"

namespace {

namespace eg = nvrar::engine::gpu;
using namespace nvrar::engine::test_support;

// float64 reference of y = x . w^T (x: rows x k, w: n x k, bf16 bits) and, per element, the sum of |products|;
// within(y, i) allows a bf16 rounding of the result plus fp32 accumulation error.
struct LinearReference {
  std::vector<double> value, magnitude;
  LinearReference(const std::vector<uint16_t>& x, const std::vector<uint16_t>& w, int64_t rows, int64_t n, int64_t k)
      : value(rows * n), magnitude(rows * n) {
    for (int64_t i = 0; i < rows; ++i)
      for (int64_t j = 0; j < n; ++j)
        for (int64_t t = 0; t < k; ++t) {
          const double p = double(fl(x[i * k + t])) * fl(w[j * k + t]);
          value[i * n + j] += p;
          magnitude[i * n + j] += std::fabs(p);
        }
  }
  double tolerance(int64_t i) const { return std::fabs(value[i]) / 128 + magnitude[i] * 1e-5 + 1e-6; }
};

TEST(EngineGpu, LinearMatchesCpu) {
  REQUIRE_GPU();
  const int64_t m = 3, n = 40, k = 64;
  const auto x = random_bf16(m * k, 1), w = random_bf16(n * k, 2);
  uint16_t *dx = upload(x), *dw = upload(w), *dy = upload(std::vector<uint16_t>(m * n));
  eg::Gemm gemm;
  gemm.linear(dx, dw, dy, m, n, k, nullptr);
  const auto y = download(dy, m * n);
  const LinearReference ref(x, w, m, n, k);
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j)
      EXPECT_NEAR(fl(y[i * n + j]), ref.value[i * n + j], ref.tolerance(i * n + j)) << i << "," << j;
  cudaFree(dx);
  cudaFree(dw);
  cudaFree(dy);
}

// The decode GEMM kernel directly (Gemm may or may not pick it): every m it takes, k not a multiple of the
// CUDA-core variants' 256-element warp stride, a number of 256-element chunks (17) that is not a multiple of the
// tensor-core variants' 5 shared-memory stages, n not a multiple of the blocks' 8 or 16 rows.
TEST(EngineGpu, SkinnyGemmMatchesCpu) {
  REQUIRE_GPU();
  const int64_t n = 37;
  const int64_t k_largest = 4352;  // 17 x 256
  const auto w_all = random_bf16(n * k_largest, 11);
  for (int variant = 0; variant < eg::kSkinnyGemmVariants; ++variant)
  for (int64_t m = 1; m <= eg::kSkinnyGemmMaxRows; ++m) {
    // 4104 = 16 x 256 + 8 for the CUDA-core variants, 4352 = 17 x 256 for the tensor-core ones.
    const int64_t k = variant < 2 ? 4104 : k_largest;
    const std::vector<uint16_t> w(w_all.begin(), w_all.begin() + n * k);
    uint16_t* dw = upload(w);
    const auto x = random_bf16(m * k, 12 + m);
    uint16_t *dx = upload(x), *dy = upload(std::vector<uint16_t>(m * n));
    ASSERT_TRUE(eg::skinny_gemm_supports(dx, dw, dy, m, n, k, variant));
    eg::skinny_gemm(dx, dw, dy, m, n, k, variant, nullptr);
    const auto y = download(dy, m * n);
    const LinearReference ref(x, w, m, n, k);
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < n; ++j)
        EXPECT_NEAR(fl(y[i * n + j]), ref.value[i * n + j], ref.tolerance(i * n + j))
            << "variant " << variant << " m " << m << ": " << i << "," << j;
    cudaFree(dx);
    cudaFree(dy);
    cudaFree(dw);
  }
  uint16_t* dw = upload(w_all);
  EXPECT_FALSE(eg::skinny_gemm_supports(dw, dw, dw, 9, n, 4096));
  EXPECT_FALSE(eg::skinny_gemm_supports(dw, dw, dw, 1, n, 12));
  EXPECT_FALSE(eg::skinny_gemm_supports(dw, dw, dw, 1, n, 4104, 2));
  EXPECT_FALSE(eg::skinny_gemm_supports(dw, dw, dw, 1, n, 4224, 2));
  EXPECT_FALSE(eg::skinny_gemm_supports(dw, dw, dw, 1, n, 4224, 3));
  EXPECT_FALSE(eg::skinny_gemm_supports(dw, dw, dw, 1, n, 4096, 4));
  cudaFree(dw);
}

// Under programmatic dependent launch (gpu/device/pdl.cuh) a skinny GEMM starts streaming weights while the previous
// kernel still writes its input: in a captured graph, step i gathers new rows into the same x (gather_rows, which
// lets the next kernel start early) and multiplies them; every step's y must come from that step's x, in every
// replay (a load of x before griddepcontrol.wait, or through a cache that can hold the previous step's x, fails).
TEST(EngineGpu, SkinnyGemmReadsTheNewInputUnderPdl) {
  REQUIRE_GPU();
  const int64_t m = 8, n = 272, k = 2048, steps = 6;
  const auto table = random_bf16(steps * m * k, 21), w = random_bf16(n * k, 22);
  std::vector<int32_t> rows(steps * m);
  for (int64_t i = 0; i < steps * m; ++i) rows[i] = static_cast<int32_t>((i * 5 + 3) % (steps * m));
  std::vector<uint16_t> gathered(steps * m * k);  // step i's x: rows i m .. i m + m - 1 of the gathered table
  for (int64_t r = 0; r < steps * m; ++r)
    std::copy_n(table.begin() + rows[r] * k, k, gathered.begin() + r * k);
  const LinearReference ref(gathered, w, steps * m, n, k);
  uint16_t *dtable = upload(table), *dw = upload(w), *dx = upload(std::vector<uint16_t>(m * k));
  uint16_t* dy = upload(std::vector<uint16_t>(steps * m * n));
  int32_t* drows = upload(rows);
  cudaStream_t stream = nullptr;
  ASSERT_EQ(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), cudaSuccess);
  for (int variant = 0; variant < eg::kSkinnyGemmVariants; ++variant) {
    ASSERT_TRUE(eg::skinny_gemm_supports(dx, dw, dy, m, n, k, variant));
    ASSERT_EQ(cudaMemset(dy, 0, steps * m * n * sizeof(uint16_t)), cudaSuccess);
    cudaGraph_t graph = nullptr;
    cudaGraphExec_t exec = nullptr;
    ASSERT_EQ(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal), cudaSuccess);
    for (int64_t i = 0; i < steps; ++i) {
      eg::gather_rows(dtable, drows + i * m, m, k, dx, stream);
      eg::skinny_gemm(dx, dw, dy + i * m * n, m, n, k, variant, stream);
    }
    ASSERT_EQ(cudaStreamEndCapture(stream, &graph), cudaSuccess);
    ASSERT_EQ(cudaGraphInstantiate(&exec, graph, 0), cudaSuccess);
    for (int replay = 0; replay < 3; ++replay) ASSERT_EQ(cudaGraphLaunch(exec, stream), cudaSuccess);
    ASSERT_EQ(cudaStreamSynchronize(stream), cudaSuccess);
    const auto y = download(dy, steps * m * n);
    int bad = 0;
    for (int64_t i = 0; i < steps * m * n; ++i)
      if (std::fabs(fl(y[i]) - ref.value[i]) > ref.tolerance(i) && ++bad <= 5)
        ADD_FAILURE() << "variant " << variant << " step " << i / (m * n) << " row " << i / n % m << " col " << i % n
                      << ": " << fl(y[i]) << " vs " << ref.value[i];
    EXPECT_EQ(bad, 0) << "variant " << variant;
    cudaGraphExecDestroy(exec);
    cudaGraphDestroy(graph);
  }
  cudaStreamDestroy(stream);
  cudaFree(dtable);
  cudaFree(dw);
  cudaFree(dx);
  cudaFree(dy);
  cudaFree(drows);
}

}  // namespace
