// The arithmetic shared by the GPU sampling kernel (gpu/sampling.cu) and its CPU reference (sampling_reference.h),
// written once so that both compute the same bits: the order of tokens, each token's fixed-point weight, the top-p
// comparison, and the counter-based random numbers of the draw.
//
// Why fixed point: a token's weight is floor(2^45 x exp((x - x_max) / T)) as a 64-bit integer, so sums of weights are
// exact and independent of the order in which a GPU block adds them; the top-p cut and the draw are then integer
// comparisons, and the kernel and the reference agree on every mask and every token, not just to a tolerance.
// exp is computed here (range reduction + a degree-13 polynomial) with every double operation rounded on its own
// (__dadd_rn/__dmul_rn on the device; the reference's file is compiled with -ffp-contract=off), because the CUDA and
// glibc exp may differ in the last bit. A weight below 1 (x - x_max < -31.2 T: probability under 1.3e-14 of the top
// token's) is 0: such a token is never drawn. At most 2^18 tokens, so a row's total stays below 2^63.
//
// Order: tokens are ranked by their bf16 logit, largest first, then by index, smallest first (the first index wins a
// tie, as greedy's argmax). -0 counts as +0; NaN ranks below everything and weighs 0.
//
// Random numbers: Philox4x32-10 (Salmon et al., SC'11; checked against Random123's known answers) keyed by the seed,
// with the counter (position, 0, sequence, 0). A draw depends on the seed,
// the sequence's index in the batch and the position of the token being drawn, never on the TP size or on how many
// steps ran before.
#pragma once

#include <cstdint>
#include <cstring>

#include "core/hd.h"

