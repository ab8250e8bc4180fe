// The GPU sampling kernel (src/engine/gpu/sampling.h) against its CPU reference (src/engine/sampling_reference.h),
// on one GPU (skipped without one): masks, kept totals and drawn tokens equal, exactly, for small and full Llama-3
// vocabularies, ties, top-k / top-p / both, rows split into 1, 2 or 4 all-gathered shards; a chi-square of many
// draws against the exact distribution on small vocabularies (and the same counts against a wrong distribution,
// which must fail); the same seed gives the same tokens, another seed others.
#include <gtest/gtest.h>

#include <cuda_runtime_api.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include "chi_square.h"
#include "core/numeric.h"
#include "engine/gpu/sampling.h"
#include "engine/sampling_reference.h"

namespace {

namespace eg = nvrar::engine::gpu;
using nvrar::engine::SamplingParams;

bool have_gpu() {
  int n = 0;
  return cudaGetDeviceCount(&n) == cudaSuccess && n > 0;
}

#define REQUIRE_GPU() \
  if (!have_gpu()) GTEST_SKIP() << "no CUDA device"

uint16_t bf(float v) { return nvrar::core::from_float<nvrar::core::Bf16>(v).bits; }

// Device buffers of a test, freed at the end.
class Device {
 public:
  ~Device() {
    for (void* p : owned_) cudaFree(p);
  }
  template <typename T>
  T* alloc(std::size_t n) {
    void* p = nullptr;
    EXPECT_EQ(cudaMalloc(&p, std::max<std::size_t>(n * sizeof(T), 16)), cudaSuccess);
    owned_.push_back(p);
    return static_cast<T*>(p);
  }
  template <typename T>
  T* upload(const std::vector<T>& v) {
    T* d = alloc<T>(v.size());
    EXPECT_EQ(cudaMemcpy(d, v.data(), v.size() * sizeof(T), cudaMemcpyHostToDevice), cudaSuccess);
    return d;
  }
  template <typename T>
  static std::vector<T> download(const T* d, std::size_t n) {
    std::vector<T> v(n);
    EXPECT_EQ(cudaDeviceSynchronize(), cudaSuccess);
    EXPECT_EQ(cudaMemcpy(v.data(), d, n * sizeof(T), cudaMemcpyDeviceToHost), cudaSuccess);
    return v;
  }

 private:
  std::vector<void*> owned_;
};

// rows x vocab logits; `distinct` > 0 quantises them to that many values (many ties).
std::vector<std::vector<uint16_t>> random_rows(int rows, int vocab, uint64_t seed, float spread, int distinct = 0) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal(0.0f, spread);
  std::vector<std::vector<uint16_t>> out(rows, std::vector<uint16_t>(vocab));
  for (auto& row : out)
    for (auto& b : row) {
      float x = normal(rng);
      if (distinct > 0) x = std::round(x * distinct / (4 * spread)) * (4 * spread) / distinct;
      b = bf(x);
    }
  return out;
}

// The rows laid out as an all-gather of `shards` vocabulary shards leaves them: [shards][rows][vocab / shards].
std::vector<uint16_t> gathered_layout(const std::vector<std::vector<uint16_t>>& rows, int shards) {
  const std::size_t vocab = rows[0].size(), cols = vocab / shards;
  std::vector<uint16_t> out(rows.size() * vocab);
  for (int s = 0; s < shards; ++s)
    for (std::size_t r = 0; r < rows.size(); ++r)
      for (std::size_t c = 0; c < cols; ++c) out[(s * rows.size() + r) * cols + c] = rows[r][s * cols + c];
  return out;
}

struct Outcome {
  std::vector<int32_t> tokens;
  std::vector<uint8_t> keep;
  std::vector<uint64_t> total;
};

// One launch of the kernel over `rows` (row r: sequence r, new token at position positions[r] + 1).
Outcome run_kernel(const std::vector<std::vector<uint16_t>>& rows, int shards, const SamplingParams& params,
                   const std::vector<int32_t>& positions, bool trace) {
  Device dev;
  const int64_t n = static_cast<int64_t>(rows.size()), vocab = static_cast<int64_t>(rows[0].size());
  const eg::GatheredLogits logits{dev.upload(gathered_layout(rows, shards)), n, vocab / shards, shards};
  int32_t* tokens = dev.alloc<int32_t>(n);
  void* workspace = dev.alloc<uint8_t>(eg::sampling_workspace_bytes(n));
  eg::SamplingTrace t{trace ? dev.alloc<uint8_t>(n * vocab) : nullptr, trace ? dev.alloc<uint64_t>(n) : nullptr};
  eg::sample_rows(logits, params, dev.upload(positions), nullptr, tokens, workspace, n, nullptr, trace ? &t : nullptr);
  EXPECT_EQ(cudaGetLastError(), cudaSuccess);
  Outcome out;
  out.tokens = Device::download(tokens, n);
  if (trace) {
    out.keep = Device::download(t.keep, n * vocab);
    out.total = Device::download(t.total, n);
  }
  return out;
}

