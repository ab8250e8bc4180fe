#include "check/verify.h"

#include <cmath>
#include <cstring>
#include <random>

#include "core/numeric.h"

namespace nvrar::check {

void fill_random(void* out, std::size_t count, DataType dtype, uint64_t seed, int rank) {
  std::mt19937_64 rng(seed * 0x9E3779B97F4A7C15ull + static_cast<uint64_t>(rank) * 0xD1B54A32D192ED03ull + 1);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  core::visit_dtype(dtype, [&](auto tag) {
    using T = decltype(tag);
    T* p = static_cast<T*>(out);
    for (std::size_t i = 0; i < count; ++i) p[i] = core::from_float<T>(dist(rng));
  });
}

double element_as_double(const void* data, std::size_t i, DataType dtype) {
  return core::visit_dtype(dtype, [&](auto tag) -> double {
    using T = decltype(tag);
    return static_cast<double>(core::to_float(static_cast<const T*>(data)[i]));
  });
}

Reference reference_sum(const std::vector<const void*>& inputs, std::size_t count, DataType dtype) {
  Reference ref;
  ref.sum.assign(count, 0.0);
  ref.abs_sum.assign(count, 0.0);
  for (const void* in : inputs) {
    for (std::size_t i = 0; i < count; ++i) {
      const double x = element_as_double(in, i, dtype);
      ref.sum[i] += x;
      ref.abs_sum[i] += std::fabs(x);
    }
  }
  return ref;
}

double tolerance(double abs_sum, DataType dtype, int roundings, int nranks) {
  double unit_roundoff = 0;
  switch (dtype) {
    case DataType::kFloat32:
      unit_roundoff = std::ldexp(1.0, -24);
      break;
    case DataType::kBFloat16:
      unit_roundoff = std::ldexp(1.0, -8);
      break;
    case DataType::kFloat16:
      unit_roundoff = std::ldexp(1.0, -11);
      break;
  }
  const double fp32_accumulation = nranks * std::ldexp(1.0, -24);
  return abs_sum * (roundings * unit_roundoff + fp32_accumulation) + 1e-30;
}

std::size_t count_wrong(const void* out, const Reference& ref, std::size_t count, DataType dtype, int roundings,
                        int nranks) {
  std::size_t wrong = 0;
  for (std::size_t i = 0; i < count; ++i) {
    const double got = element_as_double(out, i, dtype);
    const double err = std::fabs(got - ref.sum[i]);
    if (!(err <= tolerance(ref.abs_sum[i], dtype, roundings, nranks))) ++wrong;
  }
  return wrong;
}

int hierarchical_roundings(int nodes) {
  int steps = 0;
  while ((2 << steps) <= nodes) ++steps;
  const bool folded = (nodes & (nodes - 1)) != 0;
  return 1 + steps + (folded ? 1 : 0);
}

}  // namespace nvrar::check
