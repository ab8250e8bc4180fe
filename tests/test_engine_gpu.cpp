// The engine's GPU kernels against CPU references on one GPU (skipped without one; the GEMMs are in
// test_gemm_gpu.cpp): RoPE with transformers' roundings, KV append, split-K, fused and tensor-core decode attention
// (decode and causal prefill lengths, long ragged contexts, GQA, several splits, repeats and graph replays of the split
// kernels, and their split policy on the CPU), SwiGLU, RMSNorm, argmax with ties.
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
#include "engine/gpu/layers.h"

namespace {

namespace eg = nvrar::engine::gpu;
using namespace nvrar::engine::test_support;

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

// The block-per-row RoPE kernel (16-byte accesses, cos and sin once per row) against the thread-per-pair kernel:
// the same bits in the rotated q and k, in both caches and in the v heads, at head_dim 64, 128 and 256, grouped-query
// ratios 1, 2, 3, 4, 7 and 16, rows of several sequences; rope_qk alone (no append) at positions up to 131071. Shapes
// where the block has fewer threads than pairs (head_dim 256, 4 heads) and more items than threads (144 heads).
TEST(EngineGpu, RopeRowKernelMatchesPerPairKernel) {
  REQUIRE_GPU();
  struct Case {
    int D, q_heads, kv_heads;
    int64_t n;
  };
  for (const Case c : {Case{128, 32, 8, 301}, Case{64, 8, 8, 77}, Case{128, 28, 4, 5}, Case{64, 12, 4, 1},
                       Case{256, 2, 1, 9}, Case{128, 128, 8, 3}}) {
    SCOPED_TRACE(::testing::Message() << "head_dim " << c.D << ", heads " << c.q_heads << "/" << c.kv_heads);
    const int64_t cols = (c.q_heads + 2 * c.kv_heads) * c.D, max_seq = 2048, seqs = 3;
    const auto qkv = random_bf16(c.n * cols, 70 + c.D, 4.0f);
    // Distinct (sequence, position) slots, as the engine's tokens have (two tokens on one slot would race).
    std::mt19937 rng(9);
    std::vector<int32_t> slots(seqs * max_seq), pos(c.n), seq(c.n), far(c.n);
    for (std::size_t i = 0; i < slots.size(); ++i) slots[i] = int32_t(i);
    std::shuffle(slots.begin(), slots.end(), rng);
    std::iter_swap(slots.begin(), std::find(slots.begin(), slots.end(), int32_t(seqs * max_seq - 1)));  // the last
    for (int64_t t = 0; t < c.n; ++t) {
      pos[t] = slots[t] % int32_t(max_seq);
      seq[t] = slots[t] / int32_t(max_seq);
      far[t] = t == 0 ? 131071 : int32_t(rng() % 131072);
    }
    std::vector<float> inv(c.D / 2);
    for (int i = 0; i < c.D / 2; ++i) inv[i] = std::pow(500000.0f, -2.0f * float(i) / float(c.D));
    const std::size_t cache = std::size_t(seqs * c.kv_heads * max_seq * c.D);
    const std::vector<uint16_t> zeros(cache, 0);
    uint16_t *rows = upload(qkv), *pairs = upload(qkv), *far_rows = upload(qkv), *far_pairs = upload(qkv);
    uint16_t *rk = upload(zeros), *rv = upload(zeros), *pk = upload(zeros), *pv = upload(zeros);
    int32_t *dp = upload(pos), *ds = upload(seq), *df = upload(far);
    float* di = upload(inv);
    ASSERT_TRUE(eg::rope_rows_fit(rows, cols, c.D, rk, rv));  // the row kernel runs, not the per-pair one twice
    ASSERT_TRUE(eg::rope_rows_fit(far_rows, cols, c.D, nullptr, nullptr));
    eg::rope_qk_append(rows, c.n, cols, c.q_heads, c.kv_heads, c.D, dp, di, ds, rk, rv, max_seq, nullptr);
    eg::rope_qk_append(pairs, c.n, cols, c.q_heads, c.kv_heads, c.D, dp, di, ds, pk, pv, max_seq, nullptr, true);
    eg::rope_qk(far_rows, c.n, cols, c.q_heads, c.kv_heads, c.D, df, di, nullptr);
    eg::rope_qk(far_pairs, c.n, cols, c.q_heads, c.kv_heads, c.D, df, di, nullptr, true);
    const auto want = download(pairs, c.n * cols);
    EXPECT_TRUE(download(rows, c.n * cols) == want);
    EXPECT_TRUE(download(rk, cache) == download(pk, cache));
    EXPECT_TRUE(download(rv, cache) == download(pv, cache));
    const auto far_want = download(far_pairs, c.n * cols);
    EXPECT_TRUE(download(far_rows, c.n * cols) == far_want);
    int64_t rotated = 0, far_rotated = 0;  // the comparisons mean something only if most q/k elements changed
    for (int64_t i = 0; i < c.n * cols; ++i) {
      rotated += want[i] != qkv[i];
      far_rotated += far_want[i] != qkv[i];
    }
    EXPECT_GT(rotated, c.n * c.q_heads * c.D / 2);
    EXPECT_GT(far_rotated, c.n * c.q_heads * c.D / 2);
    for (void* p : {static_cast<void*>(rows), static_cast<void*>(pairs), static_cast<void*>(far_rows),
                    static_cast<void*>(far_pairs), static_cast<void*>(rk), static_cast<void*>(rv),
                    static_cast<void*>(pk), static_cast<void*>(pv), static_cast<void*>(dp), static_cast<void*>(ds),
                    static_cast<void*>(df), static_cast<void*>(di)})
      cudaFree(p);
  }
}

// Attention rows against a float64 softmax, with every kernel on one scratch (zeroed once, as the engine does):
// split-K first (as a prefill leaves the scratch), then fused and tensor-core, same tolerance, plus for the
// tensor-core kernel the bound of its bf16 probabilities (each weight off by at most 2^-9 of itself, so the output by
// at most 2^-9 x the largest |v|). Row t reads sequence t % seqs, its
// len[t] keys; max_len is the largest length unless given (the engine passes max_seq). q_heads / kv_heads: the
// grouped-query ratio.
void check_attention_rows(int D, const std::vector<int32_t>& len, uint64_t seed, int q_heads, int kv_heads,
                          int64_t max_seq, int64_t max_len = 0, int seqs = 2) {
  const int64_t n = static_cast<int64_t>(len.size());
  const int64_t cols = (q_heads + 2 * kv_heads) * D;
  std::vector<int32_t> seq(n);
  for (int64_t t = 0; t < n; ++t) {
    seq[t] = static_cast<int32_t>(t % seqs);
    max_len = std::max<int64_t>(max_len, len[t]);
  }
  const auto qkv = random_bf16(n * cols, seed);
  const auto ck = random_bf16(seqs * kv_heads * max_seq * D, seed + 1);
  const auto cv = random_bf16(seqs * kv_heads * max_seq * D, seed + 2);
  std::vector<double> want(n * q_heads * D);
  for (int64_t t = 0; t < n; ++t)
    for (int h = 0; h < q_heads; ++h) {
      const int64_t base = (seq[t] * kv_heads + h / (q_heads / kv_heads)) * max_seq;
      std::vector<double> p(len[t]);
      double mx = -1e300, sum = 0;
      for (int64_t j = 0; j < len[t]; ++j) {
        double dot = 0;
        for (int d = 0; d < D; ++d) dot += double(fl(qkv[t * cols + h * D + d])) * fl(ck[(base + j) * D + d]);
        p[j] = dot / std::sqrt(double(D));
        mx = std::max(mx, p[j]);
      }
      for (auto& v : p) sum += (v = std::exp(v - mx));
      for (int64_t j = 0; j < len[t]; ++j)
        for (int d = 0; d < D; ++d) want[(t * q_heads + h) * D + d] += p[j] * fl(cv[(base + j) * D + d]) / sum;
    }
  uint16_t *dq = upload(qkv), *dk = upload(ck), *dv = upload(cv);
  uint16_t* dout = upload(std::vector<uint16_t>(n * q_heads * D));
  int32_t *ds = upload(seq), *dl = upload(len);
  const eg::AttentionShape s{n, cols, q_heads, kv_heads, D, max_seq, max_len};
  const int64_t floats = eg::attention_scratch_floats(s);
  float* scratch = nullptr;
  ASSERT_EQ(cudaMalloc(reinterpret_cast<void**>(&scratch), floats * sizeof(float)), cudaSuccess);
  ASSERT_EQ(cudaMemset(scratch, 0, floats * sizeof(float)), cudaSuccess);
  double max_v = 0;
  for (const uint16_t v : cv) max_v = std::max(max_v, std::fabs(double(fl(v))));
  using Kernel = eg::DecodeAttention;
  for (const auto kernel : {Kernel::kSplitK, Kernel::kFused, Kernel::kTensorCore}) {
    const bool mma = kernel == Kernel::kTensorCore;
    const char* name = mma ? "tensor-core" : kernel == Kernel::kFused ? "fused" : "split-K";
    const double p_rounding = mma && eg::mma_attention_supports(D) ? max_v / 512 : 0.0;
    ASSERT_EQ(cudaMemset(dout, 0xff, n * q_heads * D * sizeof(uint16_t)), cudaSuccess);  // NaN until written
    eg::attention(dq, ds, dl, dk, dv, s, kernel, scratch, dout, nullptr);
    const auto got = download(dout, n * q_heads * D);
    int bad = 0;
    for (int64_t i = 0; i < n * q_heads * D; ++i) {
      const float g = fl(got[i]);
      const double o = want[i];
      if (!(std::fabs(g - o) <= std::fabs(o) / 128 + 2e-3 + p_rounding) && bad++ < 10)
        ADD_FAILURE() << name << " D " << D << " heads " << q_heads << "/" << kv_heads << " n " << n << " query "
                      << i / (q_heads * D) << " (length " << len[i / (q_heads * D)] << ") head " << i / D % q_heads
                      << " dim " << i % D << ": " << g << " vs " << o;
    }
    EXPECT_EQ(bad, 0) << name;
  }
  // Every fused call leaves its counters at 0 (graph replays rely on it).
  const auto counters = download(reinterpret_cast<const uint32_t*>(scratch), eg::attention_counter_floats());
  EXPECT_EQ(std::count(counters.begin(), counters.end(), 0u), static_cast<long>(counters.size()));
  for (void* p : std::initializer_list<void*>{scratch, dq, dk, dv, dout, ds, dl}) cudaFree(p);
}

// n queries over two sequences of a 700-position cache, lengths cycling through decode-like and prefill-like
// values; few queries give many short splits, many queries one long split.
void check_attention(int D, int64_t n, uint64_t seed, int q_heads = 4, int kv_heads = 2) {
  const std::vector<int32_t> lengths = {1, 600, 37, 513, 33, 64, 2};
  std::vector<int32_t> len(n);
  for (int64_t t = 0; t < n; ++t) len[t] = lengths[t % lengths.size()];
  check_attention_rows(D, len, seed, q_heads, kv_heads, 700);
}

int device_sms() {
  int device = 0, sms = 0;
  EXPECT_EQ(cudaGetDevice(&device), cudaSuccess);
  EXPECT_EQ(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device), cudaSuccess);
  return sms;
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

// Long and ragged contexts in one batch: rows of one split next to rows of many, around the split boundaries of the
// fused kernel on this GPU, every head_dim and grouped-query ratio (1, 2, 4, 8 heads per block), batch 1 to 32.
TEST(EngineGpu, AttentionLongRaggedContexts) {
  REQUIRE_GPU();
  const int sms = device_sms();
  check_attention_rows(128, {1, 255, 256, 257, 4097, 8192, 32768}, 21, 8, 2, 32768);  // 4 heads per block
  check_attention_rows(128, {8192}, 22, 32, 8, 8257, 8257);  // Llama-3.1-8B heads, batch 1, max_len as bench
  check_attention_rows(64, {32768}, 23, 8, 1, 32768);   // 8 heads per block, one row: the most splits
  // max_len 256: the tensor-core kernel's one split of up to 4 tiles (full, partial, a single key).
  check_attention_rows(128, {193, 1, 64, 65, 130, 256}, 24, 32, 8, 300, 256);
  struct Case {
    int D, q_heads, kv_heads;
    int64_t n, max_seq;
  };
  for (const Case c : {Case{32, 2, 2, 3, 5000}, Case{64, 4, 2, 8, 9000}, Case{128, 8, 2, 5, 12000},
                       Case{256, 8, 1, 2, 6000}, Case{128, 12, 4, 1, 4200}, Case{64, 4, 1, 32, 2300}}) {
    // Lengths at the fused split size k of this shape: max_seq, k + 1 (two splits), 2 k + 3, 1, k - 1, k (one
    // split), 17; the rows of several splits first, so that the cases of 1-3 rows have them too.
    const eg::AttentionShape s{c.n, (c.q_heads + 2 * c.kv_heads) * c.D, c.q_heads, c.kv_heads, c.D, c.max_seq,
                               c.max_seq};
    const int64_t k = eg::fused_split(s, sms).keys_per_split;
    const std::vector<int32_t> edges = {int32_t(c.max_seq), int32_t(k + 1), int32_t(2 * k + 3), 1, int32_t(k - 1),
                                        int32_t(k), 17};
    std::vector<int32_t> len(c.n);
    for (int64_t t = 0; t < c.n; ++t) len[t] = std::clamp<int32_t>(edges[t % edges.size()], 1, int32_t(c.max_seq));
    SCOPED_TRACE(::testing::Message() << "D " << c.D << " heads " << c.q_heads << "/" << c.kv_heads << " n " << c.n
                                      << " keys per split " << k);
    check_attention_rows(c.D, len, 30 + c.D + c.n, c.q_heads, c.kv_heads, c.max_seq, c.max_seq);
  }
  // The same edges at the tensor-core kernel's split size (64-key tiles: a split's last tile partly filled, a warp
  // whose 16 keys start past the split's end).
  for (const Case c : {Case{64, 4, 2, 8, 9000}, Case{128, 8, 2, 5, 12000}, Case{128, 32, 8, 3, 8257},
                       Case{64, 4, 1, 32, 2300}}) {
    const eg::AttentionShape s{c.n, (c.q_heads + 2 * c.kv_heads) * c.D, c.q_heads, c.kv_heads, c.D, c.max_seq,
                               c.max_seq};
    const int64_t k = eg::mma_split(s, sms).keys_per_split;
    const std::vector<int32_t> edges = {int32_t(k + 1), int32_t(c.max_seq), int32_t(2 * k + 17), int32_t(k - 15),
                                        int32_t(k), 1, int32_t(k + 48), 65};
    std::vector<int32_t> len(c.n);
    for (int64_t t = 0; t < c.n; ++t) len[t] = std::clamp<int32_t>(edges[t % edges.size()], 1, int32_t(c.max_seq));
    SCOPED_TRACE(::testing::Message() << "D " << c.D << " heads " << c.q_heads << "/" << c.kv_heads << " n " << c.n
                                      << " tensor-core keys per split " << k);
    check_attention_rows(c.D, len, 50 + c.D + c.n, c.q_heads, c.kv_heads, c.max_seq, c.max_seq);
  }
  // Every fused kernel instance (head_dim x 1, 2, 4, 8 heads per block) merges several splits: the merge's column
  // split (1 to 16 threads per column) runs for each, and so does every tensor-core instance (head_dim 64, 128).
  // Rows: all splits used, one key, a partial last split, none.
  for (const int D : {32, 64, 128, 256})
    for (const int G : {1, 2, 4, 8}) {
      SCOPED_TRACE(::testing::Message() << "D " << D << " G " << G);
      check_attention_rows(D, {3000, 1, 1777, 0, 129}, 60 + D + G, G, 1, 3000, 3000);
    }
}

// A split kernel (fused or tensor-core) twice on one scratch, then captured in a CUDA graph and replayed twice: the
// output (cleared before each run) is bitwise the same every time (the merge order does not depend on which block
// comes last), and the counters are 0 after each run, so a replay needs no memset.
void check_repeats_and_replays(eg::DecodeAttention kernel) {
  const int D = 128, q_heads = 32, kv_heads = 8, seqs = 4;
  const int64_t n = 4, max_seq = 8257, cols = (q_heads + 2 * kv_heads) * D;
  const std::vector<int32_t> len = {8192, 300, 4097, 1}, seq = {0, 1, 2, 3};
  uint16_t* dq = upload(random_bf16(n * cols, 41));
  uint16_t* dk = upload(random_bf16(seqs * kv_heads * max_seq * D, 42));
  uint16_t* dv = upload(random_bf16(seqs * kv_heads * max_seq * D, 43));
  uint16_t* dout = upload(std::vector<uint16_t>(n * q_heads * D));
  int32_t *ds = upload(seq), *dl = upload(len);
  const eg::AttentionShape s{n, cols, q_heads, kv_heads, D, max_seq, max_seq};
  const eg::FusedSplit split = kernel == eg::DecodeAttention::kTensorCore ? eg::mma_split(s, device_sms())
                                                                          : eg::fused_split(s, device_sms());
  ASSERT_GT(split.splits, 1);
  const int64_t floats = eg::attention_scratch_floats(s);
  float* scratch = nullptr;
  ASSERT_EQ(cudaMalloc(reinterpret_cast<void**>(&scratch), floats * sizeof(float)), cudaSuccess);
  ASSERT_EQ(cudaMemset(scratch, 0, floats * sizeof(float)), cudaSuccess);
  cudaStream_t stream = nullptr;
  ASSERT_EQ(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), cudaSuccess);
  std::vector<std::vector<uint16_t>> outs;
  auto counters_zero = [&] {
    const auto c = download(reinterpret_cast<const uint32_t*>(scratch), eg::attention_counter_floats());
    return std::count(c.begin(), c.end(), 0u) == static_cast<long>(c.size());
  };
  const int64_t counter_floats = eg::attention_counter_floats();
  auto run = [&](auto&& launch) {
    ASSERT_EQ(cudaMemsetAsync(dout, 0xff, n * q_heads * D * sizeof(uint16_t), stream), cudaSuccess);
    // Partials poisoned (NaN), counters kept: a merge that reads a partial its split has not written (or not yet
    // made visible) gives NaN, not the previous run's identical value.
    ASSERT_EQ(cudaMemsetAsync(scratch + counter_floats, 0xff, (floats - counter_floats) * sizeof(float), stream),
              cudaSuccess);
    launch();
    ASSERT_EQ(cudaStreamSynchronize(stream), cudaSuccess);
    outs.push_back(download(dout, n * q_heads * D));
    EXPECT_TRUE(counters_zero()) << "run " << outs.size();
  };
  auto direct = [&] { eg::attention(dq, ds, dl, dk, dv, s, kernel, scratch, dout, stream); };
  run(direct);
  run(direct);
  cudaGraph_t graph = nullptr;
  cudaGraphExec_t exec = nullptr;
  ASSERT_EQ(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal), cudaSuccess);
  direct();
  ASSERT_EQ(cudaStreamEndCapture(stream, &graph), cudaSuccess);
  ASSERT_EQ(cudaGraphInstantiate(&exec, graph, 0), cudaSuccess);
  run([&] { ASSERT_EQ(cudaGraphLaunch(exec, stream), cudaSuccess); });
  run([&] { ASSERT_EQ(cudaGraphLaunch(exec, stream), cudaSuccess); });
  ASSERT_EQ(outs.size(), 4u);
  EXPECT_EQ(std::count_if(outs[0].begin(), outs[0].end(),
                          [](uint16_t b) { return (b & 0x7f80) == 0x7f80 && (b & 0x7f) != 0; }),
            0)
      << "an output never written (0xffff), or NaN (a poisoned partial read)";
  for (std::size_t r = 1; r < outs.size(); ++r) EXPECT_TRUE(outs[r] == outs[0]) << "run " << r + 1;
  // Decode steps change the lengths between replays (advance_positions): rows cross split boundaries, one-split rows
  // become multi-split ones and back. A replay on new lengths matches a direct call on them.
  const int64_t k = split.keys_per_split;
  const std::vector<int32_t> grown = {2, int32_t(k), int32_t(2 * k + 1), int32_t(k + 1)};  // several splits <-> one
  ASSERT_EQ(cudaMemcpy(dl, grown.data(), grown.size() * sizeof(int32_t), cudaMemcpyHostToDevice), cudaSuccess);
  run(direct);
  run([&] { ASSERT_EQ(cudaGraphLaunch(exec, stream), cudaSuccess); });
  ASSERT_EQ(outs.size(), 6u);
  const auto is_nan = [](uint16_t b) { return (b & 0x7f80) == 0x7f80 && (b & 0x7f) != 0; };  // never written: 0xffff
  EXPECT_EQ(std::count_if(outs[4].begin(), outs[4].end(), is_nan), 0) << "an output never written, or NaN";
  EXPECT_TRUE(outs[5] == outs[4]) << "replay on grown lengths";
  cudaGraphExecDestroy(exec);
  cudaGraphDestroy(graph);
  cudaStreamDestroy(stream);
  for (void* p : std::initializer_list<void*>{scratch, dq, dk, dv, dout, ds, dl}) cudaFree(p);
}

