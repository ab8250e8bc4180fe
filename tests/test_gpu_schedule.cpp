// Checks that the device build of the shared schedule (core/schedule.h) and conversions (core/numeric.h)
// agrees bit for bit with the host build the CPU executor uses: the two executors must cut calls the same way
// and round partial sums identically. Skips where no CUDA device is usable (CI compiles this, only the GPU
// machine runs it).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <ostream>
#include <random>
#include <string>
#include <type_traits>
#include <vector>

#include "core/numeric.h"
#include "core/schedule.h"
#include "gpu/algorithms/ll128.h"
#include "gpu/device/schedule_device_check.h"
#include "nvrar/types.h"

namespace nvrar {

// Readable parameter values in gtest's messages (found by argument-dependent lookup, so not in the anonymous
// namespace).
static void PrintTo(DataType dtype, std::ostream* os) { *os << dtype_name(dtype); }

namespace {

using gpu_check::ScheduleProbe;

std::vector<ScheduleProbe> schedule_probes() {
  std::vector<int64_t> counts = {0,
                                 1,
                                 2,
                                 3,
                                 5,
                                 7,
                                 13,
                                 31,
                                 97,
                                 101,
                                 127,
                                 128,
                                 129,
                                 1009,
                                 4093,
                                 65521,
                                 65537,
                                 1'000'003,
                                 4'194'301,
                                 4'194'304,
                                 int64_t{1} << 31,
                                 (int64_t{1} << 33) + 17};
  std::vector<ScheduleProbe> probes;
  for (int g = 1; g <= 9; ++g) {
    std::vector<int64_t> cs = counts;
    for (int64_t base : {int64_t{g}, int64_t{8} * g, int64_t{4} * g})
      for (int64_t d : {-1, 0, 1}) cs.push_back(base + d);
    for (int64_t count : cs)
      for (int elem_bytes : {2, 4})
        for (int64_t chunk_units : {0, 1, 3, 64})
          for (int slice = 0; slice < g; ++slice) probes.push_back({count, elem_bytes, g, chunk_units, slice});
  }
  return probes;
}

TEST(GpuSchedule, DeviceScheduleMatchesHost) {
  if (!gpu_check::device_available()) GTEST_SKIP() << "no usable CUDA device";
  const std::vector<ScheduleProbe> probes = schedule_probes();
  const std::vector<int64_t> dev = gpu_check::eval_schedule_on_device(probes);
  ASSERT_EQ(dev.size(), probes.size() * 6);
  int failures = 0;
  for (std::size_t i = 0; i < probes.size(); ++i) {
    const ScheduleProbe& p = probes[i];
    const core::CallShape s = core::make_call_shape(p.count, p.elem_bytes, p.gpus_per_node, p.chunk_units);
    const core::Range su = s.slice_units(p.slice);
    const int64_t chunks = s.num_chunks(p.slice);
    const core::Range last = s.chunk(p.slice, chunks - 1);
    const int64_t host[6] = {su.begin, su.end, s.exchanged_units(p.slice), chunks, last.begin, last.end};
    for (int k = 0; k < 6; ++k) {
      if (dev[i * 6 + k] != host[k]) {
        ADD_FAILURE() << "count " << p.count << " elem_bytes " << p.elem_bytes << " G " << p.gpus_per_node
                      << " chunk_units " << p.chunk_units << " slice " << p.slice << ": field " << k << " device "
                      << dev[i * 6 + k] << " host " << host[k];
        if (++failures >= 10) FAIL() << "stopping after 10 mismatches";
      }
    }
  }
}

// Random bit patterns, dense samples of fp16's range, every tie of both 16-bit formats with its float
// neighbours, and the usual specials. NaNs are left to their own test.
std::vector<float> rounding_inputs() {
  std::mt19937 rng(4242);
  std::vector<float> v;
  for (int i = 0; i < 2'000'000; ++i) v.push_back(core::bits_float(static_cast<uint32_t>(rng())));
  std::uniform_int_distribution<uint32_t> exp_dist(127 - 27, 127 + 16);
  for (int i = 0; i < 1'000'000; ++i) v.push_back(core::bits_float((rng() & 0x807fffffu) | (exp_dist(rng) << 23)));
  for (int i = 0; i < 200'000; ++i) v.push_back(core::bits_float(static_cast<uint32_t>(rng()) & 0x807fffffu));
  // Exact midpoints between consecutive 16-bit values, and the floats next to them.
  for (uint32_t b = 0; b < 0x7c00u; ++b) {
    const float lo = core::to_float(core::Fp16{static_cast<uint16_t>(b)});
    const float hi = b + 1 < 0x7c00u ? core::to_float(core::Fp16{static_cast<uint16_t>(b + 1)}) : 65536.0f;
    const float mid = (lo + hi) / 2;
    for (float x : {lo, mid, std::nextafter(mid, 0.0f), std::nextafter(mid, 1e30f)}) {
      v.push_back(x);
      v.push_back(-x);
    }
  }
  for (uint32_t b = 0; b < 0x7f80u; ++b) {
    const uint32_t lo = b << 16;
    for (uint32_t x : {lo, lo + 0x8000u, lo + 0x7fffu, lo + 0x8001u}) {
      v.push_back(core::bits_float(x));
      v.push_back(core::bits_float(x | 0x80000000u));
    }
  }
  const float inf = std::numeric_limits<float>::infinity();
  for (float x : {0.0f, -0.0f, inf, -inf, std::numeric_limits<float>::max(), std::numeric_limits<float>::min(),
                  std::numeric_limits<float>::denorm_min(), 65504.0f, 65519.99f, 65520.0f, std::ldexp(1.0f, -24),
                  std::ldexp(1.0f, -25), std::ldexp(1.5f, -24), std::ldexp(1023.5f, -24)}) {
    v.push_back(x);
    v.push_back(-x);
  }
  std::vector<float> finite_or_inf;
  for (float x : v)
    if (!std::isnan(x)) finite_or_inf.push_back(x);
  return finite_or_inf;
}

uint32_t host_round(float x, DataType dtype) {
  return core::visit_dtype(dtype, [x](auto tag) -> uint32_t {
    using T = decltype(tag);
    if constexpr (std::is_same_v<T, float>) {
      return core::float_bits(core::from_float<float>(x));
    } else {
      return core::from_float<T>(x).bits;
    }
  });
}

void expect_same_rounding(const std::vector<float>& inputs, DataType dtype) {
  const std::vector<uint32_t> dev = gpu_check::round_on_device(inputs, dtype);
  ASSERT_EQ(dev.size(), inputs.size());
  int failures = 0;
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    const uint32_t host = host_round(inputs[i], dtype);
    if (dev[i] != host) {
      char buf[160];
      std::snprintf(buf, sizeof(buf), "%s: input 0x%08x (%.9g): device 0x%08x host 0x%08x", dtype_name(dtype),
                    core::float_bits(inputs[i]), static_cast<double>(inputs[i]), dev[i], host);
      ADD_FAILURE() << buf;
      if (++failures >= 10) FAIL() << "stopping after 10 mismatches";
    }
  }
}

class GpuRounding : public ::testing::TestWithParam<DataType> {};

TEST_P(GpuRounding, DeviceRoundingMatchesHost) {
  if (!gpu_check::device_available()) GTEST_SKIP() << "no usable CUDA device";
  expect_same_rounding(rounding_inputs(), GetParam());
}

// NaN inputs, apart from the rest: the host and device must agree on the bits of a NaN result too, or a
// bit-for-bit comparison of the CPU executor with the GPU kernels would flag inputs holding NaN.
TEST_P(GpuRounding, DeviceNanBitsMatchHost) {
  if (!gpu_check::device_available()) GTEST_SKIP() << "no usable CUDA device";
  std::vector<float> nans = {std::numeric_limits<float>::quiet_NaN(),
                             -std::numeric_limits<float>::quiet_NaN(),
                             std::numeric_limits<float>::signaling_NaN(),
                             core::bits_float(0x7f800001u),
                             core::bits_float(0xff800001u),
                             core::bits_float(0x7fffffffu),
                             core::bits_float(0x7fc00001u),
                             core::bits_float(0x7fa00000u)};
  expect_same_rounding(nans, GetParam());
}

INSTANTIATE_TEST_SUITE_P(AllTypes, GpuRounding,
                         ::testing::Values(DataType::kFloat32, DataType::kBFloat16, DataType::kFloat16),
                         [](const ::testing::TestParamInfo<DataType>& info) {
                           return std::string(dtype_name(info.param));
                         });

}  // namespace
}  // namespace nvrar

