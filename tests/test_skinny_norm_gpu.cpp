// The decode RMSNorm inside the skinny GEMMs (skinny_gemm.h: kAddResidual and SkinnyInputNorm; skinny_norm.cuh) on
// one GPU (skipped without one), for every variant: the residual add bit for bit and its row partials against
// float64; the normalised input against a float64 RMSNorm (identity weights make the GEMM print its input), the same
// in every variant; every epilogue fed by the normalised input bit for bit against the plain GEMM on that input; a
// producer's partials feeding a consumer against the norm kernel (gpu/device/residual_rmsnorm.h); the calls refused.
#include <gtest/gtest.h>

#include <cuda_runtime_api.h>

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "engine_gpu_test_support.h"
#include "engine/gpu/skinny_gemm.h"
#include "gpu/device/residual_rmsnorm.h"
#include "nvrar/types.h"

namespace {

namespace eg = nvrar::engine::gpu;
using namespace nvrar::engine::test_support;

constexpr float kEps = 1e-5f;

// Row r's sums of squares per 16 columns of h [m, k].
std::vector<float> row_partials(const std::vector<uint16_t>& h, int64_t m, int64_t k) {
  const int64_t groups = k / eg::kNormGroupColumns;
  std::vector<float> p(m * groups);
  for (int64_t r = 0; r < m; ++r)
    for (int64_t j = 0; j < k; ++j) p[r * groups + j / eg::kNormGroupColumns] += fl(h[r * k + j]) * fl(h[r * k + j]);
  return p;
}

// float64 inverse RMS, then rmsnorm.cuh's two roundings: round(weight * round(h * inv)).
std::vector<uint16_t> rmsnorm_reference(const std::vector<uint16_t>& h, const std::vector<uint16_t>& weight,
                                        int64_t m, int64_t k) {
  std::vector<uint16_t> x(m * k);
  for (int64_t r = 0; r < m; ++r) {
    double s = 0;
    for (int64_t j = 0; j < k; ++j) s += double(fl(h[r * k + j])) * fl(h[r * k + j]);
    const float inv = static_cast<float>(1.0 / std::sqrt(s / double(k) + kEps));
    for (int64_t j = 0; j < k; ++j) x[r * k + j] = bf(fl(weight[j]) * fl(bf(fl(h[r * k + j]) * inv)));
  }
  return x;
}

// Distance in bf16 units in the last place (same sign assumed away: values of opposite sign count as far apart).
int ulps(uint16_t a, uint16_t b) {
  const auto key = [](uint16_t v) { return (v & 0x8000) ? -int(v & 0x7fff) : int(v); };
  return std::abs(key(a) - key(b));
}

// Expects x within one bf16 rounding of the reference everywhere and equal in at least 99% of the elements (the
// kernel's inverse RMS may differ from float64's in its last bit, moving a product across a rounding boundary).
void expect_rmsnorm(const std::vector<uint16_t>& got, const std::vector<uint16_t>& want, const std::string& what) {
  ASSERT_EQ(got.size(), want.size());
  std::size_t equal = 0;
  for (std::size_t i = 0; i < got.size(); ++i) {
    ASSERT_LE(ulps(got[i], want[i]), 1) << what << ": element " << i << " " << fl(got[i]) << " vs " << fl(want[i]);
    equal += got[i] == want[i];
  }
  EXPECT_GE(equal * 100, got.size() * 99) << what << ": " << equal << " of " << got.size() << " equal";
}

std::vector<uint16_t> identity_bf16(int64_t k) {
  std::vector<uint16_t> w(k * k, bf(0.0f));
  for (int64_t j = 0; j < k; ++j) w[j * k + j] = bf(1.0f);
  return w;
}

std::vector<uint16_t> norm_weights(int64_t k, uint64_t seed) {
  auto w = random_bf16(k, seed, 0.5f);
  for (auto& v : w) v = bf(1.0f + fl(v));
  return w;
}

// The input norm alone: with identity weights y is the normalised h, which every variant must produce identically
// (one inverse RMS per row, summed in one order) and within one rounding of float64.
TEST(SkinnyNormGpu, InputNormIsTheRmsNormOfTheResidual) {
  REQUIRE_GPU();
  const int64_t k = 512;
  const auto ident = identity_bf16(k), weight = norm_weights(k, 3);
  uint16_t *dw = upload(ident), *dg = upload(weight);
  for (const int64_t m : {1, 2, 5, 8}) {
    const auto h = random_bf16(m * k, 40 + m, 2.0f);
    const auto want = rmsnorm_reference(h, weight, m, k);
    uint16_t *dh = upload(h), *dy = upload(std::vector<uint16_t>(m * k));
    float* dp = upload(row_partials(h, m, k));
    const eg::SkinnyInputNorm norm{dg, dp, kEps};
    std::vector<uint16_t> first;
    for (int variant = 0; variant < eg::kSkinnyGemmVariants; ++variant) {
      eg::skinny_gemm(dh, dw, dy, m, k, k, variant, nullptr, {}, &norm);
      const auto got = download(dy, m * k);
      const std::string what = "variant " + std::to_string(variant) + " m " + std::to_string(m);
      expect_rmsnorm(got, want, what);
      if (variant == 0) first = got;
      EXPECT_EQ(got, first) << what << ": differs from variant 0";
    }
    for (void* p : {static_cast<void*>(dh), static_cast<void*>(dy), static_cast<void*>(dp)}) cudaFree(p);
  }
  cudaFree(dw);
  cudaFree(dg);
}

// Every epilogue the engine pairs with the input norm (store, SwiGLU, RoPE + KV append): bit for bit the plain GEMM
// of the same variant on the normalised input (taken from the identity GEMM above, so the same bits).
TEST(SkinnyNormGpu, InputNormFeedsEveryEpilogue) {
  REQUIRE_GPU();
  const int64_t m = 3, k = 512, heads = 4, kv_heads = 2, head_dim = 64, n = (heads + 2 * kv_heads) * head_dim;
  const int64_t max_seq = 16;
  const auto h = random_bf16(m * k, 51, 2.0f), w = random_bf16(n * k, 52), weight = norm_weights(k, 53);
  const auto ident = identity_bf16(k);
  std::vector<float> inv_freq(head_dim / 2);
  for (int64_t e = 0; e < head_dim / 2; ++e) inv_freq[e] = std::pow(10000.0f, -2.0f * float(e) / float(head_dim));
  const std::vector<int32_t> positions = {3, 0, 9}, seq = {1, 0, 2};
  const std::vector<uint16_t> zero_cache(3 * kv_heads * max_seq * head_dim, 0);
  uint16_t *dh = upload(h), *dw = upload(w), *dg = upload(weight), *di = upload(ident);
  uint16_t* dx = upload(std::vector<uint16_t>(m * k));
  float *dp = upload(row_partials(h, m, k)), *dfreq = upload(inv_freq);
  int32_t *dpos = upload(positions), *dseq = upload(seq);
  const eg::SkinnyInputNorm norm{dg, dp, kEps};
  for (int variant = 0; variant < eg::kSkinnyGemmVariants; ++variant) {
    eg::skinny_gemm(dh, di, dx, m, k, k, variant, nullptr, {}, &norm);  // x = the normalised h
    for (const auto kind : {eg::SkinnyEpilogue::Kind::kStore, eg::SkinnyEpilogue::Kind::kSwiGlu,
                            eg::SkinnyEpilogue::Kind::kRopeAppend}) {
      const std::string what = "variant " + std::to_string(variant) + " epilogue " + std::to_string(int(kind));
      const int64_t out_cols = kind == eg::SkinnyEpilogue::Kind::kSwiGlu ? n / 2 : n;
      const std::vector<uint16_t> zero_y(m * out_cols);
      uint16_t *y_fused = upload(zero_y), *y_plain = upload(zero_y);
      uint16_t *ck_fused = upload(zero_cache), *cv_fused = upload(zero_cache);
      uint16_t *ck_plain = upload(zero_cache), *cv_plain = upload(zero_cache);
      eg::SkinnyEpilogue e{kind, int(heads), int(kv_heads), int(head_dim), dpos, dfreq, dseq, ck_fused, cv_fused,
                           max_seq};
      eg::skinny_gemm(dh, dw, y_fused, m, n, k, variant, nullptr, e, &norm);
      e.cache_k = ck_plain;
      e.cache_v = cv_plain;
      eg::skinny_gemm(dx, dw, y_plain, m, n, k, variant, nullptr, e);
      EXPECT_EQ(download(y_fused, m * out_cols), download(y_plain, m * out_cols)) << what;
      EXPECT_EQ(download(ck_fused, zero_cache.size()), download(ck_plain, zero_cache.size())) << what << ": cache k";
      EXPECT_EQ(download(cv_fused, zero_cache.size()), download(cv_plain, zero_cache.size())) << what << ": cache v";
      for (uint16_t* p : {y_fused, y_plain, ck_fused, cv_fused, ck_plain, cv_plain}) cudaFree(p);
    }
  }
  for (void* p : {static_cast<void*>(dh), static_cast<void*>(dw), static_cast<void*>(dg), static_cast<void*>(di),
                  static_cast<void*>(dx), static_cast<void*>(dp), static_cast<void*>(dfreq),
                  static_cast<void*>(dpos), static_cast<void*>(dseq)})
    cudaFree(p);
}

// The residual add: h' = round(h + round(y)) bit for bit, y from the plain GEMM of the same variant (the same sums),
// and the row partials: the sums of squares of h' per 16 columns, against float64.
TEST(SkinnyNormGpu, AddResidualAddsAndWritesRowPartials) {
  REQUIRE_GPU();
  const int64_t n = 96, k = 768;  // 6 groups of 16 columns; three 32-column blocks of variant 1
  const auto w = random_bf16(n * k, 61);
  for (int variant = 0; variant < eg::kSkinnyGemmVariants; ++variant)
    for (const int64_t m : {1, 3, 8}) {
      const std::string what = "variant " + std::to_string(variant) + " m " + std::to_string(m);
      const auto x = random_bf16(m * k, 62 + m), h = random_bf16(m * n, 63 + m, 4.0f);
      uint16_t *dx = upload(x), *dw = upload(w), *dy = upload(std::vector<uint16_t>(m * n)), *dh = upload(h);
      const int64_t groups = n / eg::kNormGroupColumns;
      float* dp = upload(std::vector<float>(m * groups, -1.0f));
      eg::skinny_gemm(dx, dw, dy, m, n, k, variant, nullptr);
      eg::SkinnyEpilogue add{eg::SkinnyEpilogue::Kind::kAddResidual};
      add.row_squares = dp;
      eg::skinny_gemm(dx, dw, dh, m, n, k, variant, nullptr, add);
      const auto y = download(dy, m * n), got = download(dh, m * n);
      const auto partials = download(dp, m * groups);
      for (int64_t i = 0; i < m * n; ++i)
        ASSERT_EQ(got[i], bf(fl(h[i]) + fl(y[i]))) << what << ": element " << i;
      for (int64_t r = 0; r < m; ++r)
        for (int64_t g = 0; g < groups; ++g) {
          double want = 0;
          for (int64_t j = g * 16; j < g * 16 + 16; ++j) want += double(fl(got[r * n + j])) * fl(got[r * n + j]);
          EXPECT_NEAR(partials[r * groups + g], want, want * 1e-5 + 1e-30) << what << ": row " << r << " group " << g;
        }
      for (void* p : {static_cast<void*>(dx), static_cast<void*>(dw), static_cast<void*>(dy), static_cast<void*>(dh),
                      static_cast<void*>(dp)})
        cudaFree(p);
    }
}

// Producer into consumer, as a decode step chains them: a residual-adding GEMM (every variant), then a GEMM with the
// input norm (identity weights, every variant) prints x, which must be the norm kernel's x of the same h' within
// one rounding (they sum the squares in different orders).
TEST(SkinnyNormGpu, ChainedGemmsMatchTheNormKernel) {
  REQUIRE_GPU();
  const int64_t m = 4, hidden = 256, k_in = 512;
  const auto w = random_bf16(hidden * k_in, 71), x = random_bf16(m * k_in, 72), h = random_bf16(m * hidden, 73);
  const auto weight = norm_weights(hidden, 74), ident = identity_bf16(hidden);
  uint16_t *dw = upload(w), *dx = upload(x), *dg = upload(weight), *di = upload(ident);
  for (int producer = 0; producer < eg::kSkinnyGemmVariants; ++producer) {
    uint16_t *dh = upload(h), *dh_ref = upload(h), *dy = upload(std::vector<uint16_t>(m * hidden));
    const std::vector<uint16_t> zero_x(m * hidden);
    uint16_t *x_fused = upload(zero_x), *x_kernel = upload(zero_x);
    float* dp = upload(std::vector<float>(m * hidden / eg::kNormGroupColumns));
    eg::SkinnyEpilogue add{eg::SkinnyEpilogue::Kind::kAddResidual};
    add.row_squares = dp;
    eg::skinny_gemm(dx, dw, dh, m, hidden, k_in, producer, nullptr, add);
    eg::skinny_gemm(dx, dw, dy, m, hidden, k_in, producer, nullptr);  // the unfused path: y, then the norm kernel
    ASSERT_EQ(nvrar::gpu::launch_residual_rmsnorm(dy, dh_ref, dg, x_kernel, m, hidden, kEps,
                                                  nvrar::DataType::kBFloat16, nullptr),
              cudaSuccess);
    EXPECT_EQ(download(dh, m * hidden), download(dh_ref, m * hidden)) << "producer " << producer << ": residual";
    const eg::SkinnyInputNorm norm{dg, dp, kEps};
    for (int consumer = 0; consumer < eg::kSkinnyGemmVariants; ++consumer) {
      eg::skinny_gemm(dh, di, x_fused, m, hidden, hidden, consumer, nullptr, {}, &norm);
      expect_rmsnorm(download(x_fused, m * hidden), download(x_kernel, m * hidden),
                     "producer " + std::to_string(producer) + " consumer " + std::to_string(consumer));
    }
    for (void* p : {static_cast<void*>(dh), static_cast<void*>(dh_ref), static_cast<void*>(dy),
                    static_cast<void*>(x_fused), static_cast<void*>(x_kernel), static_cast<void*>(dp)})
      cudaFree(p);
  }
  for (uint16_t* p : {dw, dx, dg, di}) cudaFree(p);
}

TEST(SkinnyNormGpu, RefusesWhatItDoesNotTake) {
  REQUIRE_GPU();
  uint16_t* d = upload(std::vector<uint16_t>(64 * 1024));
  float* p = upload(std::vector<float>(1024));
  const eg::SkinnyInputNorm norm{d, p, kEps};
  const auto refused = [](const auto& call, const char* what) {
    try {
      call();
    } catch (const nvrar::Error& e) {
      return std::string(e.what()).find(what) != std::string::npos;
    }
    return false;
  };
  EXPECT_TRUE(refused([&] { eg::skinny_gemm(d, d, d, 1, 48, 512, 0, nullptr, {}, &norm); }, "n a multiple of 32"));
  EXPECT_TRUE(refused([&] { eg::skinny_gemm(d, d, d, 1, 64, 264, 0, nullptr, {}, &norm); }, "k of 256"));
  const eg::SkinnyInputNorm no_partials{d, nullptr, kEps};
  EXPECT_TRUE(refused([&] { eg::skinny_gemm(d, d, d, 1, 64, 512, 0, nullptr, {}, &no_partials); }, "partials set"));
  eg::SkinnyEpilogue add{eg::SkinnyEpilogue::Kind::kAddResidual};
  EXPECT_TRUE(refused([&] { eg::skinny_gemm(d, d, d, 1, 64, 512, 0, nullptr, add); }, "row partials' buffer set"));
  add.row_squares = p;
  EXPECT_TRUE(refused([&] { eg::skinny_gemm(d, d, d, 1, 48, 512, 0, nullptr, add); }, "n a multiple of 32"));
  EXPECT_TRUE(refused([&] { eg::skinny_gemm(d, d, d, 1, 64, 512, 0, nullptr, add, &norm); }, "residual add"));
  EXPECT_EQ(cudaGetLastError(), cudaSuccess);  // nothing was launched
  cudaFree(d);
  cudaFree(p);
}

}  // namespace
