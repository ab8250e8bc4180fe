// The CPU half of sampling (src/engine/sampling_math.h, sampling_reference.h, generation_config.h): Philox against
// the published known-answer vectors, the fixed-point exp and weights, the order of bf16 keys, the top-k and top-p
// masks (ties, HF's inclusive boundary, both combined, temperature) against hand-worked rows and against a plain
// long-double softmax + sort on random rows, draws (seeds, chi-square against the exact distribution, and a wrong
// distribution that must fail), parameter checks, and EOS ids / defaults of a model directory.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <numeric>
#include <random>
#include <vector>

#include "chi_square.h"
#include "core/numeric.h"
#include "engine/generation_config.h"
#include "engine/sampling_math.h"
#include "engine/sampling_reference.h"
#include "engine_test_support.h"

namespace {

namespace sm = nvrar::engine::sampling;
using nvrar::engine::SamplingParams;
using nvrar::engine::test_support::error_of;

uint16_t bf(float v) { return nvrar::core::from_float<nvrar::core::Bf16>(v).bits; }

std::vector<uint16_t> row_of(const std::vector<float>& v) {
  std::vector<uint16_t> out;
  for (float x : v) out.push_back(bf(x));
  return out;
}

std::vector<int> kept(const std::vector<uint16_t>& row, const SamplingParams& p) {
  const auto mask = nvrar::engine::sampling_mask(row, p);
  std::vector<int> out;
  for (std::size_t i = 0; i < mask.keep.size(); ++i)
    if (mask.keep[i]) out.push_back(static_cast<int>(i));
  return out;
}

SamplingParams params(float t, int k, float p, uint64_t seed = 0) { return SamplingParams{t, k, p, seed}; }

TEST(Sampling, PhiloxKnownAnswers) {  // Random123's kat_vectors for philox4x32 with 10 rounds
  struct Case {
    uint32_t counter[4], key[2], expected[4];
  };
  const Case cases[] = {
      {{0, 0, 0, 0}, {0, 0}, {0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8}},
      {{0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff},
       {0xffffffff, 0xffffffff},
       {0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd}},
      {{0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344},
       {0xa4093822, 0x299f31d0},
       {0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1}},
  };
  for (const Case& c : cases) {
    uint32_t out[4];
    sm::philox4x32_10(c.counter, c.key[0], c.key[1], out);
    for (int i = 0; i < 4; ++i) EXPECT_EQ(out[i], c.expected[i]) << "word " << i;
  }
}

TEST(Sampling, ExpIsAccurate) {
  for (double d = -32.0; d <= 0.0; d += 0.0123) {
    const double ours = sm::exp_rn(d), libm = std::exp(d);
    EXPECT_NEAR(ours, libm, libm * 4e-16) << d;
  }
  EXPECT_EQ(sm::exp_rn(0.0), 1.0);
}

TEST(Sampling, WeightsAreFixedPointSoftmaxNumerators) {
  const uint64_t one = uint64_t{1} << sm::kWeightBits;
  EXPECT_EQ(sm::token_weight(3.0f, 3.0f, 0.7f), one);
  EXPECT_EQ(sm::token_weight(INFINITY, INFINITY, 1.0f), one);
  EXPECT_EQ(sm::token_weight(1.0f, INFINITY, 1.0f), 0u);
  EXPECT_EQ(sm::token_weight(-INFINITY, 2.0f, 1.0f), 0u);
  EXPECT_EQ(sm::token_weight(NAN, 2.0f, 1.0f), 0u);
  EXPECT_EQ(sm::token_weight(-40.0f, 0.0f, 1.0f), 0u);  // below 2^-45 of the top
  for (float x : {-0.5f, -1.0f, -7.25f, -20.0f})
    for (float t : {0.25f, 1.0f, 3.0f}) {
      const double expected = std::exp(static_cast<double>(x) / t) * static_cast<double>(one);
      EXPECT_NEAR(static_cast<double>(sm::token_weight(x, 0.0f, t)), expected, expected * 1e-15 + 1) << x << " " << t;
    }
}

TEST(Sampling, OrderKeysFollowTheLogits) {
  std::vector<std::pair<float, uint32_t>> finite;
  for (uint32_t bits = 0; bits < 0x10000; ++bits) {
    const uint16_t b = static_cast<uint16_t>(bits);
    if (sm::bf16_is_nan(b)) {
      EXPECT_EQ(sm::order_key(b), 0u);
      continue;
    }
    finite.emplace_back(sm::bf16_to_float(b), sm::order_key(b));
    if (b != 0x8000 && b != 0xFFFF) EXPECT_EQ(bf(sm::key_logit(sm::order_key(b))), b) << bits;
  }
  std::sort(finite.begin(), finite.end());
  for (std::size_t i = 1; i < finite.size(); ++i) {
    if (finite[i].first == finite[i - 1].first)
      EXPECT_EQ(finite[i].second, finite[i - 1].second);  // -0 and +0
    else
      EXPECT_GT(finite[i].second, finite[i - 1].second) << finite[i].first;
  }
}

TEST(Sampling, TopKKeepsTiesAtTheBoundary) {
  const auto row = row_of({1, 3, 3, 2, 3, 0.5f});
  EXPECT_EQ(kept(row, params(1, 1, 1)), (std::vector<int>{1, 2, 4}));  // the largest value, all three copies
  EXPECT_EQ(kept(row, params(1, 3, 1)), (std::vector<int>{1, 2, 4}));
  EXPECT_EQ(kept(row, params(1, 4, 1)), (std::vector<int>{1, 2, 3, 4}));
  EXPECT_EQ(kept(row, params(1, 6, 1)).size(), 6u);
  EXPECT_EQ(kept(row, params(1, 100, 1)).size(), 6u);
  EXPECT_EQ(kept(row, params(1, 0, 1)).size(), 6u);
  EXPECT_EQ(kept(row_of({-0.0f, 0.0f, -1}), params(1, 1, 1)), (std::vector<int>{0, 1}));  // -0 ties +0
}

TEST(Sampling, TopPBoundaryIsInclusiveAsHf) {
  const auto equal4 = row_of({2, 2, 2, 2});  // probabilities exactly 1/4 each; ties ranked by index
  EXPECT_EQ(kept(equal4, params(1, 0, 0.5f)), (std::vector<int>{0, 1}));  // 1/4 + 1/4 reaches 0.5: stop there
  EXPECT_EQ(kept(equal4, params(1, 0, std::nextafter(0.5f, 1.0f))), (std::vector<int>{0, 1, 2}));
  EXPECT_EQ(kept(equal4, params(1, 0, 0.25f)), (std::vector<int>{0}));
  EXPECT_EQ(kept(equal4, params(1, 0, std::nextafter(0.25f, 0.0f))), (std::vector<int>{0}));
  EXPECT_EQ(kept(equal4, params(1, 0, 1e-30f)), (std::vector<int>{0}));  // the first token always stays
  EXPECT_EQ(kept(equal4, params(1, 0, 1.0f)).size(), 4u);
  // The rows of HF's test_top_p_dist_warper as bf16 log-probabilities: [0.3, 0.1, 0.1, 0.5] keeps {0.5, 0.3} (at
  // 0.79: bf16 rounding moves the exact 0.8 boundary), [0.15, 0.3, 0.3, 0.25] at 0.8 keeps {0.3, 0.3, 0.25}.
  EXPECT_EQ(kept(row_of({std::log(0.3f), std::log(0.1f), std::log(0.1f), std::log(0.5f)}), params(1, 0, 0.79f)),
            (std::vector<int>{0, 3}));
  EXPECT_EQ(kept(row_of({std::log(0.15f), std::log(0.3f), std::log(0.3f), std::log(0.25f)}), params(1, 0, 0.8f)),
            (std::vector<int>{1, 2, 3}));
}

TEST(Sampling, TopPRenormalisesAfterTopK) {
  const auto row = row_of({std::log(0.4f), std::log(0.3f), std::log(0.2f), std::log(0.1f)});
  EXPECT_EQ(kept(row, params(1, 0, 0.5f)), (std::vector<int>{0, 1}));  // 0.4 < 0.5: the second stays
  EXPECT_EQ(kept(row, params(1, 2, 0.5f)), (std::vector<int>{0}));     // among two, 0.4 / 0.7 >= 0.5
  EXPECT_EQ(kept(row, params(1, 2, 0.6f)), (std::vector<int>{0, 1}));
  EXPECT_EQ(kept(row, params(1, 3, 0.95f)), (std::vector<int>{0, 1, 2}));
}

TEST(Sampling, TemperatureZeroIsGreedy) {
  const auto row = row_of({1, 5, 5, -2});
  EXPECT_EQ(kept(row, params(0, 0, 1)), (std::vector<int>{1}));
  for (int pos = 0; pos < 20; ++pos) EXPECT_EQ(nvrar::engine::sample_reference(row, params(0, 3, 0.2f, 9), 0, pos), 1);
}

// A long-double softmax of x / T (in float, as transformers), sorted, and HF's rules: the masks must agree with the
// fixed-point reference on random rows wherever no top-p boundary lies within 1e-5 of p.
TEST(Sampling, MasksAgreeWithAPlainSoftmaxOnRandomRows) {
  std::mt19937_64 rng(7);
  int compared = 0;
  for (int trial = 0; trial < 400; ++trial) {
    const int vocab = 2 + static_cast<int>(rng() % 300);
    std::normal_distribution<float> normal(0.0f, 1.0f + static_cast<float>(rng() % 4));
    std::vector<uint16_t> row(vocab);
    for (auto& b : row) b = bf(normal(rng));
    const float temperature = std::vector<float>{0.3f, 0.7f, 1.0f, 1.6f}[rng() % 4];
    const int top_k = static_cast<int>(rng() % 4 == 0 ? 0 : 1 + rng() % vocab);
    const float top_p = rng() % 3 == 0 ? 1.0f : 0.05f + 0.9f * static_cast<float>(rng() % 1000) / 1000;
    std::vector<int> order(vocab);
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(),
                     [&](int a, int b) { return sm::bf16_to_float(row[a]) > sm::bf16_to_float(row[b]); });
    std::vector<long double> scaled(vocab);
    for (int i = 0; i < vocab; ++i) scaled[i] = sm::bf16_to_float(row[i]) / temperature;
    const float kth = top_k > 0 && top_k < vocab ? sm::bf16_to_float(row[order[top_k - 1]]) : -INFINITY;
    long double total = 0;
    for (int i = 0; i < vocab; ++i)
      if (sm::bf16_to_float(row[i]) >= kth) total += std::exp(scaled[i] - scaled[order[0]]);
    std::vector<uint8_t> expected(vocab, 0);
    long double above = 0;
    bool near_boundary = false;
    for (int n = 0; n < vocab; ++n) {
      const int i = order[n];
      if (sm::bf16_to_float(row[i]) < kth) break;
      const long double mass = above / total;
      near_boundary |= top_p < 1 && std::fabs(mass - top_p) < 1e-5L;  // x / T rounded to float in HF
      expected[i] = top_p >= 1 || n == 0 || mass < top_p;
      above += std::exp(scaled[i] - scaled[order[0]]);
    }
    if (near_boundary) continue;
    ++compared;
    const auto mask = nvrar::engine::sampling_mask(row, params(temperature, top_k, top_p));
    ASSERT_EQ(mask.keep, expected) << "trial " << trial << " vocab " << vocab << " T " << temperature << " k "
                                   << top_k << " p " << top_p;
  }
  EXPECT_GT(compared, 380);
}