// The LL128 two-shot's exchange area (gpu/algorithms/ll128.h): for every rank count and message size up to the
// capacity, every line slot is 128-byte aligned, every slice fits its reduce-scatter slot, and the all-gather
// region, the P reduce-scatter slots and the two parities never overlap.
TEST(Ll128Layout, SlicesFitAndRegionsDoNotOverlap) {
  using namespace nvrar::gpu;
  const int64_t max_bytes = int64_t{8} << 20;
  for (int P = 1; P <= kMaxLl128Ranks; ++P) {
    Ll128Layout l;
    l.ranks = P;
    l.lines_max = ll128_lines(max_bytes, P);
    l.slice_lines_max = (l.lines_max + P - 1) / P;
    EXPECT_EQ(l.total_bytes() % kLl128LineBytes, 0u);
    for (int parity = 0; parity < 2; ++parity) {
      EXPECT_EQ(l.all_gather(parity, l.lines_max - 1) + kLl128LineBytes, l.reduce_scatter(parity, 0, 0));
      EXPECT_EQ(l.reduce_scatter(parity, P - 1, l.slice_lines_max - 1) + kLl128LineBytes, l.region(parity + 1));
      for (int src = 0; src + 1 < P; ++src)
        EXPECT_EQ(l.reduce_scatter(parity, src, l.slice_lines_max), l.reduce_scatter(parity, src + 1, 0));
    }
    for (int64_t bytes : {int64_t{1}, int64_t{119}, int64_t{120}, int64_t{121}, int64_t{4096}, int64_t{131072} + 6,
                          int64_t{1048576}, max_bytes - 2, max_bytes}) {
      const int64_t L = ll128_lines(bytes, P);
      EXPECT_GE(L, P) << "every rank owns a line";
      EXPECT_GE(L * kLl128PayloadBytes, bytes);
      EXPECT_LE(L, l.lines_max);
      EXPECT_EQ(ll128_slice_begin(L, P, 0), 0);
      EXPECT_EQ(ll128_slice_begin(L, P, P), L);
      for (int s = 0; s < P; ++s) {
        const int64_t size = ll128_slice_begin(L, P, s + 1) - ll128_slice_begin(L, P, s);
        EXPECT_GE(size, 1) << "P " << P << " bytes " << bytes << " slice " << s;
        EXPECT_LE(size, l.slice_lines_max) << "P " << P << " bytes " << bytes << " slice " << s;
      }
    }
  }
}
