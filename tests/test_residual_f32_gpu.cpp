// The fp32 residual stream's kernels (src/engine/gpu/residual_f32.h) against CPU references: the residual add bit
// for bit (one fp32 add of the bf16 partial); the bf16 output equal to LlamaRMSNorm's roundings,
// bf16(w * bf16(r * inv)), at an inv within kInvSlack of the float64 one (which also puts it within two bf16
// roundings of the exact w * r * inv); the same with fp32 partial sums. Rows 1, 3 and 70000 (past the 65535-block grid), hidden 256 to 16384 (a
// thread taking several units, and a partial last warp), graph replays. GPU tests skip without a device.
#include <gtest/gtest.h>

#include <cuda_runtime_api.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include "engine/gpu/residual_f32.h"
#include "engine_gpu_test_support.h"
#include "nvrar/types.h"

namespace {

namespace eg = nvrar::engine::gpu;
using nvrar::engine::test_support::bf;
using nvrar::engine::test_support::download;
using nvrar::engine::test_support::fl;
using nvrar::engine::test_support::have_gpu;
using nvrar::engine::test_support::random_bf16;
using nvrar::engine::test_support::upload;

constexpr float kEps = 1e-5f;
// Relative error allowed on the kernel's inverse rms: its fp32 sum of squares (here at most 16 sequential adds per
// thread, then two 32-way trees: under 2^-19 relative for positive terms) and rsqrtf (2 ulp, CUDA's documented
// bound), with room to spare; a wrong rounding moves an element by a bf16 ulp, 2^-8 relative or more.
constexpr double kInvSlack = 1e-5;

uint32_t bits(float v) {
  uint32_t u;
  std::memcpy(&u, &v, sizeof u);
  return u;
}

// LlamaRMSNorm's output for one element x of the fp32 stream, at inverse rms inv: bf16(w * bf16(x * inv)).
double hf_norm(double x, uint16_t w, double inv) {
  const float normed = fl(bf(static_cast<float>(x * inv)));
  return fl(bf(fl(w) * normed));  // the product of two bf16 values is exact in fp32
}

// n fp32 values spread over several binades (as a residual stream is), from seed.
std::vector<float> random_residual(std::size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> mant(-1.0f, 1.0f);
  std::uniform_int_distribution<int> exp(-6, 4);
  std::vector<float> v(n);
  for (auto& x : v) x = std::ldexp(mant(rng), exp(rng));
  return v;
}

// Checks out (bf16 bits) against the RMSNorm of fp32 rows r with weight w: hf_norm is monotone in inv, so the
// kernel's value must lie between hf_norm at the float64 inv x (1 -+ kInvSlack).
void expect_rmsnorm(const std::vector<float>& r, const std::vector<uint16_t>& w, const std::vector<uint16_t>& out,
                    int64_t rows, int64_t hidden) {
  int64_t failures = 0;
  for (int64_t t = 0; t < rows && failures < 10; ++t) {
    double ss = 0;
    for (int64_t i = 0; i < hidden; ++i) ss += double(r[t * hidden + i]) * r[t * hidden + i];
    const double inv = 1 / std::sqrt(ss / double(hidden) + double(kEps));
    for (int64_t i = 0; i < hidden; ++i) {
      const double x = r[t * hidden + i];
      const double a = hf_norm(x, w[i], inv * (1 - kInvSlack)), b = hf_norm(x, w[i], inv * (1 + kInvSlack));
      const double got = fl(out[t * hidden + i]);
      if (!(got >= std::min(a, b) && got <= std::max(a, b)) && failures++ < 10)
        ADD_FAILURE() << "row " << t << " col " << i << ": got " << got << ", LlamaRMSNorm's rounding " << a
                      << " .. " << b << ", exact " << double(fl(w[i])) * x * inv;
    }
  }
}

// f32_partial: the fp32 partial sums of NVRAR_LLM_ACTIVATIONS=fp32 (values with all 24 bits of mantissa).
void check_residual_rmsnorm(int64_t rows, int64_t hidden, uint64_t seed, bool f32_partial = false) {
  SCOPED_TRACE(testing::Message() << rows << " rows x " << hidden << (f32_partial ? ", fp32 partial" : ""));
  const std::size_t n = static_cast<std::size_t>(rows * hidden);
  const auto partial = random_bf16(n, seed, 4.0f);
  const auto partial32 = random_residual(n, seed + 3);
  const auto r0 = random_residual(n, seed + 1);
  const auto w = random_bf16(static_cast<std::size_t>(hidden), seed + 2, 0.5f);
  std::vector<uint16_t> w1(w.size());
  for (std::size_t i = 0; i < w.size(); ++i) w1[i] = bf(1.0f + fl(w[i]));  // norm weights near 1, as in a model
  uint16_t* dp = upload(partial);
  float* dp32 = upload(partial32);
  float* dr = upload(r0);
  uint16_t* dw = upload(w1);
  uint16_t* dout = upload(std::vector<uint16_t>(n, bf(NAN)));
  if (f32_partial)
    eg::residual_rmsnorm_f32(dp32, dr, dw, dout, rows, hidden, kEps, nullptr);
  else
    eg::residual_rmsnorm_f32(dp, dr, dw, dout, rows, hidden, kEps, nullptr);
  EXPECT_EQ(cudaGetLastError(), cudaSuccess);
  const auto r = download(dr, n);
  const auto out = download(dout, n);
  int64_t wrong = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const float want = r0[i] + (f32_partial ? partial32[i] : fl(partial[i]));  // one fp32 add, as the kernel does
    if (bits(r[i]) != bits(want) && wrong++ < 10)
      ADD_FAILURE() << "residual " << i << ": got " << r[i] << ", want " << want;
  }
  EXPECT_EQ(wrong, 0);
  expect_rmsnorm(r, w1, out, rows, hidden);
  for (void* p : {static_cast<void*>(dp), static_cast<void*>(dp32), static_cast<void*>(dr), static_cast<void*>(dw),
                  static_cast<void*>(dout)})
    cudaFree(p);
}