TEST(Sampling, ProbabilitiesFollowTemperature) {
  const auto row = row_of({0.5f, -1.0f, 2.0f, 1.25f, -3.0f});
  for (float t : {0.5f, 1.0f, 2.0f}) {
    const auto p = nvrar::engine::sampling_probabilities(row, params(t, 0, 1));
    long double z = 0;
    for (uint16_t b : row) z += std::exp(static_cast<long double>(sm::bf16_to_float(b)) / t);
    for (std::size_t i = 0; i < row.size(); ++i)
      EXPECT_NEAR(p[i], std::exp(static_cast<long double>(sm::bf16_to_float(row[i])) / t) / z, 1e-12) << t;
  }
}

TEST(Sampling, DrawsDependOnSeedSequenceAndPosition) {
  std::vector<uint16_t> row(50);
  for (std::size_t i = 0; i < row.size(); ++i) row[i] = bf(std::sin(static_cast<float>(i)));
  const auto draw = [&](uint64_t seed, int seq, int pos) {
    return nvrar::engine::sample_reference(row, params(1.0f, 0, 1, seed), seq, pos);
  };
  int differ_seed = 0, differ_seq = 0;
  for (int pos = 0; pos < 200; ++pos) {
    EXPECT_EQ(draw(42, 3, pos), draw(42, 3, pos));
    differ_seed += draw(42, 3, pos) != draw(43, 3, pos);
    differ_seq += draw(42, 3, pos) != draw(42, 4, pos);
  }
  EXPECT_GT(differ_seed, 150);  // two independent draws from ~50 tokens agree about 1 time in 40
  EXPECT_GT(differ_seq, 150);
}

