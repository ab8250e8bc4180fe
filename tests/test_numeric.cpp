// Checks the bf16/fp16/fp32 conversions of core/numeric.h against references written here with double
// arithmetic, deliberately unlike the bit tricks under test, so that a shared mistake is unlikely. The CPU
// executor and the GPU kernels must round identically, so every check is bit-exact.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <type_traits>
#include <vector>

#include "core/numeric.h"
#include "nvrar/types.h"

namespace nvrar::core {
namespace {

// A binary floating-point format with an implicit leading bit, IEEE-style subnormals, inf and NaN.
struct Format {
  int mant_bits;
  int exp_bits;
  int bias() const { return (1 << (exp_bits - 1)) - 1; }
  int emin() const { return 1 - bias(); }  // exponent of the smallest normal
  int emax() const { return bias(); }      // exponent of the largest finite binade
  uint32_t exp_all_ones() const { return (1u << exp_bits) - 1; }
  uint32_t sign_bit() const { return 1u << (mant_bits + exp_bits); }
};
constexpr Format kHalf{10, 5};
constexpr Format kBrain{7, 8};

// Value of a bit pattern, decoded field by field.
double decode(const Format& f, uint32_t bits) {
  const bool negative = (bits & f.sign_bit()) != 0;
  const uint32_t e = (bits >> f.mant_bits) & f.exp_all_ones();
  const uint32_t m = bits & ((1u << f.mant_bits) - 1);
  double v;
  if (e == f.exp_all_ones()) {
    v = m == 0 ? std::numeric_limits<double>::infinity() : std::numeric_limits<double>::quiet_NaN();
  } else if (e == 0) {
    v = std::ldexp(static_cast<double>(m), f.emin() - f.mant_bits);  // subnormal: no implicit bit
  } else {
    v = std::ldexp(static_cast<double>((1u << f.mant_bits) + m), static_cast<int>(e) - f.bias() - f.mant_bits);
  }
  return negative ? -v : v;
}

bool is_nan_bits(const Format& f, uint32_t bits) {
  return ((bits >> f.mant_bits) & f.exp_all_ones()) == f.exp_all_ones() && (bits & ((1u << f.mant_bits) - 1)) != 0;
}

// Round-to-nearest-even of a finite or infinite double into format f, returned as a bit pattern. Finds the two
// representable neighbours lo <= |x| < lo + ulp with an unbounded exponent range above, picks the nearer one
// (ties to the even multiple of ulp), and only then checks for overflow, as IEEE 754 specifies.
uint32_t encode_rne(const Format& f, double x) {
  const uint32_t sign = std::signbit(x) ? f.sign_bit() : 0;
  const double a = std::fabs(x);
  const uint32_t inf = sign | (f.exp_all_ones() << f.mant_bits);
  if (std::isinf(a)) return inf;
  if (a == 0) return sign;
  const double min_normal = std::ldexp(1.0, f.emin());
  int exponent = f.emin();  // binade of a; subnormals share the smallest normal's ulp
  if (a >= min_normal) {
    int e2;
    std::frexp(a, &e2);  // a = m * 2^e2, m in [0.5, 1)
    exponent = e2 - 1;
  }
  const double ulp = std::ldexp(1.0, exponent - f.mant_bits);
  const double steps = std::floor(a / ulp);  // exact: a / ulp only shifts the exponent
  const double lo = steps * ulp;
  const double hi = lo + ulp;
  double r;
  if (a - lo < hi - a) {
    r = lo;
  } else if (a - lo > hi - a) {
    r = hi;
  } else {
    r = std::fmod(steps, 2.0) == 0 ? lo : hi;
  }
  if (r >= std::ldexp(1.0, f.emax() + 1)) return inf;
  if (r == 0) return sign;
  if (r < min_normal) return sign | static_cast<uint32_t>(r / std::ldexp(1.0, f.emin() - f.mant_bits));
  int e2;
  std::frexp(r, &e2);
  const int e = e2 - 1;
  const uint32_t mant = static_cast<uint32_t>(r / std::ldexp(1.0, e - f.mant_bits)) - (1u << f.mant_bits);
  return sign | (static_cast<uint32_t>(e + f.bias()) << f.mant_bits) | mant;
}

std::string hex(uint32_t v) {
  char buf[16];
  std::snprintf(buf, sizeof(buf), "0x%08x", v);
  return buf;
}

// Checks from_float<T>(x) for one float against the reference; returns false (with a message) on mismatch so
// that the big loops report only the first few failures instead of millions.
template <typename T>
bool rounds_like_reference(const Format& f, float x, std::string* why) {
  const uint32_t got = from_float<T>(x).bits;
  if (std::isnan(x)) {
    if (is_nan_bits(f, got)) return true;
    *why = "NaN input " + hex(float_bits(x)) + " gave non-NaN " + hex(got);
    return false;
  }
  const uint32_t want = encode_rne(f, static_cast<double>(x));
  if (got == want) return true;
  char buf[160];
  std::snprintf(buf, sizeof(buf), "input %s (%.9g): got %s, reference %s", hex(float_bits(x)).c_str(),
                static_cast<double>(x), hex(got).c_str(), hex(want).c_str());
  *why = buf;
  return false;
}

template <typename T>
void check_many(const Format& f, const std::vector<float>& inputs, const char* what) {
  int failures = 0;
  for (float x : inputs) {
    std::string why;
    if (!rounds_like_reference<T>(f, x, &why)) {
      ADD_FAILURE() << what << ": " << why;
      if (++failures >= 10) FAIL() << what << ": stopping after 10 mismatches";
    }
  }
}

// Floats around every representable value of format f: the value itself, the exact midpoint to its upper
// neighbour (a tie), and the floats one ulp (of float) either side of value and midpoint. This enumerates
// every tie of the format, including the ones that carry into the next binade and into infinity.
std::vector<float> neighbourhoods(const Format& f) {
  std::vector<float> out;
  const uint32_t finite_end = f.exp_all_ones() << f.mant_bits;  // first inf pattern
  for (uint32_t b = 0; b < finite_end; ++b) {
    const double v = decode(f, b);
    const double next = b + 1 < finite_end ? decode(f, b + 1) : std::ldexp(1.0, f.emax() + 1);
    const double mid = (v + next) / 2;
    for (double c : {v, mid}) {
      const float cf = static_cast<float>(c);
      EXPECT_EQ(static_cast<double>(cf), c) << "value/midpoint not exact in float: test bug";
      for (float y : {cf, std::nextafter(cf, 0.0f), std::nextafter(cf, std::numeric_limits<float>::infinity())}) {
        out.push_back(y);
        out.push_back(-y);
      }
    }
  }
  return out;
}

// Random floats whose magnitude lies in [2^lo_exp, 2^hi_exp): uniform exponent, uniform mantissa and sign.
std::vector<float> random_in_binades(std::mt19937& rng, std::size_t n, int lo_exp, int hi_exp) {
  std::uniform_int_distribution<int> exp_dist(lo_exp, hi_exp - 1);
  std::uniform_int_distribution<uint32_t> mant_dist(0, (1u << 23) - 1);
  std::vector<float> out(n);
  for (auto& x : out) {
    const uint32_t e = static_cast<uint32_t>(exp_dist(rng) + 127);
    const uint32_t sign = (rng() & 1u) << 31;
    x = bits_float(sign | (e << 23) | mant_dist(rng));
  }
  return out;
}

std::vector<float> random_bit_patterns(std::mt19937& rng, std::size_t n) {
  std::vector<float> out(n);
  for (auto& x : out) x = bits_float(static_cast<uint32_t>(rng()));
  return out;
}

std::vector<float> special_floats() {
  const float inf = std::numeric_limits<float>::infinity();
  return {0.0f,
          -0.0f,
          inf,
          -inf,
          std::numeric_limits<float>::quiet_NaN(),
          -std::numeric_limits<float>::quiet_NaN(),
          std::numeric_limits<float>::signaling_NaN(),
          bits_float(0x7f800001u),  // smallest-payload NaN: dropping low bits must not turn it into inf
          bits_float(0xff800001u),
          bits_float(0x7fffffffu),
          std::numeric_limits<float>::max(),
          -std::numeric_limits<float>::max(),
          std::numeric_limits<float>::min(),
          std::numeric_limits<float>::denorm_min(),
          -std::numeric_limits<float>::denorm_min(),
          1.0f,
          -1.0f,
          65504.0f,
          65519.99f,
          65520.0f,
          -65520.0f,
          65536.0f,
          std::ldexp(1.0f, -24),
          std::ldexp(1.0f, -25),
          std::nextafter(std::ldexp(1.0f, -25), 1.0f),
          std::ldexp(1.5f, -24),
          std::ldexp(1.0f, -14),
          std::ldexp(1023.5f, -24),
          std::ldexp(1.0f, -133),
          std::ldexp(1.0f, -134),
          std::ldexp(1.5f, -133),
          std::ldexp(1.0f, -126)};
}

// ---- fp16 -> float ----

TEST(NumericFp16, ToFloatMatchesFieldDecodingForAllPatterns) {
  for (uint32_t b = 0; b <= 0xffffu; ++b) {
    const float got = to_float(Fp16{static_cast<uint16_t>(b)});
    const double want = decode(kHalf, b);
    if (std::isnan(want)) {
      ASSERT_TRUE(std::isnan(got)) << "fp16 " << hex(b);
      continue;
    }
    // Bit comparison also distinguishes -0 from +0.
    ASSERT_EQ(float_bits(got), float_bits(static_cast<float>(want))) << "fp16 " << hex(b) << " want " << want;
  }
}

TEST(NumericFp16, ToFloatSpotValues) {
  EXPECT_EQ(to_float(Fp16{0x3c00}), 1.0f);
  EXPECT_EQ(to_float(Fp16{0xc000}), -2.0f);
  EXPECT_EQ(to_float(Fp16{0x7bff}), 65504.0f);
  EXPECT_EQ(to_float(Fp16{0x0001}), std::ldexp(1.0f, -24));
  EXPECT_EQ(to_float(Fp16{0x03ff}), std::ldexp(1023.0f, -24));
  EXPECT_EQ(to_float(Fp16{0x0400}), std::ldexp(1.0f, -14));
  EXPECT_EQ(float_bits(to_float(Fp16{0x8000})), 0x80000000u);
  EXPECT_EQ(to_float(Fp16{0x7c00}), std::numeric_limits<float>::infinity());
  EXPECT_EQ(to_float(Fp16{0xfc00}), -std::numeric_limits<float>::infinity());
  EXPECT_TRUE(std::isnan(to_float(Fp16{0x7c01})));
  EXPECT_TRUE(std::isnan(to_float(Fp16{0xfe00})));
}

TEST(NumericBf16, ToFloatMatchesFieldDecodingForAllPatterns) {
  for (uint32_t b = 0; b <= 0xffffu; ++b) {
    const float got = to_float(Bf16{static_cast<uint16_t>(b)});
    const double want = decode(kBrain, b);
    if (std::isnan(want)) {
      ASSERT_TRUE(std::isnan(got)) << "bf16 " << hex(b);
      continue;
    }
    ASSERT_EQ(float_bits(got), float_bits(static_cast<float>(want))) << "bf16 " << hex(b) << " want " << want;
  }
}

// ---- float -> fp16 / bf16 ----

TEST(NumericFp16, FromFloatSpotValues) {
  // Hand-computed expectations, independent of both the code and the reference above.
  EXPECT_EQ(from_float<Fp16>(1.0f).bits, 0x3c00);
  EXPECT_EQ(from_float<Fp16>(-2.0f).bits, 0xc000);
  EXPECT_EQ(from_float<Fp16>(0.0f).bits, 0x0000);
  EXPECT_EQ(from_float<Fp16>(-0.0f).bits, 0x8000);
  EXPECT_EQ(from_float<Fp16>(65504.0f).bits, 0x7bff);
  EXPECT_EQ(from_float<Fp16>(65519.99f).bits, 0x7bff);  // just below the midpoint to 65536
  EXPECT_EQ(from_float<Fp16>(65520.0f).bits, 0x7c00);   // the midpoint ties to the even neighbour: infinity
  EXPECT_EQ(from_float<Fp16>(-65520.0f).bits, 0xfc00);
  EXPECT_EQ(from_float<Fp16>(std::numeric_limits<float>::max()).bits, 0x7c00);
  EXPECT_EQ(from_float<Fp16>(std::numeric_limits<float>::infinity()).bits, 0x7c00);
  EXPECT_EQ(from_float<Fp16>(-std::numeric_limits<float>::infinity()).bits, 0xfc00);
  EXPECT_EQ(from_float<Fp16>(std::ldexp(1.0f, -24)).bits, 0x0001);                        // smallest subnormal
  EXPECT_EQ(from_float<Fp16>(std::ldexp(1.0f, -25)).bits, 0x0000);                        // tie to even: 0
  EXPECT_EQ(from_float<Fp16>(std::nextafter(std::ldexp(1.0f, -25), 1.0f)).bits, 0x0001);  // above the tie
  EXPECT_EQ(from_float<Fp16>(std::ldexp(1.5f, -24)).bits, 0x0002);                        // tie to even: 2
  EXPECT_EQ(from_float<Fp16>(std::ldexp(1023.5f, -24)).bits, 0x0400);  // subnormal rounds up to smallest normal
  EXPECT_EQ(from_float<Fp16>(std::numeric_limits<float>::denorm_min()).bits, 0x0000);
  EXPECT_EQ(from_float<Fp16>(-std::numeric_limits<float>::denorm_min()).bits, 0x8000);
  EXPECT_EQ(from_float<Fp16>(1.0f + std::ldexp(1.0f, -11)).bits, 0x3c00);      // tie, even mantissa stays
  EXPECT_EQ(from_float<Fp16>(1.0f + 3 * std::ldexp(1.0f, -11)).bits, 0x3c02);  // tie, odd mantissa rounds up
  EXPECT_EQ(from_float<Fp16>(2.0f - std::ldexp(1.0f, -12)).bits, 0x4000);      // carries into the next binade
  EXPECT_TRUE(is_nan_bits(kHalf, from_float<Fp16>(std::numeric_limits<float>::quiet_NaN()).bits));
  EXPECT_TRUE(is_nan_bits(kHalf, from_float<Fp16>(bits_float(0x7f800001u)).bits));
  EXPECT_TRUE(is_nan_bits(kHalf, from_float<Fp16>(bits_float(0xff800001u)).bits));
}

TEST(NumericBf16, FromFloatSpotValues) {
  EXPECT_EQ(from_float<Bf16>(1.0f).bits, 0x3f80);
  EXPECT_EQ(from_float<Bf16>(-0.0f).bits, 0x8000);
  EXPECT_EQ(from_float<Bf16>(bits_float(0x3f808000u)).bits, 0x3f80);  // tie, even mantissa stays
  EXPECT_EQ(from_float<Bf16>(bits_float(0x3f818000u)).bits, 0x3f82);  // tie, odd mantissa rounds up
  EXPECT_EQ(from_float<Bf16>(bits_float(0x3f808001u)).bits, 0x3f81);
  EXPECT_EQ(from_float<Bf16>(bits_float(0x3fff8000u)).bits, 0x4000);  // carries into the next binade
  EXPECT_EQ(from_float<Bf16>(bits_float(0x7f7f7fffu)).bits, 0x7f7f);  // largest finite bf16
  EXPECT_EQ(from_float<Bf16>(bits_float(0x7f7f8000u)).bits, 0x7f80);  // tie above it goes to infinity
  EXPECT_EQ(from_float<Bf16>(std::numeric_limits<float>::max()).bits, 0x7f80);
  EXPECT_EQ(from_float<Bf16>(-std::numeric_limits<float>::max()).bits, 0xff80);
  EXPECT_EQ(from_float<Bf16>(std::numeric_limits<float>::infinity()).bits, 0x7f80);
  EXPECT_EQ(from_float<Bf16>(bits_float(0x00008000u)).bits, 0x0000);  // subnormal tie to even: 0
  EXPECT_EQ(from_float<Bf16>(bits_float(0x00018000u)).bits, 0x0002);  // subnormal tie to even: 2
  EXPECT_EQ(from_float<Bf16>(bits_float(0x007f8000u)).bits, 0x0080);  // subnormal rounds up to smallest normal
  EXPECT_TRUE(is_nan_bits(kBrain, from_float<Bf16>(std::numeric_limits<float>::quiet_NaN()).bits));
  EXPECT_TRUE(is_nan_bits(kBrain, from_float<Bf16>(bits_float(0x7f800001u)).bits));  // would round to inf
  EXPECT_TRUE(is_nan_bits(kBrain, from_float<Bf16>(bits_float(0xffffffffu)).bits));  // would carry out
}

TEST(NumericFp16, FromFloatSpecialsMatchReference) { check_many<Fp16>(kHalf, special_floats(), "fp16 specials"); }
TEST(NumericBf16, FromFloatSpecialsMatchReference) { check_many<Bf16>(kBrain, special_floats(), "bf16 specials"); }

TEST(NumericFp16, FromFloatEveryTieAndNeighbourMatchesReference) {
  check_many<Fp16>(kHalf, neighbourhoods(kHalf), "fp16 neighbourhoods");
}
TEST(NumericBf16, FromFloatEveryTieAndNeighbourMatchesReference) {
  check_many<Bf16>(kBrain, neighbourhoods(kBrain), "bf16 neighbourhoods");
}

TEST(NumericFp16, FromFloatRandomBitPatternsMatchReference) {
  std::mt19937 rng(20240601);
  check_many<Fp16>(kHalf, random_bit_patterns(rng, 3'000'000), "fp16 random bits");
  // Uniform bit patterns mostly overflow or flush to zero in fp16; also cover fp16's own range densely,
  // from below its smallest subnormal to just past its largest finite value.
  check_many<Fp16>(kHalf, random_in_binades(rng, 3'000'000, -27, 17), "fp16 random in range");
}

TEST(NumericBf16, FromFloatRandomBitPatternsMatchReference) {
  std::mt19937 rng(20240602);
  check_many<Bf16>(kBrain, random_bit_patterns(rng, 4'000'000), "bf16 random bits");
  // Float subnormals (exponent field 0) are rare among random bit patterns; bf16 rounds them too.
  std::vector<float> tiny(1'000'000);
  for (auto& x : tiny) x = bits_float((static_cast<uint32_t>(rng()) & 0x807fffffu));
  check_many<Bf16>(kBrain, tiny, "bf16 random float subnormals");
}

TEST(NumericFp32, FromFloatIsIdentityBitForBit) {
  std::mt19937 rng(7);
  for (int i = 0; i < 100000; ++i) {
    const uint32_t b = static_cast<uint32_t>(rng());
    const float x = bits_float(b);
    ASSERT_EQ(float_bits(from_float<float>(x)), b);
    ASSERT_EQ(float_bits(to_float(x)), b);
  }
}

// ---- round trips ----

template <typename T>
void check_round_trip(const Format& f, const char* name) {
  for (uint32_t b = 0; b <= 0xffffu; ++b) {
    if (is_nan_bits(f, b)) continue;
    const float x = to_float(T{static_cast<uint16_t>(b)});
    const uint32_t back = from_float<T>(x).bits;
    ASSERT_EQ(back, b) << name << " pattern " << hex(b) << " -> " << x;
    ASSERT_EQ(float_bits(to_float(T{static_cast<uint16_t>(back)})), float_bits(x)) << name << " " << hex(b);
  }
}

TEST(NumericFp16, RoundTripIsExactForEveryNonNanPattern) { check_round_trip<Fp16>(kHalf, "fp16"); }
TEST(NumericBf16, RoundTripIsExactForEveryNonNanPattern) { check_round_trip<Bf16>(kBrain, "bf16"); }

TEST(NumericNan, NanPatternsStayNanThroughRoundTrip) {
  for (uint32_t b = 0; b <= 0xffffu; ++b) {
    if (is_nan_bits(kHalf, b)) {
      const float x = to_float(Fp16{static_cast<uint16_t>(b)});
      ASSERT_TRUE(std::isnan(x)) << hex(b);
      ASSERT_TRUE(is_nan_bits(kHalf, from_float<Fp16>(x).bits)) << hex(b);
    }
    if (is_nan_bits(kBrain, b)) {
      const float x = to_float(Bf16{static_cast<uint16_t>(b)});
      ASSERT_TRUE(std::isnan(x)) << hex(b);
      ASSERT_TRUE(is_nan_bits(kBrain, from_float<Bf16>(x).bits)) << hex(b);
    }
  }
}

// ---- dtype helpers ----

TEST(NumericDtype, VisitMapsEachTypeToItsStorage) {
  for (DataType dt : {DataType::kFloat32, DataType::kBFloat16, DataType::kFloat16}) {
    ASSERT_TRUE(dtype_valid(dt));
    const std::size_t size = visit_dtype(dt, [](auto tag) { return sizeof(tag); });
    EXPECT_EQ(size, dtype_size(dt)) << dtype_name(dt);
    const bool right_type = visit_dtype(dt, [dt](auto tag) {
      using T = decltype(tag);
      switch (dt) {
        case DataType::kFloat32:
          return std::is_same_v<T, float>;
        case DataType::kBFloat16:
          return std::is_same_v<T, Bf16>;
        case DataType::kFloat16:
          return std::is_same_v<T, Fp16>;
      }
      return false;
    });
    EXPECT_TRUE(right_type) << dtype_name(dt);
  }
}

TEST(NumericDtype, SizesAndNames) {
  EXPECT_EQ(dtype_size(DataType::kFloat32), 4u);
  EXPECT_EQ(dtype_size(DataType::kBFloat16), 2u);
  EXPECT_EQ(dtype_size(DataType::kFloat16), 2u);
  EXPECT_STREQ(dtype_name(DataType::kFloat32), "float32");
  EXPECT_STREQ(dtype_name(DataType::kBFloat16), "bfloat16");
  EXPECT_STREQ(dtype_name(DataType::kFloat16), "float16");
}

TEST(NumericDtype, InvalidValuesAreRejected) {
  for (int raw : {3, 7, -1, 1000}) {
    const auto dt = static_cast<DataType>(raw);
    EXPECT_FALSE(dtype_valid(dt)) << raw;
    EXPECT_STREQ(dtype_name(dt), "invalid") << raw;
    EXPECT_THROW(dtype_size(dt), Error) << raw;
    bool called = false;
    try {
      visit_dtype(dt, [&](auto) { called = true; });
      ADD_FAILURE() << "visit_dtype accepted dtype value " << raw;
    } catch (const Error& e) {
      // The message is what a user of the C API sees: it must name the offending value.
      EXPECT_NE(std::string(e.what()).find(std::to_string(raw)), std::string::npos) << e.what();
    }
    EXPECT_FALSE(called) << raw;
    try {
      dtype_size(dt);
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(std::to_string(raw)), std::string::npos) << e.what();
    }
  }
}

}  // namespace
}  // namespace nvrar::core