TEST(ResidualF32Gpu, AddAndNormMatchFloat64) {
  if (!have_gpu()) GTEST_SKIP() << "no CUDA device";
  for (int64_t rows : {1, 3}) {
    check_residual_rmsnorm(rows, 256, 11);
    check_residual_rmsnorm(rows, 4096, 12);
  }
  check_residual_rmsnorm(3, 264, 13);     // 33 units: a second warp with one busy lane
  check_residual_rmsnorm(3, 16384, 14);   // 2048 units over 1024 threads: two units per thread
  check_residual_rmsnorm(70000, 256, 15);  // more rows than blocks: the grid-stride loop
}

TEST(ResidualF32Gpu, Fp32PartialAddAndNormMatchFloat64) {
  if (!have_gpu()) GTEST_SKIP() << "no CUDA device";
  check_residual_rmsnorm(3, 4096, 21, true);
  check_residual_rmsnorm(3, 264, 22, true);
  check_residual_rmsnorm(70000, 256, 23, true);
}

TEST(ResidualF32Gpu, NormAloneLeavesTheStream) {
  if (!have_gpu()) GTEST_SKIP() << "no CUDA device";
  const int64_t rows = 3, hidden = 4096;
  const std::size_t n = static_cast<std::size_t>(rows * hidden);
  const auto r0 = random_residual(n, 21);
  const auto w = random_bf16(static_cast<std::size_t>(hidden), 22, 2.0f);
  float* dr = upload(r0);
  uint16_t* dw = upload(w);
  uint16_t* dout = upload(std::vector<uint16_t>(n, bf(NAN)));
  eg::rmsnorm_f32(dr, dw, dout, rows, hidden, kEps, nullptr);
  const auto r = download(dr, n);
  const auto out = download(dout, n);
  EXPECT_EQ(std::memcmp(r.data(), r0.data(), n * sizeof(float)), 0);
  expect_rmsnorm(r0, w, out, rows, hidden);
  cudaFree(dr);
  cudaFree(dw);
  cudaFree(dout);
}