TEST(Sampling, DrawsFollowTheDistribution) {
  std::vector<uint16_t> row(20);
  std::mt19937_64 rng(3);
  std::normal_distribution<float> normal(0.0f, 1.5f);
  for (auto& b : row) b = bf(normal(rng));
  for (const SamplingParams p : {params(1.0f, 0, 1, 11), params(0.6f, 8, 0.9f, 12), params(1.4f, 0, 0.7f, 13)}) {
    const std::vector<double> prob = nvrar::engine::sampling_probabilities(row, p);
    std::vector<int64_t> counts(row.size(), 0);
    const int draws = 40000;
    for (int i = 0; i < draws; ++i) ++counts[nvrar::engine::sample_reference(row, p, i % 8, i / 8)];
    const auto fit = nvrar::test::chi_square(counts, prob);
    EXPECT_GT(fit.p_value, 1e-4) << "X^2 " << fit.statistic << " df " << fit.degrees_of_freedom;
    // The same draws against a slightly wrong distribution (the two likeliest tokens' probabilities swapped
    // halfway) must fail: the test has the power to see a wrong sampler.
    std::vector<double> wrong = prob;
    const auto top = std::max_element(wrong.begin(), wrong.end()) - wrong.begin();
    double& other = wrong[top == 0 ? 1 : 0];
    const double shift = std::min(wrong[top], 0.05);
    wrong[top] -= shift;
    other += shift;
    EXPECT_LT(nvrar::test::chi_square(counts, wrong).p_value, 1e-4);
  }
}