namespace nvrar::engine::sampling {

inline constexpr int kWeightBits = 45;  // the top token weighs 2^45; a row of 2^18 tokens sums below 2^63
inline constexpr int64_t kMaxVocab = int64_t{1} << 18;
inline constexpr uint64_t kTopPOne = uint64_t{1} << 32;  // top-p in units of 2^-32

NVRAR_HD double add_rn(double a, double b) {
#if defined(__CUDA_ARCH__)
  return __dadd_rn(a, b);
#else
  return a + b;
#endif
}

NVRAR_HD double mul_rn(double a, double b) {
#if defined(__CUDA_ARCH__)
  return __dmul_rn(a, b);
#else
  return a * b;
#endif
}

NVRAR_HD double div_rn(double a, double b) {
#if defined(__CUDA_ARCH__)
  return __ddiv_rn(a, b);
#else
  return a / b;
#endif
}

NVRAR_HD uint64_t mul_hi(uint64_t a, uint64_t b) {
#if defined(__CUDA_ARCH__)
  return __umul64hi(a, b);
#else
  return static_cast<uint64_t>((static_cast<unsigned __int128>(a) * b) >> 64);
#endif
}

NVRAR_HD uint32_t mul_hi32(uint32_t a, uint32_t b) {
  return static_cast<uint32_t>((static_cast<uint64_t>(a) * b) >> 32);
}

NVRAR_HD float bf16_to_float(uint16_t bits) {
  const uint32_t wide = static_cast<uint32_t>(bits) << 16;
  float f;
  std::memcpy(&f, &wide, sizeof f);
  return f;
}

NVRAR_HD bool bf16_is_nan(uint16_t bits) { return (bits & 0x7F80u) == 0x7F80u && (bits & 0x7Fu) != 0; }

// A 16-bit key whose unsigned order is the logits' order: larger key = larger logit. -0 -> +0's key, NaN -> 0.
NVRAR_HD uint32_t order_key(uint16_t bits) {
  if (bf16_is_nan(bits)) return 0;
  if (bits == 0x8000u) bits = 0;
  return (bits & 0x8000u) ? static_cast<uint32_t>(static_cast<uint16_t>(~bits)) : static_cast<uint32_t>(bits | 0x8000u);
}

// The logit of a key (inverse of order_key for every key but 0, which stands for NaN and for bf16 0xFFFF).
NVRAR_HD float key_logit(uint32_t key) {
  const uint16_t bits = (key & 0x8000u) ? static_cast<uint16_t>(key & 0x7FFFu) : static_cast<uint16_t>(~key);
  return bf16_to_float(bits);
}

// exp(d) for d in [-32, 0], to about 1 ulp, every operation rounded on its own (file comment).
NVRAR_HD double exp_rn(double d) {
  constexpr double kInvLn2 = 1.44269504088896338700e+00;
  constexpr double kLn2Hi = 6.93147180369123816490e-01;  // ln 2 split so that k * kLn2Hi is exact for |k| < 2^11
  constexpr double kLn2Lo = 1.90821492927058770002e-10;
  double k = mul_rn(d, kInvLn2);
  k = k < 0 ? -static_cast<double>(static_cast<int64_t>(0.5 - k)) : static_cast<double>(static_cast<int64_t>(k + 0.5));
  const double r = add_rn(add_rn(d, -mul_rn(k, kLn2Hi)), -mul_rn(k, kLn2Lo));  // |r| <= ln(2) / 2
  // Taylor series to r^13 / 13!: the remainder is below 2e-16 for |r| <= 0.3466.
  double p = 1.0 / 6227020800.0;
  constexpr double kInverseFactorials[13] = {1.0 / 479001600.0, 1.0 / 39916800.0, 1.0 / 3628800.0, 1.0 / 362880.0,
                                             1.0 / 40320.0,     1.0 / 5040.0,     1.0 / 720.0,     1.0 / 120.0,
                                             1.0 / 24.0,        1.0 / 6.0,        0.5,             1.0,
                                             1.0};
  for (double c : kInverseFactorials) p = add_rn(mul_rn(p, r), c);
  const int64_t exponent = static_cast<int64_t>(k) + 1023;  // k in [-47, 0]: a normal power of two
  const uint64_t bits = static_cast<uint64_t>(exponent) << 52;
  double scale;
  std::memcpy(&scale, &bits, sizeof scale);
  return mul_rn(p, scale);
}

// The fixed-point weight of a token of logit x in a row whose largest logit is x_max, at temperature t > 0.
NVRAR_HD uint64_t token_weight(float x, float x_max, float temperature) {
  constexpr double kOne = static_cast<double>(uint64_t{1} << kWeightBits);
  if (x == x_max) return uint64_t{1} << kWeightBits;  // also when x_max is infinite
  const double d = div_rn(add_rn(static_cast<double>(x), -static_cast<double>(x_max)), static_cast<double>(temperature));
  if (!(d >= -32.0)) return 0;  // NaN, -inf, or a weight below 1
  return static_cast<uint64_t>(mul_rn(exp_rn(d), kOne));
}

// top_p in (0, 1] as an integer in units of 2^-32, at least 1 (kTopPOne: no top-p cut).
NVRAR_HD uint64_t top_p_fixed(float top_p) {
  if (top_p >= 1.0f) return kTopPOne;
  const double scaled = mul_rn(static_cast<double>(top_p), 4294967296.0);  // exact: a float times 2^32
  const uint64_t rounded = static_cast<uint64_t>(add_rn(scaled, 0.5));
  return rounded == 0 ? 1 : rounded;
}

// Top-p keeps a token when the weight of the tokens ranked before it is below p x total (HF's rule: the boundary
// token that brings the sum to exactly p is kept, the next one is not). Exact: above x 2^32 < p_fixed x total in
// 128 bits.
NVRAR_HD bool top_p_keeps(uint64_t above, uint64_t total, uint64_t p_fixed) {
  const uint64_t a_hi = above >> 32, a_lo = above << 32;
  const uint64_t b_hi = mul_hi(p_fixed, total), b_lo = p_fixed * total;
  return a_hi < b_hi || (a_hi == b_hi && a_lo < b_lo);
}

// Philox4x32-10 of counter c and key (k0, k1); out: the four 32-bit outputs.
NVRAR_HD void philox4x32_10(const uint32_t c_in[4], uint32_t k0, uint32_t k1, uint32_t out[4]) {
  constexpr uint32_t kM0 = 0xD2511F53u, kM1 = 0xCD9E8D57u, kW0 = 0x9E3779B9u, kW1 = 0xBB67AE85u;
  uint32_t c0 = c_in[0], c1 = c_in[1], c2 = c_in[2], c3 = c_in[3];
  for (int round = 0; round < 10; ++round) {
    if (round > 0) {
      k0 += kW0;
      k1 += kW1;
    }
    const uint32_t hi0 = mul_hi32(kM0, c0), lo0 = kM0 * c0;
    const uint32_t hi1 = mul_hi32(kM1, c2), lo1 = kM1 * c2;
    c0 = hi1 ^ c1 ^ k0;
    c1 = lo1;
    c2 = hi0 ^ c3 ^ k1;
    c3 = lo0;
  }
  out[0] = c0;
  out[1] = c1;
  out[2] = c2;
  out[3] = c3;
}

// The 64 random bits of the token at `position` of sequence `sequence` under `seed`.
NVRAR_HD uint64_t draw_bits(uint64_t seed, uint32_t sequence, uint32_t position) {
  const uint32_t counter[4] = {position, 0u, sequence, 0u};
  uint32_t out[4];
  philox4x32_10(counter, static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32), out);
  return (static_cast<uint64_t>(out[0]) << 32) | out[1];
}

// A uniform integer in [0, total) from 64 random bits (bias below total / 2^64).
NVRAR_HD uint64_t draw_below(uint64_t bits, uint64_t total) { return mul_hi(bits, total); }

}  // namespace nvrar::engine::sampling