void expect_equal_to_reference(const std::vector<std::vector<uint16_t>>& rows, int shards, const SamplingParams& p,
                               const std::string& what) {
  std::vector<int32_t> positions(rows.size());
  for (std::size_t r = 0; r < rows.size(); ++r) positions[r] = static_cast<int32_t>(17 + 5 * r);
  const Outcome got = run_kernel(rows, shards, p, positions, true);
  const std::size_t vocab = rows[0].size();
  for (std::size_t r = 0; r < rows.size(); ++r) {
    const auto mask = nvrar::engine::sampling_mask(rows[r], p);
    const std::vector<uint8_t> keep(got.keep.begin() + r * vocab, got.keep.begin() + (r + 1) * vocab);
    ASSERT_EQ(keep, mask.keep) << what << " row " << r;
    EXPECT_EQ(got.total[r], mask.total) << what << " row " << r;
    EXPECT_EQ(got.tokens[r], nvrar::engine::sample_reference(rows[r], p, static_cast<int64_t>(r), positions[r] + 1))
        << what << " row " << r;
  }
}

TEST(SamplingGpu, MasksAndTokensEqualTheReference) {
  REQUIRE_GPU();
  const SamplingParams cases[] = {{1.0f, 0, 1.0f, 1},  {0.7f, 0, 0.9f, 2},  {1.3f, 40, 1.0f, 3},
                                  {0.6f, 20, 0.8f, 4}, {1.0f, 1, 1.0f, 5},  {2.0f, 0, 0.3f, 6},
                                  {0.9f, 3, 0.999f, 7}, {0.05f, 0, 0.95f, 8}};
  for (const int vocab : {10, 48, 1000, 32000}) {
    for (const int distinct : {0, 12}) {
      const auto rows = random_rows(6, vocab, 100 + vocab + distinct, 2.0f, distinct);
      for (const SamplingParams& p : cases)
        for (const int shards : {1, 2, 4}) {
          if (vocab % shards != 0) continue;
          expect_equal_to_reference(rows, shards, p,
                                    "vocab " + std::to_string(vocab) + " distinct " + std::to_string(distinct) +
                                        " T " + std::to_string(p.temperature) + " k " + std::to_string(p.top_k) +
                                        " p " + std::to_string(p.top_p) + " shards " + std::to_string(shards));
          if (HasFatalFailure()) return;
        }
    }
  }
}

TEST(SamplingGpu, FullLlamaVocabularyEqualsTheReference) {
  REQUIRE_GPU();
  // Logits like a model's: most tokens far below a few candidates, some exact ties among the candidates.
  auto rows = random_rows(3, 128256, 9, 3.0f);
  for (auto& row : rows) {
    for (int i = 0; i < 30; ++i) row[(i * 4099) % row.size()] = bf(12.0f + static_cast<float>(i % 7));
    row[77] = bf(-INFINITY);
    row[78] = 0x7FC0;  // NaN: never drawn, ranked last
  }
  for (const SamplingParams& p : {SamplingParams{0.6f, 0, 0.9f, 1}, SamplingParams{1.0f, 50, 0.95f, 2},
                                  SamplingParams{1.0f, 0, 1.0f, 3}, SamplingParams{3.0f, 0, 0.99f, 4}})
    for (const int shards : {1, 2, 4, 8}) expect_equal_to_reference(rows, shards, p, "128256 x " + std::to_string(shards));
}

TEST(SamplingGpu, DrawsFollowTheExactDistribution) {
  REQUIRE_GPU();
  for (const int vocab : {10, 50}) {
    const auto rows = random_rows(1, vocab, 21 + vocab, 1.2f);
    for (const SamplingParams& base :
         {SamplingParams{1.0f, 0, 1.0f, 31}, SamplingParams{0.7f, 6, 0.95f, 32}, SamplingParams{1.5f, 0, 0.8f, 33}}) {
      const std::vector<double> prob = nvrar::engine::sampling_probabilities(rows[0], base);
      // 200 launches of 500 sequences (rows) at 200 positions: 100000 draws.
      const std::vector<std::vector<uint16_t>> batch(500, rows[0]);
      std::vector<int64_t> counts(vocab, 0);
      for (int step = 0; step < 200; ++step) {
        const Outcome got = run_kernel(batch, 1, base, std::vector<int32_t>(batch.size(), step), false);
        for (int32_t t : got.tokens) {
          ASSERT_GE(t, 0);
          ASSERT_LT(t, vocab);
          ++counts[t];
        }
      }
      const auto fit = nvrar::test::chi_square(counts, prob);
      EXPECT_GT(fit.p_value, 1e-4) << "vocab " << vocab << " X^2 " << fit.statistic << " df "
                                   << fit.degrees_of_freedom;
      // Power: the same counts against the distribution at another temperature must be rejected.
      SamplingParams hotter = base;
      hotter.temperature *= 1.15f;
      EXPECT_LT(nvrar::test::chi_square(counts, nvrar::engine::sampling_probabilities(rows[0], hotter)).p_value, 1e-4)
          << "vocab " << vocab;
    }
  }
}

TEST(SamplingGpu, SeedsDecide) {
  REQUIRE_GPU();
  const auto rows = random_rows(64, 1000, 5, 1.0f);
  const std::vector<int32_t> positions(rows.size(), 40);
  const auto a = run_kernel(rows, 1, SamplingParams{1.0f, 0, 1.0f, 1234}, positions, false).tokens;
  const auto b = run_kernel(rows, 2, SamplingParams{1.0f, 0, 1.0f, 1234}, positions, false).tokens;
  const auto c = run_kernel(rows, 1, SamplingParams{1.0f, 0, 1.0f, 1235}, positions, false).tokens;
  EXPECT_EQ(a, b);  // same seed: same tokens, whatever the number of shards
  int differ = 0;
  for (std::size_t i = 0; i < a.size(); ++i) differ += a[i] != c[i];
  EXPECT_GT(differ, 48);  // a flat 1000-token row: two seeds' draws rarely agree
}

}  // namespace