TEST(Sampling, ChiSquarePValues) {  // values of the chi-square upper tail from tables
  EXPECT_NEAR(nvrar::test::regularized_gamma_q(0.5, 3.841 / 2), 0.05, 1e-4);   // df 1
  EXPECT_NEAR(nvrar::test::regularized_gamma_q(5.0, 18.307 / 2), 0.05, 1e-4);  // df 10
  EXPECT_NEAR(nvrar::test::regularized_gamma_q(5.0, 23.209 / 2), 0.01, 1e-4);
  EXPECT_NEAR(nvrar::test::regularized_gamma_q(25.0, 76.154 / 2), 0.01, 1e-5);  // df 50
  EXPECT_NEAR(nvrar::test::regularized_gamma_q(25.0, 86.661 / 2), 0.001, 1e-5);
}

TEST(Sampling, ParameterChecks) {
  const auto check = [](SamplingParams p) { nvrar::engine::check_sampling_params(p, "nvrar-llm generate"); };
  EXPECT_HAS(error_of([&] { check(params(-1, 0, 1)); }), "nvrar-llm generate: temperature -1 outside [0, 10000]");
  EXPECT_HAS(error_of([&] { check(params(NAN, 0, 1)); }), "temperature nan");
  EXPECT_HAS(error_of([&] { check(params(1, -2, 1)); }), "top-k -2 is negative");
  EXPECT_HAS(error_of([&] { check(params(1, 0, 0)); }), "top-p 0 outside (0, 1]");
  EXPECT_HAS(error_of([&] { check(params(1, 0, 1.5f)); }), "top-p 1.5 outside (0, 1]");
  check(params(0, 0, 1));
  check(params(0.7f, 40, 0.95f));
  EXPECT_HAS(error_of([] { nvrar::engine::sampling_mask({}, params(1, 0, 1)); }), "a row of 0 logits");
}

class GenerationConfigTest : public nvrar::engine::test_support::TempDirTest {
 protected:
  void write(const char* name, const std::string& text) { std::ofstream(dir_ / name) << text; }
};

TEST_F(GenerationConfigTest, EosIdsFromEitherFile) {
  using nvrar::engine::load_generation_config;
  EXPECT_TRUE(load_generation_config(dir_, 1000).eos_token_ids.empty());  // no files: no EOS
  write("config.json", R"({"eos_token_id": 7})");
  EXPECT_EQ(load_generation_config(dir_, 1000).eos_token_ids, (std::vector<int32_t>{7}));
  write("generation_config.json", R"({"eos_token_id": [5, 9], "do_sample": false, "temperature": 0.6})");
  const auto g = load_generation_config(dir_, 1000);
  EXPECT_EQ(g.eos_token_ids, (std::vector<int32_t>{5, 9}));
  EXPECT_EQ(g.sampling.temperature, 0.0f);  // do_sample false: greedy
  write("generation_config.json", R"({"bos_token_id": 1, "do_sample": true, "temperature": 0.6, "top_p": 0.9})");
  const auto s = load_generation_config(dir_, 1000);
  EXPECT_EQ(s.eos_token_ids, (std::vector<int32_t>{7}));  // from config.json
  EXPECT_EQ(s.sampling.temperature, 0.6f);
  EXPECT_EQ(s.sampling.top_p, 0.9f);
  EXPECT_EQ(s.sampling.top_k, 0);
}

TEST_F(GenerationConfigTest, BadFieldsNameFileAndField) {
  using nvrar::engine::load_generation_config;
  write("generation_config.json", R"({"eos_token_id": [5, "x"]})");
  EXPECT_HAS(error_of([&] { load_generation_config(dir_, 1000); }), "generation_config.json: field 'eos_token_id[1]'");
  write("generation_config.json", R"({"eos_token_id": 1000})");
  EXPECT_HAS(error_of([&] { load_generation_config(dir_, 1000); }), "field 'eos_token_id': 1000 is out of range");
  write("generation_config.json", R"({"do_sample": true, "top_p": 2})");
  EXPECT_HAS(error_of([&] { load_generation_config(dir_, 1000); }), "top-p 2 outside (0, 1]");
  write("generation_config.json", "[1]");
  EXPECT_HAS(error_of([&] { load_generation_config(dir_, 1000); }), "the top level is an array");
}

}  // namespace
