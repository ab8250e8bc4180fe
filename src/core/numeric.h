// Element types as 16/32-bit storage plus exact float conversions, identical on host and device.
//
// bf16 and fp16 are stored as their raw 16-bit patterns so that the same code compiles with g++ and nvcc.
// Conversions round to nearest even, the same rounding the CUDA intrinsics use, so the CPU executor and the
// GPU kernels produce the same bits for the same schedule.
#pragma once

#include <cstdint>
#include <cstring>

#include "core/hd.h"
#include "nvrar/types.h"

#if defined(__CUDACC__)
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#endif

namespace nvrar::core {

struct Bf16 {
  uint16_t bits;
};
struct Fp16 {
  uint16_t bits;
};

NVRAR_HD uint32_t float_bits(float f) {
#if defined(__CUDA_ARCH__)
  return __float_as_uint(f);
#else
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
#endif
}

NVRAR_HD float bits_float(uint32_t u) {
#if defined(__CUDA_ARCH__)
  return __uint_as_float(u);
#else
  float f;
  std::memcpy(&f, &u, 4);
  return f;
#endif
}

NVRAR_HD float to_float(float x) { return x; }
NVRAR_HD float to_float(Bf16 x) { return bits_float(static_cast<uint32_t>(x.bits) << 16); }
NVRAR_HD float to_float(Fp16 x) {
#if defined(__CUDA_ARCH__)
  return __half2float(__ushort_as_half(x.bits));
#else
  const uint32_t sign = static_cast<uint32_t>(x.bits & 0x8000u) << 16;
  const uint32_t exp_mant = x.bits & 0x7fffu;
  if (exp_mant >= 0x7c00u) return bits_float(sign | 0x7f800000u | ((exp_mant & 0x3ffu) << 13));  // inf, nan
  if (exp_mant >= 0x0400u) return bits_float(sign | ((exp_mant << 13) + 0x38000000u));  // normal: rebias 15->127
  // Subnormal or zero: value is exp_mant * 2^-24, exact in float.
  const float magnitude = static_cast<float>(exp_mant) * 5.9604644775390625e-8f;
  return bits_float(sign | float_bits(magnitude));
#endif
}

template <typename T>
NVRAR_HD T from_float(float f);

template <>
NVRAR_HD float from_float<float>(float f) {
  return f;
}

template <>
NVRAR_HD Bf16 from_float<Bf16>(float f) {
#if defined(__CUDA_ARCH__)
  return Bf16{__bfloat16_as_ushort(__float2bfloat16_rn(f))};
#else
  uint32_t u = float_bits(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return Bf16{0x7fffu};  // canonical NaN, as the CUDA intrinsic gives
  u += 0x7fffu + ((u >> 16) & 1u);  // round to nearest even on the 16 dropped bits
  return Bf16{static_cast<uint16_t>(u >> 16)};
#endif
}

template <>
NVRAR_HD Fp16 from_float<Fp16>(float f) {
#if defined(__CUDA_ARCH__)
  return Fp16{__half_as_ushort(__float2half_rn(f))};
#else
  uint32_t x = float_bits(f);
  const uint32_t sign = (x >> 16) & 0x8000u;
  x &= 0x7fffffffu;
  if (x > 0x7f800000u) return Fp16{0x7fffu};  // canonical NaN, as the CUDA intrinsic gives
  if (x == 0x7f800000u) return Fp16{static_cast<uint16_t>(sign | 0x7c00u)};
  if (x >= 0x477ff000u) return Fp16{static_cast<uint16_t>(sign | 0x7c00u)};  // >= 65520 rounds to infinity
  if (x < 0x38800000u) {
    // Result is subnormal (or zero): adding 0.5 puts the half's 2^-24 ulp at the float's last mantissa bit,
    // so the float adder performs the round-to-nearest-even for us.
    const float shifted = bits_float(x) + 0.5f;
    return Fp16{static_cast<uint16_t>(sign | (float_bits(shifted) - 0x3f000000u))};
  }
  const uint32_t mant_odd = (x >> 13) & 1u;
  x += 0xc8000fffu + mant_odd;  // rebias exponent 127->15 and round to nearest even on 13 dropped bits
  return Fp16{static_cast<uint16_t>(sign | (x >> 13))};
#endif
}

// Maps a runtime DataType onto its storage type: visit_dtype(dt, [&](auto tag) { using T = decltype(tag); });
template <typename F>
decltype(auto) visit_dtype(DataType dtype, F&& f) {
  switch (dtype) {
    case DataType::kFloat32:
      return f(float{});
    case DataType::kBFloat16:
      return f(Bf16{});
    case DataType::kFloat16:
      return f(Fp16{});
  }
  throw Error("nvrar: unsupported dtype value " + std::to_string(static_cast<int>(dtype)));
}

}  // namespace nvrar::core
