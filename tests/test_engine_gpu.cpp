// The engine's GPU kernels against CPU references on one GPU (skipped without one): cuBLASLt linear, RoPE with
// transformers' roundings, KV append + split-K attention (decode and causal prefill lengths, GQA, several splits),
// SwiGLU, RMSNorm, argmax with ties.
#include <gtest/gtest.h>

#include <cuda_runtime_api.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "core/numeric.h"
#include "engine_gpu_test_support.h"
#include "engine/gpu/attention.h"
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

TEST(EngineGpu, RopeFollowsTransformersRoundings) {
  REQUIRE_GPU();
  const int q_heads = 2, kv_heads = 1, D = 8;
  const int64_t n = 3, cols = (q_heads + 2 * kv_heads) * D;
  const auto qkv = random_bf16(n * cols, 3);
  std::vector<int32_t> pos = {0, 5, 1000};
  std::vector<float> inv = {1.0f, 0.1f, 0.01f, 0.001f};
  uint16_t* d = upload(qkv);
  int32_t* dp = upload(pos);
  float* di = upload(inv);
  eg::rope_qk(d, n, cols, q_heads, kv_heads, D, dp, di, nullptr);
  const auto got = download(d, n * cols);
  for (int64_t t = 0; t < n; ++t)
    for (int h = 0; h < q_heads + 2 * kv_heads; ++h)
      for (int i = 0; i < D / 2; ++i) {
        const int64_t at = t * cols + h * D;
        if (h >= q_heads + kv_heads) {  // v heads untouched
          EXPECT_EQ(got[at + i], qkv[at + i]);
          continue;
        }
        const float a = float(pos[t]) * inv[i];
        const float c = fl(bf(std::cos(a))), s = fl(bf(std::sin(a)));
        const float x1 = fl(qkv[at + i]), x2 = fl(qkv[at + i + D / 2]);
        EXPECT_NEAR(fl(got[at + i]), fl(bf(fl(bf(x1 * c)) + fl(bf(-x2 * s)))), 1e-2) << t << " " << h << " " << i;
        EXPECT_NEAR(fl(got[at + i + D / 2]), fl(bf(fl(bf(x2 * c)) + fl(bf(x1 * s)))), 1e-2);
      }
}

// The fused RoPE + KV append: the same rotated qkv as rope_qk (bitwise), the rotated k heads and the raw v heads
// in the cache rows of (seq[t], kv head, positions[t]), and nothing else of the cache touched.
TEST(EngineGpu, RopeAppendWritesTheCache) {
  REQUIRE_GPU();
  const int q_heads = 4, kv_heads = 2, D = 16;
  const int64_t n = 3, cols = (q_heads + 2 * kv_heads) * D, max_seq = 1024, seqs = 2;
  const auto qkv = random_bf16(n * cols, 21);
  std::vector<int32_t> pos = {0, 5, 1000}, seq = {1, 0, 1};
  std::vector<float> inv(D / 2);
  for (int i = 0; i < D / 2; ++i) inv[i] = std::pow(0.5f, float(i));
  const std::vector<uint16_t> zeros(seqs * kv_heads * max_seq * D, 0);
  uint16_t *plain = upload(qkv), *fused = upload(qkv), *ck = upload(zeros), *cv = upload(zeros);
  int32_t *dp = upload(pos), *ds = upload(seq);
  float* di = upload(inv);
  eg::rope_qk(plain, n, cols, q_heads, kv_heads, D, dp, di, nullptr);
  eg::rope_qk_append(fused, n, cols, q_heads, kv_heads, D, dp, di, ds, ck, cv, max_seq, nullptr);
  const auto want = download(plain, n * cols), got = download(fused, n * cols);
  const auto k = download(ck, zeros.size()), v = download(cv, zeros.size());
  EXPECT_EQ(got, want);
  std::vector<uint16_t> k_ref = zeros, v_ref = zeros;
  for (int64_t t = 0; t < n; ++t)
    for (int h = 0; h < kv_heads; ++h)
      for (int d = 0; d < D; ++d) {
        const int64_t at = ((int64_t(seq[t]) * kv_heads + h) * max_seq + pos[t]) * D + d;
        k_ref[at] = want[t * cols + (q_heads + h) * D + d];
        v_ref[at] = qkv[t * cols + (q_heads + kv_heads + h) * D + d];
      }
  EXPECT_TRUE(k == k_ref);
  EXPECT_TRUE(v == v_ref);
}

