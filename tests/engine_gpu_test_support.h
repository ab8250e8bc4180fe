// Helpers shared by the engine's GPU kernel tests (test_engine_gpu, test_flash_prefill_gpu, test_gemm_gpu,
// test_fp32_activations_gpu): the skip without a device, bf16 bits to and from float, seeded random bf16 data, device
// copies that report failures as test failures, and a float64 reference of a linear layer.
#pragma once

#include <gtest/gtest.h>

#include <cuda_runtime_api.h>

#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "core/numeric.h"

namespace nvrar::engine::test_support {

inline bool have_gpu() {
  int n = 0;
  return cudaGetDeviceCount(&n) == cudaSuccess && n > 0;
}

#define REQUIRE_GPU() \
  if (!::nvrar::engine::test_support::have_gpu()) GTEST_SKIP() << "no CUDA device"

inline uint16_t bf(float v) { return core::from_float<core::Bf16>(v).bits; }
inline float fl(uint16_t b) { return core::to_float(core::Bf16{b}); }

// n bf16 values uniform in [-scale, scale), from seed.
inline std::vector<uint16_t> random_bf16(std::size_t n, uint64_t seed, float scale = 1.0f) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> u(-scale, scale);
  std::vector<uint16_t> v(n);
  for (auto& x : v) x = bf(u(rng));
  return v;
}

// A device copy of v (16 bytes of slack for vector loads past the end); the caller frees it.
template <typename T>
T* upload(const std::vector<T>& v) {
  T* d = nullptr;
  EXPECT_EQ(cudaMalloc(reinterpret_cast<void**>(&d), v.size() * sizeof(T) + 16), cudaSuccess);
  EXPECT_EQ(cudaMemcpy(d, v.data(), v.size() * sizeof(T), cudaMemcpyHostToDevice), cudaSuccess);
  return d;
}

// n elements of d, after the device finished.
template <typename T>
std::vector<T> download(const T* d, std::size_t n) {
  std::vector<T> v(n);
  EXPECT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  EXPECT_EQ(cudaMemcpy(v.data(), d, n * sizeof(T), cudaMemcpyDeviceToHost), cudaSuccess);
  return v;
}

// float64 reference of y = x . w^T (x: rows x k, w: n x k, bf16 bits) and, per element, the sum of |products|;
// tolerance(i) allows a bf16 rounding of the result plus fp32 accumulation error.
struct LinearReference {
  std::vector<double> value, magnitude;
  LinearReference(const std::vector<uint16_t>& x, const std::vector<uint16_t>& w, int64_t rows, int64_t n, int64_t k)
      : value(rows * n), magnitude(rows * n) {
    for (int64_t i = 0; i < rows; ++i)
      for (int64_t j = 0; j < n; ++j)
        for (int64_t t = 0; t < k; ++t) {
          const double p = double(fl(x[i * k + t])) * fl(w[j * k + t]);
          value[i * n + j] += p;
          magnitude[i * n + j] += std::fabs(p);
        }
  }
  double tolerance(int64_t i) const { return std::fabs(value[i]) / 128 + magnitude[i] * 1e-5 + 1e-6; }
};

}  // namespace nvrar::engine::test_support