TEST(ResidualF32Gpu, EmbeddingIsExact) {
  if (!have_gpu()) GTEST_SKIP() << "no CUDA device";
  const int64_t vocab = 50, hidden = 264;
  const auto table = random_bf16(static_cast<std::size_t>(vocab * hidden), 31, 8.0f);
  const std::vector<int32_t> tokens = {7, 0, 49, 7, 3};
  const int64_t n = static_cast<int64_t>(tokens.size());
  uint16_t* dt = upload(table);
  int32_t* dtok = upload(tokens);
  float* dout = upload(std::vector<float>(static_cast<std::size_t>(n * hidden), NAN));
  eg::embedding_lookup_f32(dtok, n, dt, hidden, dout, nullptr);
  const auto out = download(dout, static_cast<std::size_t>(n * hidden));
  for (int64_t t = 0; t < n; ++t)
    for (int64_t i = 0; i < hidden; ++i)
      ASSERT_EQ(bits(out[t * hidden + i]), bits(fl(table[tokens[t] * hidden + i]))) << t << " " << i;
  cudaFree(dt);
  cudaFree(dtok);
  cudaFree(dout);
}

// Two replays of a captured call add the partial twice (nothing is allocated or read from the host in the call).
TEST(ResidualF32Gpu, GraphReplays) {
  if (!have_gpu()) GTEST_SKIP() << "no CUDA device";
  const int64_t rows = 3, hidden = 512;
  const std::size_t n = static_cast<std::size_t>(rows * hidden);
  const auto partial = random_bf16(n, 41, 2.0f);
  const auto r0 = random_residual(n, 42);
  const auto w = random_bf16(static_cast<std::size_t>(hidden), 43);
  uint16_t *dp = upload(partial), *dw = upload(w), *dout = upload(std::vector<uint16_t>(n));
  float* dr = upload(r0);
  cudaStream_t stream = nullptr;
  ASSERT_EQ(cudaStreamCreate(&stream), cudaSuccess);
  cudaGraph_t graph = nullptr;
  cudaGraphExec_t exec = nullptr;
  ASSERT_EQ(cudaStreamBeginCapture(stream, cudaStreamCaptureModeGlobal), cudaSuccess);
  eg::residual_rmsnorm_f32(dp, dr, dw, dout, rows, hidden, kEps, stream);
  ASSERT_EQ(cudaStreamEndCapture(stream, &graph), cudaSuccess);
  ASSERT_EQ(cudaGraphInstantiate(&exec, graph, 0), cudaSuccess);
  for (int replay = 0; replay < 2; ++replay) ASSERT_EQ(cudaGraphLaunch(exec, stream), cudaSuccess);
  ASSERT_EQ(cudaStreamSynchronize(stream), cudaSuccess);
  const auto r = download(dr, n);
  const auto out = download(dout, n);
  for (std::size_t i = 0; i < n; ++i) {
    const float once = r0[i] + fl(partial[i]);
    ASSERT_EQ(bits(r[i]), bits(once + fl(partial[i]))) << i;
  }
  expect_rmsnorm(r, w, out, rows, hidden);
  cudaGraphExecDestroy(exec);
  cudaGraphDestroy(graph);
  cudaStreamDestroy(stream);
  for (void* p : {static_cast<void*>(dp), static_cast<void*>(dr), static_cast<void*>(dw), static_cast<void*>(dout)})
    cudaFree(p);
}

// Shapes the 16-byte loads cannot take are refused on the host, before any launch (no device needed).
TEST(ResidualF32, RefusesBadShapes) {
  alignas(16) static float residual[32];
  alignas(16) static uint16_t half[32];
  EXPECT_THROW(eg::residual_rmsnorm_f32(half, residual, half, half, 1, 12, kEps, nullptr), nvrar::Error);
  EXPECT_THROW(eg::residual_rmsnorm_f32(half + 1, residual, half, half, 1, 8, kEps, nullptr), nvrar::Error);
  EXPECT_THROW(eg::rmsnorm_f32(residual + 1, half, half, 1, 8, kEps, nullptr), nvrar::Error);
  EXPECT_THROW(eg::residual_rmsnorm_f32(residual + 1, residual, half, half, 1, 8, kEps, nullptr), nvrar::Error);
  EXPECT_THROW(eg::residual_rmsnorm_f32(residual, residual, half, half, 1, 12, kEps, nullptr), nvrar::Error);
  EXPECT_NO_THROW(eg::residual_rmsnorm_f32(half, residual, half, half, 0, 12, kEps, nullptr));  // no rows: nothing
}

}  // namespace