TEST(EngineGpu, FusedAttentionRepeatsAndReplays) {
  REQUIRE_GPU();
  check_repeats_and_replays(eg::DecodeAttention::kFused);
}

TEST(EngineGpu, TensorCoreAttentionRepeatsAndReplays) {
  REQUIRE_GPU();
  check_repeats_and_replays(eg::DecodeAttention::kTensorCore);
}

// The residency the fused split assumes (FusedSplit::blocks_per_sm, its grid is one wave of it) holds on the GPUs it
// was sized for (compute capability 9.x, 228 KB of shared memory per SM). Elsewhere (an A100's 164 KB) fewer blocks
// fit and the grid takes two waves: slower, still correct (no block waits for another), so the test skips there.
TEST(EngineGpu, FusedAttentionResidency) {
  REQUIRE_GPU();
  int device = 0, major = 0;
  cudaGetDevice(&device);
  cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device);
  if (major != 9)
    GTEST_SKIP() << "the fused split's residency is sized for compute capability 9.x; this GPU is " << major << ".x";
  for (const int D : {32, 64, 128, 256})
    for (const int G : {1, 2, 4, 8}) {
      const eg::AttentionShape s{1, (G + 2) * D, G, 1, D, 8192, 8192};
      const eg::FusedSplit f = eg::fused_split(s, device_sms());
      ASSERT_EQ(f.heads_per_block, G);
      EXPECT_GE(eg::fused_attention_resident_blocks(D, G), f.blocks_per_sm) << "D " << D << " G " << G;
      if (!eg::mma_attention_supports(D)) continue;
      const eg::FusedSplit m = eg::mma_split(s, device_sms());
      ASSERT_EQ(m.heads_per_block, G);
      EXPECT_GE(eg::mma_attention_resident_blocks(D, G), m.blocks_per_sm) << "tensor-core D " << D << " G " << G;
    }
}

