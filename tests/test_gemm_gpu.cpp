// The engine's GEMMs on one GPU (skipped without one): cuBLASLt linear and the skinny decode GEMM against float64,
// the skinny GEMM's input reads under programmatic dependent launch in a replayed graph, and its SwiGLU and RoPE + KV
// append epilogues bit for bit against the GEMM followed by layers.h's kernels, the tensor-core decode attention
// launched right after that epilogue under programmatic dependent launch, and the tuner's choices (cuBLASLt timed
// with the epilogue kernel it needs, plans pinned and printed).
#include <gtest/gtest.h>

#include <cuda_runtime_api.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>

#include "config/gemm_pin.h"
#include "engine_gpu_test_support.h"
#include "engine/gpu/attention.h"
#include "engine/gpu/gemm.h"
#include "engine/gpu/layers.h"
#include "engine/gpu/skinny_gemm.h"
#include "nvrar/types.h"

namespace {

namespace eg = nvrar::engine::gpu;
using namespace nvrar::engine::test_support;

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

// linear_accumulate: y += x . w^T in cuBLASLt's GEMM, against float64 (y's bf16 value plus the product), at
// prefill-like and batch-32 shapes; the first call of a shape is timed into the scratch buffer, so y is added to
// exactly once (a missing or doubled y is off by |y|, far outside the tolerance). The tolerance allows a bf16 rounding
// of the product as well as of the sum: measured on an H100, an element of the 300 x 72 x 128 case was 1.6 units in
// the last place off, more than one rounding of the sum allows (cuBLASLt's split-K algorithms may reduce partial
// sums in the output type).
TEST(EngineGpu, LinearAccumulateAddsIntoY) {
  REQUIRE_GPU();
  struct Case { int64_t m, n, k; };
  for (const Case c : {Case{300, 72, 128}, Case{32, 264, 96}, Case{1027, 64, 256}}) {
    SCOPED_TRACE(testing::Message() << c.m << " x " << c.n << " x " << c.k);
    const auto x = random_bf16(c.m * c.k, 11 + c.m), w = random_bf16(c.n * c.k, 12 + c.n);
    const auto y0 = random_bf16(c.m * c.n, 13 + c.k);
    uint16_t *dx = upload(x), *dw = upload(w), *dy = upload(y0), *scratch = upload(std::vector<uint16_t>(c.m * c.n));
    eg::Gemm gemm;
    ASSERT_TRUE(gemm.linear_accumulate(dx, dw, dy, c.m, c.n, c.k, nullptr, scratch));
    const auto y = download(dy, c.m * c.n);
    const LinearReference ref(x, w, c.m, c.n, c.k);
    for (int64_t i = 0; i < c.m * c.n; ++i) {
      const double want = ref.value[i] + fl(y0[i]);
      ASSERT_NEAR(fl(y[i]), want, (std::fabs(ref.value[i]) + std::fabs(want)) / 128 + ref.magnitude[i] * 1e-5 + 1e-6)
          << "element " << i;
    }
    for (uint16_t* p : {dx, dw, dy, scratch}) cudaFree(p);
  }
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

// Bit-for-bit equality of two downloads; reports the first few differences (a whole KV cache is millions of values).
void expect_same_bits(const std::vector<uint16_t>& got, const std::vector<uint16_t>& want, const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  int64_t bad = 0;
  for (std::size_t i = 0; i < got.size(); ++i)
    if (got[i] != want[i] && ++bad <= 3)
      ADD_FAILURE() << what << ": element " << i << " is 0x" << std::hex << got[i] << ", the two kernels gave 0x"
                    << want[i] << std::dec;
  EXPECT_EQ(bad, 0) << what;
}

// The SwiGLU epilogue against skinny_gemm + swiglu (the same bits): every variant, m 1, 3 and 8; inter 40 (swiglu's
// 8-wide path), 44 (88 columns: the last 16-column block of variants 2 and 3 and the last 32-column block of variant 1
// partly past n) and 45 (90 columns: variant 1's last warp has a pair past n).
TEST(EngineGpu, SkinnyGemmSwiGluEpilogueMatchesTheTwoKernels) {
  REQUIRE_GPU();
  const int64_t k = 512;
  for (int64_t inter : {40, 44, 45}) {
    const int64_t n = 2 * inter;
    const auto w = random_bf16(n * k, 31 + inter);
    uint16_t *dw = upload(w), *dgu = upload(std::vector<uint16_t>(8 * n));
    for (int variant = 0; variant < eg::kSkinnyGemmVariants; ++variant)
      for (int64_t m : {1, 3, 8}) {
        const auto x = random_bf16(m * k, 32 + m);
        uint16_t* dx = upload(x);
        uint16_t* fused = upload(std::vector<uint16_t>(m * inter, 0x7fc1));     // distinct NaN patterns: a value
        uint16_t* two_kernels = upload(std::vector<uint16_t>(m * inter, 0x7fc2));  // left unwritten never matches
        eg::skinny_gemm(dx, dw, dgu, m, n, k, variant, nullptr);
        eg::swiglu(dgu, m, inter, two_kernels, nullptr);
        eg::skinny_gemm(dx, dw, fused, m, n, k, variant, nullptr, {eg::SkinnyEpilogue::Kind::kSwiGlu});
        expect_same_bits(download(fused, m * inter), download(two_kernels, m * inter),
                         "inter " + std::to_string(inter) + " variant " + std::to_string(variant) + " m " +
                             std::to_string(m));
        cudaFree(dx);
        cudaFree(fused);
        cudaFree(two_kernels);
      }
    cudaFree(dw);
    cudaFree(dgu);
  }
  uint16_t* dw = upload(random_bf16(87 * k, 39));
  EXPECT_THROW(eg::skinny_gemm(dw, dw, dw, 1, 87, k, 0, nullptr, {eg::SkinnyEpilogue::Kind::kSwiGlu}), nvrar::Error);
  cudaFree(dw);
}

// The RoPE + KV append epilogue against skinny_gemm + rope_qk_append (the same bits in the q/k/v output and in both
// caches, whose other rows must stay as they were): every variant, head_dim 64 and 128, 4 q heads on 2 KV heads,
// m 1, 5 and 8 rows at scattered positions of scattered sequences.
TEST(EngineGpu, SkinnyGemmRopeAppendEpilogueMatchesTheTwoKernels) {
  REQUIRE_GPU();
  const int q_heads = 4, kv_heads = 2, max_batch = 8;
  const int64_t k = 256, max_seq = 1024;
  std::vector<int32_t> positions(8), seq(8);
  for (int r = 0; r < 8; ++r) {
    positions[r] = static_cast<int32_t>((r * 1237 + 5) % max_seq);
    seq[r] = (r * 5 + 3) % max_batch;
  }
  int32_t *dpos = upload(positions), *dseq = upload(seq);
  for (int head_dim : {64, 128}) {
    const int64_t n = static_cast<int64_t>(q_heads + 2 * kv_heads) * head_dim;
    const int64_t cache_elems = max_batch * kv_heads * max_seq * head_dim;
    std::vector<float> inv_freq(head_dim / 2);
    for (int i = 0; i < head_dim / 2; ++i) inv_freq[i] = static_cast<float>(std::pow(500000.0, -2.0 * i / head_dim));
    float* dinv = upload(inv_freq);
    const auto w = random_bf16(n * k, 41 + head_dim);
    const auto cache0 = random_bf16(cache_elems, 43);
    uint16_t* dw = upload(w);
    for (int variant = 0; variant < eg::kSkinnyGemmVariants; ++variant)
      for (int64_t m : {1, 5, 8}) {
        const std::string what = "head_dim " + std::to_string(head_dim) + " variant " + std::to_string(variant) +
                                 " m " + std::to_string(m);
        const auto x = random_bf16(m * k, 44 + m);
        uint16_t *dx = upload(x), *y_fused = upload(std::vector<uint16_t>(m * n, 0x7fc1));
        uint16_t* y_two = upload(std::vector<uint16_t>(m * n, 0x7fc2));
        uint16_t *k_fused = upload(cache0), *v_fused = upload(cache0), *k_two = upload(cache0),
                 *v_two = upload(cache0);
        eg::skinny_gemm(dx, dw, y_two, m, n, k, variant, nullptr);
        eg::rope_qk_append(y_two, m, n, q_heads, kv_heads, head_dim, dpos, dinv, dseq, k_two, v_two, max_seq, nullptr);
        const eg::SkinnyEpilogue rope{eg::SkinnyEpilogue::Kind::kRopeAppend, q_heads, kv_heads, head_dim, dpos, dinv,
                                      dseq, k_fused, v_fused, max_seq};
        eg::skinny_gemm(dx, dw, y_fused, m, n, k, variant, nullptr, rope);
        expect_same_bits(download(y_fused, m * n), download(y_two, m * n), what);
        expect_same_bits(download(k_fused, cache_elems), download(k_two, cache_elems), what + ": cache_k");
        expect_same_bits(download(v_fused, cache_elems), download(v_two, cache_elems), what + ": cache_v");
        for (uint16_t* p : {dx, y_fused, y_two, k_fused, v_fused, k_two, v_two}) cudaFree(p);
      }
    eg::SkinnyEpilogue wrong{eg::SkinnyEpilogue::Kind::kRopeAppend, q_heads, kv_heads + 1, head_dim, dpos, dinv, dseq,
                             dw, dw, max_seq};
    EXPECT_THROW(eg::skinny_gemm(dw, dw, dw, 1, n, k, 0, nullptr, wrong), nvrar::Error);
    cudaFree(dw);
    cudaFree(dinv);
  }
  cudaFree(dpos);
  cudaFree(dseq);
}

// The tensor-core decode attention launched right after the qkv GEMM whose RoPE + append epilogue writes each row's
// newest key and q (both with programmatic dependent launch, as in a decode step) must see those keys, not what the
// cache held before (NaN here): bit for bit against the same attention run again after a synchronisation, every
// variant, five times each. A guard for the kernels' griddepcontrol placement (today the attention waits before any
// load; a version that read older keys before its wait was measured and dropped, docs/perf-notes.md). New keys in a
// split's first tile, its second, a later one and at tile and split edges. A race would show as NaN or as a
// difference (it may also go unseen: the window is the GEMM's epilogue).
TEST(EngineGpu, DecodeAttentionAfterTheQkvGemmSeesTheNewKeys) {
  REQUIRE_GPU();
  const int q_heads = 32, kv_heads = 8, D = 128;
  const int64_t m = 8, k = 4096, max_seq = 4096, n = (q_heads + 2 * kv_heads) * D;
  const std::vector<int32_t> lengths = {1, 64, 65, 128, 129, 300, 2049, 4000};
  std::vector<int32_t> positions(m), seq(m);
  for (int64_t r = 0; r < m; ++r) {
    positions[r] = lengths[r] - 1;
    seq[r] = static_cast<int32_t>(r);
  }
  std::vector<float> inv_freq(D / 2);
  for (int i = 0; i < D / 2; ++i) inv_freq[i] = static_cast<float>(std::pow(500000.0, -2.0 * i / D));
  const int64_t cache_elems = m * kv_heads * max_seq * D;
  auto cache0 = random_bf16(cache_elems, 61);
  for (int64_t r = 0; r < m; ++r)  // the rows the epilogue writes: NaN until then
    for (int h = 0; h < kv_heads; ++h)
      std::fill_n(cache0.begin() + ((r * kv_heads + h) * max_seq + positions[r]) * D, D, uint16_t{0x7fc0});
  uint16_t *dx = upload(random_bf16(m * k, 62)), *dw = upload(random_bf16(n * k, 63, 0.05f));
  uint16_t *dk = upload(cache0), *dv = upload(cache0), *dy = upload(std::vector<uint16_t>(m * n));
  uint16_t* out_chained = upload(std::vector<uint16_t>(m * q_heads * D));
  uint16_t* out_alone = upload(std::vector<uint16_t>(m * q_heads * D));
  int32_t *dpos = upload(positions), *dseq = upload(seq), *dlen = upload(lengths);
  float* dinv = upload(inv_freq);
  const eg::AttentionShape s{m, n, q_heads, kv_heads, D, max_seq, 4000};
  const int64_t floats = eg::attention_scratch_floats(s);
  float* scratch = nullptr;
  ASSERT_EQ(cudaMalloc(reinterpret_cast<void**>(&scratch), floats * sizeof(float)), cudaSuccess);
  ASSERT_EQ(cudaMemset(scratch, 0, floats * sizeof(float)), cudaSuccess);
  cudaStream_t stream = nullptr;
  ASSERT_EQ(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), cudaSuccess);
  const eg::SkinnyEpilogue rope{eg::SkinnyEpilogue::Kind::kRopeAppend, q_heads, kv_heads, D, dpos, dinv, dseq, dk, dv,
                                max_seq};
  for (int variant = 0; variant < eg::kSkinnyGemmVariants; ++variant)
    for (int repeat = 0; repeat < 5; ++repeat) {
      const std::string what = "variant " + std::to_string(variant) + " repeat " + std::to_string(repeat);
      ASSERT_EQ(cudaMemcpy(dk, cache0.data(), cache_elems * 2, cudaMemcpyHostToDevice), cudaSuccess);
      ASSERT_EQ(cudaMemcpy(dv, cache0.data(), cache_elems * 2, cudaMemcpyHostToDevice), cudaSuccess);
      eg::skinny_gemm(dx, dw, dy, m, n, k, variant, stream, rope);
      eg::attention(dy, dseq, dlen, dk, dv, s, eg::DecodeAttention::kTensorCore, scratch, out_chained, stream);
      ASSERT_EQ(cudaStreamSynchronize(stream), cudaSuccess) << what;
      eg::attention(dy, dseq, dlen, dk, dv, s, eg::DecodeAttention::kTensorCore, scratch, out_alone, stream);
      ASSERT_EQ(cudaStreamSynchronize(stream), cudaSuccess) << what;
      const auto alone = download(out_alone, m * q_heads * D);
      ASSERT_EQ(std::count_if(alone.begin(), alone.end(), [](uint16_t v) { return (v & 0x7f80) == 0x7f80; }), 0)
          << what << ": the attention after a synchronisation is not finite (the epilogue did not write the keys?)";
      expect_same_bits(download(out_chained, m * q_heads * D), alone, what);
    }
  cudaStreamDestroy(stream);
  for (void* p : std::initializer_list<void*>{dx, dw, dk, dv, dy, out_chained, out_alone, dpos, dseq, dlen, dinv,
                                              scratch})
    cudaFree(p);
}

// skinny_gemm refuses, before any launch and naming the shape, what skinny_gemm_supports refuses (CPU: the pointers
// are never dereferenced).
TEST(EngineGpu, SkinnyGemmRefusesWhatItDoesNotTake) {
  void* p = reinterpret_cast<void*>(std::uintptr_t{1} << 20);  // 16-byte aligned
  void* odd = reinterpret_cast<void*>((std::uintptr_t{1} << 20) + 2);
  const auto refusal = [](const auto& call) {
    try {
      call();
    } catch (const nvrar::Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(refusal([&] { eg::skinny_gemm(p, p, p, 9, 64, 256, 0, nullptr); }).find("m 9, n 64, k 256, variant 0"),
            std::string::npos);
  EXPECT_NE(refusal([&] { eg::skinny_gemm(p, p, p, 1, 64, 264, 2, nullptr); }).find("k 264, variant 2"),
            std::string::npos);
  EXPECT_NE(refusal([&] { eg::skinny_gemm(p, p, p, 1, 64, 12, 0, nullptr); }).find("a multiple of 8"),
            std::string::npos);
  EXPECT_NE(refusal([&] { eg::skinny_gemm(odd, p, p, 1, 64, 256, 0, nullptr); }).find("16-byte aligned"),
            std::string::npos);
  EXPECT_NE(refusal([&] { eg::skinny_gemm(p, p, p, 1, 64, 256, 4, nullptr); }).find("variant 4"), std::string::npos);
}

// Gemm::linear_skinny runs nothing for a shape it has not chosen a kernel for (the caller then runs linear()).
TEST(EngineGpu, LinearSkinnyNeedsAChosenSkinnyKernel) {
  REQUIRE_GPU();
  const int64_t m = 1, n = 64, k = 256;
  uint16_t *dx = upload(random_bf16(m * k, 51)), *dw = upload(random_bf16(n * k, 52));
  uint16_t* dy = upload(std::vector<uint16_t>(m * n, 0x7fc1));
  eg::Gemm gemm;
  EXPECT_FALSE(gemm.linear_skinny(dx, dw, dy, m, n, k, nullptr, {eg::SkinnyEpilogue::Kind::kSwiGlu}));
  EXPECT_EQ(download(dy, m * n), std::vector<uint16_t>(m * n, 0x7fc1));
  cudaFree(dx);
  cudaFree(dw);
  cudaFree(dy);
}

// tune() with an epilogue times every candidate doing it: cuBLASLt followed by the epilogue's kernel (here a 256 MB
// memset, far slower than any skinny kernel, counted: a warm-up pass and three timed passes over the two matrices
// per candidate), the skinny variants with their SwiGLU epilogue into the epilogue's output. So a skinny variant is
// chosen, the timings name the epilogue, and that output holds the last variant's SwiGLU of the last matrix, the bits
// of the same variant's plain GEMM followed by layers.h's SwiGLU kernel.
TEST(EngineGpu, TuneTimesEveryCandidateWithTheStepsEpilogue) {
  REQUIRE_GPU();
  const int64_t m = 8, n = 64, k = 512, inter = n / 2;
  uint16_t *dx = upload(random_bf16(m * k, 71)), *dw0 = upload(random_bf16(n * k, 72)),
           *dw1 = upload(random_bf16(n * k, 73));
  uint16_t *dy = upload(std::vector<uint16_t>(m * n)), *dact = upload(std::vector<uint16_t>(m * inter));
  uint16_t* dact_ref = upload(std::vector<uint16_t>(m * inter));
  void* slow = nullptr;
  const std::size_t slow_bytes = std::size_t{256} << 20;
  ASSERT_EQ(cudaMalloc(&slow, slow_bytes), cudaSuccess);
  const void* const weights[] = {dw0, dw1};
  int calls = 0;
  eg::TuneEpilogue epilogue{"SwiGLU", {eg::SkinnyEpilogue::Kind::kSwiGlu}, dact, [&] {
                              ++calls;
                              cudaMemsetAsync(slow, calls & 0xff, slow_bytes, nullptr);
                            }};
  eg::Gemm gemm;
  gemm.tune(dx, weights, dy, m, n, k, nullptr, nvrar::DataType::kBFloat16, &epilogue);
  EXPECT_GT(calls, 0);
  EXPECT_EQ(calls % (4 * 2), 0) << calls;  // whole passes over both matrices, per cuBLASLt candidate
  const std::string choices = gemm.choices();
  EXPECT_NE(choices.find("with SwiGLU: cublasLt"), std::string::npos) << choices;
  EXPECT_NE(gemm.plan_text().find("=skinny"), std::string::npos) << choices;
  const auto act = download(dact, m * inter);
  int last = -1;  // the last variant timed: the highest that takes the shape
  for (int v = 0; v < eg::kSkinnyGemmVariants; ++v)
    if (eg::skinny_gemm_supports(dx, dw1, dy, m, n, k, v)) last = v;
  ASSERT_GE(last, 0);
  eg::skinny_gemm(dx, dw1, dy, m, n, k, last, nullptr);
  eg::swiglu(dy, m, inter, dact_ref, nullptr);
  EXPECT_EQ(act, download(dact_ref, m * inter)) << "skinny" << last;
  const int before = calls;
  gemm.linear(dx, dw0, dy, m, n, k, nullptr);  // the chosen kernel, plain: the epilogue is the caller's, not linear()'s
  EXPECT_EQ(calls, before);
  const auto y = download(dy, m * n);
  const LinearReference ref(download(dx, m * k), download(dw0, n * k), m, n, k);
  for (int64_t i = 0; i < m * n; ++i) EXPECT_NEAR(fl(y[i]), ref.value[i], ref.tolerance(i)) << i;
  for (void* p : {static_cast<void*>(dx), static_cast<void*>(dw0), static_cast<void*>(dw1), static_cast<void*>(dy),
                  static_cast<void*>(dact), static_cast<void*>(dact_ref), slow})
    cudaFree(p);
}

// A plan printed by one Gemm (plan_text, NVRAR_LLM_GEMM's list form) makes another choose the same kernels; a listed
// skinny variant that does not take its shape is refused, naming the shape and the variable, while the single-name
// form falls back to cuBLASLt there.
TEST(EngineGpu, GemmPlanRoundTripsAndRefusesAListedShapeItCannotRun) {
  REQUIRE_GPU();
  const int64_t n = 64, k = 512, max_m = 9;
  uint16_t *dx = upload(random_bf16(max_m * k, 61)), *dw = upload(random_bf16(n * k, 62));
  uint16_t* dy = upload(std::vector<uint16_t>(max_m * n));
  eg::Gemm first;
  for (const int64_t m : {1, 3, 8, 9}) first.linear(dx, dw, dy, m, n, k, nullptr);
  const std::string plan = first.plan_text();
  EXPECT_EQ(std::count(plan.begin(), plan.end(), ','), 3) << plan;
  eg::Gemm second(nvrar::config::parse_gemm_pin(plan));
  for (const int64_t m : {1, 3, 8, 9}) second.linear(dx, dw, dy, m, n, k, nullptr);
  EXPECT_EQ(second.plan_text(), plan);  // the same kernel for every shape
  eg::Gemm refused(nvrar::config::parse_gemm_pin("9x64x512=skinny0"));
  try {
    refused.linear(dx, dw, dy, 9, n, k, nullptr);
    ADD_FAILURE() << "a 9-row GEMM pinned to skinny0 ran";
  } catch (const nvrar::Error& e) {
    EXPECT_NE(std::string(e.what()).find("NVRAR_LLM_GEMM pins 9x64x512 to skinny0"), std::string::npos) << e.what();
  }
  eg::Gemm every(nvrar::config::parse_gemm_pin("skinny0"));
  every.linear(dx, dw, dy, 9, n, k, nullptr);  // the single-name form: cuBLASLt for the shape skinny0 cannot take
  EXPECT_EQ(every.plan_text(), "9x64x512=cublaslt");
  for (uint16_t* p : {dx, dw, dy}) cudaFree(p);
}

}  // namespace