// Attention of n queries over two sequences against a float64 softmax (q_heads / kv_heads: the grouped-query ratio). `len` cycles through decode-like and
// prefill-like lengths; few queries give many 32-key splits, many queries one long split.
void check_attention(int D, int64_t n, uint64_t seed, int q_heads = 4, int kv_heads = 2) {
  const int64_t max_seq = 700, seqs = 2;
  const int64_t cols = (q_heads + 2 * kv_heads) * D;
  const std::vector<int32_t> lengths = {1, 600, 37, 513, 33, 64, 2};
  std::vector<int32_t> seq(n), len(n);
  int64_t max_len = 0;
  for (int64_t t = 0; t < n; ++t) {
    seq[t] = static_cast<int32_t>(t % seqs);
    len[t] = lengths[t % lengths.size()];
    max_len = std::max<int64_t>(max_len, len[t]);
  }
  const auto qkv = random_bf16(n * cols, seed);
  const auto ck = random_bf16(seqs * kv_heads * max_seq * D, seed + 1);
  const auto cv = random_bf16(seqs * kv_heads * max_seq * D, seed + 2);
  uint16_t *dq = upload(qkv), *dk = upload(ck), *dv = upload(cv), *dout = upload(std::vector<uint16_t>(n * q_heads * D));
  int32_t *ds = upload(seq), *dl = upload(len);
  eg::AttentionShape s{n, cols, q_heads, kv_heads, D, max_seq, max_len};
  float* scratch = nullptr;
  ASSERT_EQ(cudaMalloc(reinterpret_cast<void**>(&scratch), eg::attention_scratch_floats(s) * sizeof(float)), cudaSuccess);
  eg::attention(dq, ds, dl, dk, dv, s, scratch, dout, nullptr);
  const auto got = download(dout, n * q_heads * D);
  int bad = 0;
  for (int64_t t = 0; t < n; ++t)
    for (int h = 0; h < q_heads; ++h) {
      const int kvh = h / (q_heads / kv_heads);
      const int64_t base = (seq[t] * kv_heads + kvh) * max_seq;
      std::vector<double> p(len[t]);
      double mx = -1e300, sum = 0;
      for (int64_t j = 0; j < len[t]; ++j) {
        double dot = 0;
        for (int d = 0; d < D; ++d) dot += double(fl(qkv[t * cols + h * D + d])) * fl(ck[(base + j) * D + d]);
        p[j] = dot / std::sqrt(double(D));
        mx = std::max(mx, p[j]);
      }
      for (auto& v : p) sum += (v = std::exp(v - mx));
      for (int d = 0; d < D; ++d) {
        double o = 0;
        for (int64_t j = 0; j < len[t]; ++j) o += p[j] * fl(cv[(base + j) * D + d]);
        o /= sum;
        const float g = fl(got[(t * q_heads + h) * D + d]);
        if (!(std::fabs(g - o) <= std::fabs(o) / 128 + 2e-3) && bad++ < 10)
          ADD_FAILURE() << "D " << D << " heads " << q_heads << "/" << kv_heads << " n " << n << " query " << t << " head " << h << " dim " << d << ": " << g
                        << " vs " << o;
      }
    }
  EXPECT_EQ(bad, 0);
  for (void* p : std::initializer_list<void*>{scratch, dq, dk, dv, dout, ds, dl}) cudaFree(p);
}

TEST(EngineGpu, AttentionMatchesCpuSoftmax) {
  REQUIRE_GPU();
  for (const int D : {32, 64, 128, 256}) check_attention(D, 4, 4 + D);  // decode-like: many short splits
  check_attention(128, 300, 7);  // 300 queries x 4 heads: one long split per query
  // Blocks serving 4 and 8 query heads of one KV head (enough queries x splits to keep them: heads_per_block), 2 and
  // 1 where fewer blocks would not fill the GPU, and a ratio of 3 (one head per block).
  check_attention(128, 3, 11, 32, 8);   // 4 heads per block
  check_attention(64, 16, 12, 16, 2);   // 8
  check_attention(256, 40, 13, 8, 1);   // 8
  check_attention(64, 2, 15, 16, 2);    // 2
  check_attention(64, 5, 14, 12, 4);    // 1
  EXPECT_FALSE(eg::attention_supports_head_dim(96));
}

TEST(EngineGpu, SwigluRmsnormArgmax) {
  REQUIRE_GPU();
  const int64_t n = 2, inter = 40, H = 64;
  const auto gu = random_bf16(n * 2 * inter, 7, 3.0f);
  uint16_t *dgu = upload(gu), *dact = upload(std::vector<uint16_t>(n * inter));
  eg::swiglu(dgu, n, inter, dact, nullptr);
  const auto act = download(dact, n * inter);
  for (int64_t t = 0; t < n; ++t)
    for (int64_t i = 0; i < inter; ++i) {
      const float g = fl(gu[t * 2 * inter + i]), u = fl(gu[t * 2 * inter + inter + i]);
      EXPECT_NEAR(fl(act[t * inter + i]), fl(bf(fl(bf(g / (1 + std::exp(-g)))) * u)), 2e-2);
    }
  const auto x = random_bf16(n * H, 8), w = random_bf16(H, 9);
  uint16_t *dx = upload(x), *dw = upload(w), *dy = upload(std::vector<uint16_t>(n * H));
  eg::rmsnorm(dx, dw, dy, n, H, 1e-5f, nullptr);
  const auto y = download(dy, n * H);
  for (int64_t t = 0; t < n; ++t) {
    double ss = 0;
    for (int64_t i = 0; i < H; ++i) ss += double(fl(x[t * H + i])) * fl(x[t * H + i]);
    const double inv = 1 / std::sqrt(ss / H + 1e-5);
    for (int64_t i = 0; i < H; ++i) {
      const double want = fl(w[i]) * fl(x[t * H + i]) * inv;
      EXPECT_NEAR(fl(y[t * H + i]), want, std::fabs(want) / 64 + 1e-3);
    }
  }
  // argmax: a tie between columns 3 and 7 picks 3; the offset is added.
  std::vector<uint16_t> logits(2 * 10, bf(-1.0f));
  logits[3] = logits[7] = bf(2.0f);
  logits[10 + 9] = bf(0.5f);
  uint16_t* dl = upload(logits);
  float* dv = upload(std::vector<float>(2));
  int32_t* di = upload(std::vector<int32_t>(2));
  eg::argmax_rows(dl, 2, 10, 100, dv, di, nullptr);
  const auto idx = download(di, 2);
  EXPECT_EQ(idx[0], 103);
  EXPECT_EQ(idx[1], 109);
}

}  // namespace