// The fused split on a 132-SM H200 for Llama-3.1-8B's heads (32 / 8, head_dim 128, 4 heads per block) at the
// max_len nvrar-llm bench uses (context + 65): 2-4 blocks per SM, >= 256 keys where that still gives 2 per SM. CPU.
TEST(EngineAttention, FusedSplitPolicy) {
  struct Want {
    int64_t n, max_len, keys, splits, blocks;
  };
  for (const Want w : {Want{1, 8257, 256, 33, 264}, Want{8, 8257, 1056, 8, 512}, Want{32, 8257, 4160, 2, 512},
                       Want{1, 32833, 512, 65, 520}, Want{8, 32833, 4128, 8, 512}, Want{32, 32833, 16448, 2, 512},
                       Want{1, 131137, 2016, 66, 528}, Want{1, 193, 32, 7, 56}, Want{64, 8257, 8288, 1, 512},
                       Want{300, 700, 704, 1, 2400}}) {
    const eg::AttentionShape s{w.n, 48 * 128, 32, 8, 128, w.max_len, w.max_len};
    const eg::FusedSplit f = eg::fused_split(s, 132);
    EXPECT_EQ(f.heads_per_block, 4);
    EXPECT_EQ(f.keys_per_split, w.keys) << w.n << " x " << w.max_len;
    EXPECT_EQ(f.splits, w.splits) << w.n << " x " << w.max_len;
    EXPECT_EQ(f.blocks, w.blocks) << w.n << " x " << w.max_len;
    if (f.splits > 1) EXPECT_LE(f.blocks, f.blocks_per_sm * 132);
  }
  // The tensor-core kernel's split (64-key tiles, 3 blocks per SM at head_dim 128): batch 1 x 32768 in one wave of
  // 376 blocks (47 splits of 704 keys), batch 1 x 8257 at 256 keys (33 splits), batch 8 x 8257 in 384 blocks; rows
  // of at most 256 keys in one split.
  for (const Want w : {Want{1, 32833, 704, 47, 376}, Want{1, 8257, 256, 33, 264}, Want{8, 8257, 1408, 6, 384},
                       Want{1, 193, 256, 1, 8}, Want{8, 193, 256, 1, 64}, Want{1, 256, 256, 1, 8},
                       Want{1, 257, 64, 5, 40}}) {
    const eg::AttentionShape s{w.n, 48 * 128, 32, 8, 128, w.max_len, w.max_len};
    const eg::FusedSplit f = eg::mma_split(s, 132);
    EXPECT_EQ(f.heads_per_block, 4);
    EXPECT_EQ(f.blocks_per_sm, 3);
    EXPECT_EQ(f.keys_per_split, w.keys) << "tensor-core " << w.n << " x " << w.max_len;
    EXPECT_EQ(f.splits, w.splits) << "tensor-core " << w.n << " x " << w.max_len;
    EXPECT_EQ(f.blocks, w.blocks) << "tensor-core " << w.n << " x " << w.max_len;
  }
  EXPECT_EQ(eg::mma_split(eg::AttentionShape{1, 10 * 64, 8, 1, 64, 32768, 32768}, 132).blocks_per_sm, 4);
  // 8 heads per block (ratio 8) assume 2 blocks per SM; one KV head and one row gives the most splits.
  const eg::FusedSplit f = eg::fused_split(eg::AttentionShape{1, 10 * 64, 8, 1, 64, 32768, 32768}, 132);
  EXPECT_EQ(f.heads_per_block, 8);
  EXPECT_EQ(f.blocks_per_sm, 2);
  EXPECT_EQ(f.keys_per_split, 128);
  EXPECT_EQ(f.blocks, 256);
}

