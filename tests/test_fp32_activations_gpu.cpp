// NVRAR_LLM_ACTIVATIONS=fp32's GPU pieces on one GPU (skipped without one): the GEMMs' fp32 outputs (skinny kStoreF32
// and kAddF32, cuBLASLt's fp32 C/D, linear_accumulate into fp32) against float64 with fp32 rounding only; the
// fp32-input RoPE + KV append and SwiGLU against a CPU reference of their fp32 math (cache rows bit for bit) and not
// equal to transformers' roundings; the skinny epilogues with fp32 math bit for bit against "fp32 GEMM output, then
// the fp32-input kernel"; Gemm's choices kept per output type.
#include <gtest/gtest.h>

#include <cuda_runtime_api.h>

#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "config/gemm_pin.h"
#include "engine/gpu/activations_f32.h"
#include "engine/gpu/gemm.h"
#include "engine/gpu/layers.h"
#include "engine/gpu/skinny_gemm.h"
#include "engine_gpu_test_support.h"
#include "nvrar/types.h"

namespace {

namespace eg = nvrar::engine::gpu;
using namespace nvrar::engine::test_support;
using Kind = eg::SkinnyEpilogue::Kind;
using nvrar::DataType;

// n floats with all 24 bits of mantissa, uniform in [-scale, scale).
std::vector<float> random_f32(std::size_t n, uint64_t seed, float scale = 1.0f) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> u(-scale, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = u(rng);
  return v;
}

// LinearReference's float64 sums; fp32 accumulation of k products may be off by about k x 2^-24 x the sum of |products|
// (bounded here by 1e-5 x it, as test_gemm_gpu allows), and there is no bf16 rounding. plus: y0's value, for an add.
double f32_tolerance(const LinearReference& ref, std::size_t i, double plus) {
  return ref.magnitude[i] * 1e-5 + (std::fabs(plus) + 1e-6) * 1e-6;
}

// y (fp32, after the GEMM) against y0 + reference, y0 zero for a store.
void expect_f32_near(const std::vector<float>& y, const std::vector<float>& y0, const LinearReference& ref,
                     const std::string& what) {
  int bad = 0;
  for (std::size_t i = 0; i < y.size(); ++i) {
    const double want = ref.value[i] + y0[i];
    if (!(std::fabs(y[i] - want) <= f32_tolerance(ref, i, want)) && ++bad <= 5)
      ADD_FAILURE() << what << ": element " << i << " is " << y[i] << ", float64 " << want;
  }
  EXPECT_EQ(bad, 0) << what;
}

TEST(Fp32ActivationsGpu, SkinnyGemmStoresAndAddsFp32) {
  REQUIRE_GPU();
  const int64_t n = 37;
  for (int variant = 0; variant < eg::kSkinnyGemmVariants; ++variant)
    for (int64_t m : {1, 3, 8}) {
      const int64_t k = variant < 2 ? 4104 : 4352;  // as SkinnyGemmMatchesCpu: odd strides, 17 stages
      const auto x = random_bf16(m * k, 70 + m), w = random_bf16(n * k, 71);
      const auto y0 = random_f32(m * n, 72 + variant, 8.0f);
      uint16_t *dx = upload(x), *dw = upload(w);
      float *stored = upload(std::vector<float>(m * n, NAN)), *added = upload(y0);
      eg::skinny_gemm(dx, dw, stored, m, n, k, variant, nullptr, {Kind::kStoreF32});
      eg::skinny_gemm(dx, dw, added, m, n, k, variant, nullptr, {Kind::kAddF32});
      const LinearReference ref(x, w, m, n, k);
      const std::string what = "variant " + std::to_string(variant) + " m " + std::to_string(m);
      expect_f32_near(download(stored, m * n), std::vector<float>(m * n, 0.0f), ref, what + " store");
      expect_f32_near(download(added, m * n), y0, ref, what + " add");
      for (void* p : {static_cast<void*>(dx), static_cast<void*>(dw), static_cast<void*>(stored),
                      static_cast<void*>(added)})
        cudaFree(p);
    }
}

// Gemm with fp32 outputs: linear through cuBLASLt at a prefill shape, and linear_accumulate at a prefill shape and at
// decode shapes pinned to cuBLASLt and to two skinny variants (each must add, exactly once).
TEST(Fp32ActivationsGpu, GemmWritesAndAccumulatesFp32) {
  REQUIRE_GPU();
  const int64_t n = 72, k = 512;
  for (const char* pin : {"", "cublaslt", "skinny0", "skinny2"})
    for (const int64_t m : {3, 300}) {
      const std::string what = std::string("pin '") + pin + "' m " + std::to_string(m);
      const auto x = random_bf16(m * k, 80 + m), w = random_bf16(n * k, 81);
      const auto y0 = random_f32(m * n, 82, 8.0f);
      uint16_t *dx = upload(x), *dw = upload(w);
      float *y = upload(std::vector<float>(m * n, NAN)), *sum = upload(y0), *scratch = upload(std::vector<float>(m * n));
      eg::Gemm gemm(nvrar::config::parse_gemm_pin(pin));
      // The accumulate first: its shape is chosen then, the timed runs writing only the scratch buffer.
      EXPECT_TRUE(gemm.linear_accumulate(dx, dw, sum, m, n, k, nullptr, scratch, DataType::kFloat32)) << what;
      gemm.linear(dx, dw, y, m, n, k, nullptr, DataType::kFloat32);
      const LinearReference ref(x, w, m, n, k);
      expect_f32_near(download(y, m * n), std::vector<float>(m * n, 0.0f), ref, what + " linear");
      expect_f32_near(download(sum, m * n), y0, ref, what + " accumulate");
      EXPECT_NE(gemm.choices().find("fp32 out"), std::string::npos) << gemm.choices();
      const std::string pinned = m > 8 || std::string(pin) == "cublaslt" ? "cublaslt" : pin;  // skinny: m <= 8
      if (*pin != '\0') EXPECT_EQ(gemm.plan_text(), std::to_string(m) + "x72x512=" + pinned) << what;
      for (void* p : {static_cast<void*>(dx), static_cast<void*>(dw), static_cast<void*>(y), static_cast<void*>(sum),
                      static_cast<void*>(scratch)})
        cudaFree(p);
    }
  eg::Gemm gemm;
  uint16_t* dw = upload(random_bf16(64, 83));
  EXPECT_THROW(gemm.linear(dw, dw, dw, 1, 8, 8, nullptr, DataType::kFloat16), nvrar::Error);
  cudaFree(dw);
}

int64_t count_differences(const std::vector<uint16_t>& a, const std::vector<uint16_t>& b) {
  int64_t d = 0;
  for (std::size_t i = 0; i < a.size(); ++i) d += a[i] != b[i];
  return d;
}

void expect_same_bits(const std::vector<uint16_t>& got, const std::vector<uint16_t>& want, const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  int64_t bad = 0;
  for (std::size_t i = 0; i < got.size(); ++i)
    if (got[i] != want[i] && ++bad <= 3)
      ADD_FAILURE() << what << ": element " << i << " is 0x" << std::hex << got[i] << ", want 0x" << want[i]
                    << std::dec;
  EXPECT_EQ(bad, 0) << what;
}

// A RoPE + KV append problem: 4 q heads on 2 KV heads, 8 rows (the skinny GEMM's most) at distinct, scattered
// positions of scattered sequences.
struct RopeCase {
  int q_heads = 4, kv_heads = 2, head_dim;
  int64_t n = 8, max_seq = 512, max_batch = 4;
  int64_t cols() const { return int64_t{q_heads + 2 * kv_heads} * head_dim; }
  int64_t cache_elems() const { return max_batch * kv_heads * max_seq * head_dim; }
  std::vector<int32_t> positions, seq;
  std::vector<float> inv_freq;
  explicit RopeCase(int d) : head_dim(d), positions(n), seq(n), inv_freq(d / 2) {
    for (int64_t r = 0; r < n; ++r) {
      positions[r] = static_cast<int32_t>((r * 997 + 11) % max_seq);
      seq[r] = static_cast<int32_t>((r * 3 + 1) % max_batch);
    }
    for (int i = 0; i < d / 2; ++i) inv_freq[i] = static_cast<float>(std::pow(500000.0, -2.0 * i / d));
  }
};

// The fp32-input kernels against a CPU reference of their fp32 math, rounded once: within a bf16 rounding (the GPU's
// cosf, sinf and __expf may differ from the CPU's by an fp32 ulp, which can move the one rounding), the v heads and
// the cache rows bit for bit (the cache holds exactly the k and v heads written to qkv, every other row unchanged); and
// not equal to transformers' roundings (layers.h's kernels on the inputs rounded to bf16), which would mean a rounding
// too many.
TEST(Fp32ActivationsGpu, ElementwiseKernelsOnFp32Inputs) {
  REQUIRE_GPU();
  for (int head_dim : {64, 72}) {  // 72: not a multiple of 16
    const RopeCase c(head_dim);
    const int half = head_dim / 2;
    const std::string what = "head_dim " + std::to_string(head_dim);
    int32_t *dpos = upload(c.positions), *dseq = upload(c.seq);
    float* dinv = upload(c.inv_freq);
    const auto cache0 = random_bf16(c.cache_elems(), 90);
    const auto x = random_f32(c.n * c.cols(), 92 + head_dim);
    std::vector<uint16_t> x_rounded(x.size());
    for (std::size_t i = 0; i < x.size(); ++i) x_rounded[i] = bf(x[i]);
    float* dx = upload(x);
    uint16_t *k32 = upload(cache0), *v32 = upload(cache0), *k16 = upload(cache0), *v16 = upload(cache0);
    uint16_t *q32 = upload(std::vector<uint16_t>(c.n * c.cols(), 0x7fc1)), *q16 = upload(x_rounded);
    eg::rope_qk_append_f32(dx, c.n, c.cols(), c.q_heads, c.kv_heads, head_dim, dpos, dinv, dseq, k32, v32, c.max_seq,
                           q32, nullptr);
    eg::rope_qk_append(q16, c.n, c.cols(), c.q_heads, c.kv_heads, head_dim, dpos, dinv, dseq, k16, v16, c.max_seq,
                       nullptr);
    const auto got = download(q32, c.n * c.cols());
    EXPECT_GT(count_differences(got, download(q16, c.n * c.cols())), 0) << what << ": transformers' roundings?";
    std::vector<uint16_t> want_k = cache0, want_v = cache0;
    int bad = 0, rotated = 0, rotated_exact = 0;
    for (int64_t t = 0; t < c.n; ++t)
      for (int h = 0; h < c.q_heads + 2 * c.kv_heads; ++h) {
        const int64_t at = t * c.cols() + int64_t{h} * head_dim;
        for (int i = 0; i < half; ++i) {
          const float x1 = x[at + i], x2 = x[at + i + half];
          float y1 = x1, y2 = x2;  // v heads: rounded once, bit for bit
          bool exact = true;
          if (h < c.q_heads + c.kv_heads) {
            const float a = static_cast<float>(c.positions[t]) * c.inv_freq[i];
            const float cs = std::cos(a), sn = std::sin(a);
            const float p1 = x1 * cs, p2 = x2 * sn, p3 = x2 * cs, p4 = x1 * sn;
            y1 = p1 - p2;
            y2 = p3 + p4;
            exact = false;
          }
          for (const auto& [index, want] : {std::pair{at + i, y1}, std::pair{at + i + half, y2}}) {
            const float g = fl(got[index]), w = fl(bf(want));
            // A bf16 rounding of the result, and an fp32 ulp of cos or sin in each term (where they cancel).
            const float slack = std::fabs(w) / 128 + (std::fabs(x1) + std::fabs(x2)) * 2.4e-7f;
            const bool ok = exact ? got[index] == bf(want) : std::fabs(g - w) <= slack;
            if (!exact) {
              ++rotated;
              rotated_exact += got[index] == bf(want);
            }
            if (!ok && ++bad <= 5)
              ADD_FAILURE() << what << " row " << t << " head " << h << " element " << index - at << ": " << g
                            << ", CPU " << w;
          }
        }
        if (h < c.q_heads) continue;
        const int kv = (h - c.q_heads) % c.kv_heads;
        auto& cache = h < c.q_heads + c.kv_heads ? want_k : want_v;
        const int64_t row = ((int64_t{c.seq[t]} * c.kv_heads + kv) * c.max_seq + c.positions[t]) * head_dim;
        for (int e = 0; e < head_dim; ++e) cache[row + e] = got[at + e];
      }
    EXPECT_EQ(bad, 0) << what;
    // One rounding at the end: the CPU's fp32 math gives the same bits but where cos or sin differ by an fp32 ulp and
    // that moves the rounding (rare); a rounding too many (of cos, sin or a product) moves a large share.
    EXPECT_GE(rotated_exact, rotated * 99 / 100) << what << ": " << rotated_exact << " of " << rotated << " exact";
    expect_same_bits(download(k32, c.cache_elems()), want_k, what + " cache_k");
    expect_same_bits(download(v32, c.cache_elems()), want_v, what + " cache_v");
    for (void* p : {static_cast<void*>(dpos), static_cast<void*>(dseq), static_cast<void*>(dinv), static_cast<void*>(dx),
                    static_cast<void*>(k32), static_cast<void*>(v32), static_cast<void*>(k16), static_cast<void*>(v16),
                    static_cast<void*>(q32), static_cast<void*>(q16)})
      cudaFree(p);
  }
  for (int64_t inter : {40, 45}) {  // the 8-wide path and the one-element path
    const int64_t n = 3;
    const auto x = random_f32(n * 2 * inter, 96 + inter, 4.0f);
    std::vector<uint16_t> x_rounded(x.size());
    for (std::size_t i = 0; i < x.size(); ++i) x_rounded[i] = bf(x[i]);
    float* dx = upload(x);
    uint16_t *d16 = upload(x_rounded), *out32 = upload(std::vector<uint16_t>(n * inter, 0x7fc1)),
             *out16 = upload(std::vector<uint16_t>(n * inter, 0x7fc2));
    eg::swiglu_f32(dx, n, inter, out32, nullptr);
    eg::swiglu(d16, n, inter, out16, nullptr);
    const auto got = download(out32, n * inter);
    EXPECT_GT(count_differences(got, download(out16, n * inter)), 0) << "swiglu: transformers' roundings?";
    int64_t exact = 0;
    for (int64_t t = 0; t < n; ++t)
      for (int64_t i = 0; i < inter; ++i) {
        const float g = x[t * 2 * inter + i], u = x[t * 2 * inter + inter + i];
        const float silu = g / (1.0f + std::exp(-g)), want = fl(bf(silu * u));
        EXPECT_NEAR(fl(got[t * inter + i]), want, std::fabs(want) / 128 + 1e-30f) << "row " << t << " index " << i;
        exact += got[t * inter + i] == bf(silu * u);
      }
    // __expf against the CPU's exp: a few fp32 ulps, which rarely move the one rounding; rounding silu first would.
    EXPECT_GE(exact, n * inter * 95 / 100) << exact << " of " << n * inter << " exact";
    for (void* p : {static_cast<void*>(dx), static_cast<void*>(d16), static_cast<void*>(out32),
                    static_cast<void*>(out16)})
      cudaFree(p);
  }
  EXPECT_THROW(eg::rope_qk_append_f32(nullptr, 1, 24, 1, 1, 7, nullptr, nullptr, nullptr, nullptr, nullptr, 8, nullptr,
                                      nullptr),
               nvrar::Error);  // odd head_dim
  EXPECT_THROW(eg::rope_qk_append_f32(nullptr, 1, 24, 1, 1, 8, nullptr, nullptr, nullptr, nullptr, nullptr, 8, nullptr,
                                      nullptr),
               nvrar::Error);  // pointers not set
}

// The skinny GEMM's epilogues with fp32 math (fp32 set) against kStoreF32 followed by the fp32-input
// kernel: the same bits in the output and both caches, every variant, m 1, 5 and 8; and not the bf16 epilogue's bits.
TEST(Fp32ActivationsGpu, EpiloguesWithFp32ProductsMatchTheTwoKernels) {
  REQUIRE_GPU();
  const int64_t k = 512;
  const RopeCase c(64);
  int32_t *dpos = upload(c.positions), *dseq = upload(c.seq);
  float* dinv = upload(c.inv_freq);
  const auto cache0 = random_bf16(c.cache_elems(), 100);
  const int64_t n_rope = c.cols(), inter = 44, n_glu = 2 * inter;
  uint16_t *w_rope = upload(random_bf16(n_rope * k, 101)), *w_glu = upload(random_bf16(n_glu * k, 102));
  float* y32 = upload(std::vector<float>(8 * n_rope));
  for (int variant = 0; variant < eg::kSkinnyGemmVariants; ++variant)
    for (int64_t m : {1, 5, 8}) {
      const std::string what = "variant " + std::to_string(variant) + " m " + std::to_string(m);
      uint16_t* dx = upload(random_bf16(m * k, 103 + m));
      uint16_t *k_fused = upload(cache0), *v_fused = upload(cache0), *k_two = upload(cache0), *v_two = upload(cache0);
      uint16_t *y_fused = upload(std::vector<uint16_t>(m * n_rope, 0x7fc1)),
               *y_two = upload(std::vector<uint16_t>(m * n_rope, 0x7fc2));
      eg::SkinnyEpilogue rope{Kind::kRopeAppend, c.q_heads, c.kv_heads, c.head_dim, dpos, dinv, dseq, k_fused, v_fused,
                              c.max_seq};
      rope.fp32 = true;
      eg::skinny_gemm(dx, w_rope, y_fused, m, n_rope, k, variant, nullptr, rope);
      eg::skinny_gemm(dx, w_rope, y32, m, n_rope, k, variant, nullptr, {Kind::kStoreF32});
      eg::rope_qk_append_f32(y32, m, n_rope, c.q_heads, c.kv_heads, c.head_dim, dpos, dinv, dseq, k_two, v_two,
                             c.max_seq, y_two, nullptr);
      const auto rope_fp32 = download(y_fused, m * n_rope);
      expect_same_bits(rope_fp32, download(y_two, m * n_rope), what + " rope");
      expect_same_bits(download(k_fused, c.cache_elems()), download(k_two, c.cache_elems()), what + " cache_k");
      expect_same_bits(download(v_fused, c.cache_elems()), download(v_two, c.cache_elems()), what + " cache_v");
      uint16_t *g_fused = upload(std::vector<uint16_t>(m * inter, 0x7fc1)),
               *g_two = upload(std::vector<uint16_t>(m * inter, 0x7fc2)),
               *g_bf16 = upload(std::vector<uint16_t>(m * inter, 0x7fc3));
      eg::SkinnyEpilogue silu{Kind::kSwiGlu};
      silu.fp32 = true;
      eg::skinny_gemm(dx, w_glu, g_fused, m, n_glu, k, variant, nullptr, silu);
      eg::skinny_gemm(dx, w_glu, y32, m, n_glu, k, variant, nullptr, {Kind::kStoreF32});
      eg::swiglu_f32(y32, m, inter, g_two, nullptr);
      eg::skinny_gemm(dx, w_glu, g_bf16, m, n_glu, k, variant, nullptr, {Kind::kSwiGlu});
      const auto fused = download(g_fused, m * inter);
      expect_same_bits(fused, download(g_two, m * inter), what + " swiglu");
      EXPECT_GT(count_differences(fused, download(g_bf16, m * inter)), 0) << what << ": fp32 ignored?";
      rope.fp32 = false;  // transformers' roundings: other bits somewhere
      eg::skinny_gemm(dx, w_rope, y_two, m, n_rope, k, variant, nullptr, rope);
      EXPECT_GT(count_differences(rope_fp32, download(y_two, m * n_rope)), 0) << what << ": RoPE's fp32 ignored?";
      for (uint16_t* p : {dx, k_fused, v_fused, k_two, v_two, y_fused, y_two, g_fused, g_two, g_bf16}) cudaFree(p);
    }
  for (void* p : {static_cast<void*>(dpos), static_cast<void*>(dseq), static_cast<void*>(dinv),
                  static_cast<void*>(w_rope), static_cast<void*>(w_glu), static_cast<void*>(y32)})
    cudaFree(p);
}

// Gemm keeps one choice per output type: an fp32-output choice serves only the epilogues that take fp32 products.
TEST(Fp32ActivationsGpu, LinearSkinnyLooksUpTheChoiceOfItsOutputType) {
  REQUIRE_GPU();
  const int64_t m = 1, inter = 32, n = 2 * inter, k = 256;
  uint16_t *dx = upload(random_bf16(m * k, 110)), *dw = upload(random_bf16(n * k, 111));
  float* y32 = upload(std::vector<float>(m * n));
  uint16_t* act = upload(std::vector<uint16_t>(m * inter));
  eg::Gemm gemm(nvrar::config::parse_gemm_pin("skinny1"));
  const void* const weights[] = {dw};
  gemm.tune(dx, weights, y32, m, n, k, nullptr, DataType::kFloat32);
  eg::SkinnyEpilogue silu{Kind::kSwiGlu};
  EXPECT_FALSE(gemm.linear_skinny(dx, dw, act, m, n, k, nullptr, silu));  // no bf16 choice yet
  silu.fp32 = true;
  EXPECT_TRUE(gemm.linear_skinny(dx, dw, act, m, n, k, nullptr, silu));
  EXPECT_EQ(gemm.plan_text(), "1x64x256=skinny1");
  eg::SkinnyEpilogue wrong{Kind::kStore};
  wrong.fp32 = true;  // fp32 is for the paired epilogues; a plain fp32 output is kStoreF32
  EXPECT_THROW(eg::skinny_gemm(dx, dw, y32, m, n, k, 0, nullptr, wrong), nvrar::Error);
  for (void* p : {static_cast<void*>(dx), static_cast<void*>(dw), static_cast<void*>(y32), static_cast<void*>(act)})
    cudaFree(p);
}

}  // namespace