TEST(EngineGpu, SwigluRmsnormArgmax) {
  REQUIRE_GPU();
  const int64_t n = 2, H = 64;
  // 8-wide kernel (inter a multiple of 8) and the element-wise one (42); 3 rows so that a row starts mid-block.
  for (const int64_t inter : {40, 42, 1000}) {
    const int64_t rows = inter == 1000 ? 3 : n;
    const auto gu = random_bf16(rows * 2 * inter, 7 + inter, 3.0f);
    uint16_t *dgu = upload(gu), *dact = upload(std::vector<uint16_t>(rows * inter, bf(NAN)));
    eg::swiglu(dgu, rows, inter, dact, nullptr);
    const auto act = download(dact, rows * inter);
    for (int64_t t = 0; t < rows; ++t)
      for (int64_t i = 0; i < inter; ++i) {
        const float g = fl(gu[t * 2 * inter + i]), u = fl(gu[t * 2 * inter + inter + i]);
        EXPECT_NEAR(fl(act[t * inter + i]), fl(bf(fl(bf(g / (1 + std::exp(-g)))) * u)), 2e-2)
            << "inter " << inter << " row " << t << " index " << i;
      }
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
  // argmax: a tie between columns 3 and 7 picks 3; the offset is added; NaN ranks below everything; a row of NaN and
  // -inf only gives column 0 (a valid token), not an index past the vocabulary.
  std::vector<uint16_t> logits(4 * 10, bf(-1.0f));
  logits[3] = logits[7] = bf(2.0f);
  logits[10 + 9] = bf(0.5f);
  logits[20 + 0] = logits[20 + 5] = bf(NAN);
  logits[20 + 6] = bf(1.5f);
  for (int c = 0; c < 10; ++c) logits[30 + c] = bf(c % 2 == 0 ? NAN : -INFINITY);
  uint16_t* dl = upload(logits);
  float* dv = upload(std::vector<float>(4));
  int32_t* di = upload(std::vector<int32_t>(4));
  eg::argmax_rows(dl, 4, 10, 100, dv, di, nullptr);
  const auto idx = download(di, 4);
  EXPECT_EQ(idx[0], 103);
  EXPECT_EQ(idx[1], 109);
  EXPECT_EQ(idx[2], 106);
  EXPECT_EQ(idx[3], 100);
}

}  // namespace
