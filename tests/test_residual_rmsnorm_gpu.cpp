// The residual + RMSNorm kernels of src/gpu/device/residual_rmsnorm.cu: the unit-per-thread kernel (decode rows)
// and the warp-per-row kernel (many rows, prefill) give the block-per-row kernel's bits (the residual and the
// output), for bf16, fp16 and fp32 rows of 1 to 1024 16-byte units (32 to 512 for the warp kernel), row counts not a
// multiple of the block's 4 warps or past the 65535-block grid, data over many binades, and y aliasing out; the new
// residual equals the elementwise rounded sum computed here. The automatic choice (and its fallback for a misaligned
// pointer). A call without y normalises the residual alone. Each kernel refuses rows it does not fit. Which kernel a
// call takes (CPU). The automatic choice is checked against float64 in the multi-rank suite (tests/gpu/rmsnorm.cpp).
// GPU tests skip without a device.
#include <gtest/gtest.h>

#include <cuda_runtime_api.h>

#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "core/numeric.h"
#include "engine_gpu_test_support.h"
#include "gpu/device/residual_rmsnorm.h"
#include "nvrar/types.h"

namespace {

using nvrar::DataType;
using nvrar::gpu::ResidualRmsNormKernel;
using nvrar::engine::test_support::download;
using nvrar::engine::test_support::have_gpu;
using nvrar::engine::test_support::upload;
namespace core = nvrar::core;

// n elements of type dtype (as raw bits in 16- or 32-bit words), uniform in [-scale, scale), from seed; with
// spread > 0 each element is also scaled by 2^e, e uniform in [-spread, spread / 2] (values over many binades, so
// that the sums of squares round).
std::vector<uint32_t> random_words(DataType dtype, std::size_t n, uint64_t seed, float scale, int spread = 0) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> u(-scale, scale);
  std::uniform_int_distribution<int> binade(-spread, spread / 2);
  const std::size_t es = nvrar::dtype_size(dtype);
  std::vector<uint32_t> words((n * es + 3) / 4);
  auto* p16 = reinterpret_cast<uint16_t*>(words.data());
  auto* p32 = reinterpret_cast<float*>(words.data());
  for (std::size_t i = 0; i < n; ++i) {
    const float v = std::ldexp(u(rng), spread > 0 ? binade(rng) : 0);
    if (dtype == DataType::kBFloat16) p16[i] = core::from_float<core::Bf16>(v).bits;
    else if (dtype == DataType::kFloat16) p16[i] = core::from_float<core::Fp16>(v).bits;
    else p32[i] = v;
  }
  return words;
}

float element(DataType dtype, const std::vector<uint32_t>& words, std::size_t i) {
  if (dtype == DataType::kFloat32) return reinterpret_cast<const float*>(words.data())[i];
  const uint16_t b = reinterpret_cast<const uint16_t*>(words.data())[i];
  return dtype == DataType::kBFloat16 ? core::to_float(core::Bf16{b}) : core::to_float(core::Fp16{b});
}

float rounded(DataType dtype, float v) {
  if (dtype == DataType::kBFloat16) return core::to_float(core::from_float<core::Bf16>(v));
  if (dtype == DataType::kFloat16) return core::to_float(core::from_float<core::Fp16>(v));
  return v;
}

struct Result {
  std::vector<uint32_t> residual, out;
};

// One call of the named kernel on fresh copies of y and residual; out aliases y when `aliased`.
Result run(ResidualRmsNormKernel kernel, bool aliased, DataType dtype, int64_t rows, int64_t hidden,
           const std::vector<uint32_t>& y, const std::vector<uint32_t>& residual, const std::vector<uint32_t>& weight) {
  uint32_t* d_y = upload(y);
  uint32_t* d_res = upload(residual);
  uint32_t* d_w = upload(weight);
  uint32_t* d_out = aliased ? d_y : upload(std::vector<uint32_t>(y.size(), 0xdeadbeefu));
  EXPECT_EQ(nvrar::gpu::launch_residual_rmsnorm_rows(d_y, d_res, d_w, d_out, rows, hidden, 1e-5f, dtype, kernel,
                                                     nullptr),
            cudaSuccess);
  Result r{download(d_res, residual.size()), download(d_out, y.size())};
  for (uint32_t* p : {d_y, d_res, d_w}) cudaFree(p);
  if (!aliased) cudaFree(d_out);
  return r;
}

const char* kernel_name(ResidualRmsNormKernel k) {
  switch (k) {
    case ResidualRmsNormKernel::kBlockPerRow: return "block per row";
    case ResidualRmsNormKernel::kUnitPerThread: return "unit per thread";
    case ResidualRmsNormKernel::kWarpPerRow: return "warp per row";
  }
  return "?";
}

TEST(ResidualRmsNorm, EveryKernelGivesTheBlockKernelsBits) {
  if (!have_gpu()) GTEST_SKIP() << "no CUDA device";
  struct Case {
    DataType dtype;
    int64_t rows, hidden;
    int spread;  // binades of the data (random_words)
    bool warp;   // the warp kernel fits the row
  };
  const Case cases[] = {{DataType::kBFloat16, 64, 4096, 0, true},   {DataType::kBFloat16, 1001, 4096, 0, true},
                        {DataType::kBFloat16, 67, 256, 0, true},    {DataType::kBFloat16, 300, 2816, 0, true},
                        {DataType::kBFloat16, 300, 4096, 20, true}, {DataType::kFloat16, 129, 1024, 0, true},
                        {DataType::kFloat16, 200, 2048, 6, true},   {DataType::kFloat32, 77, 128, 0, true},
                        {DataType::kFloat32, 90, 1408, 20, true},   {DataType::kFloat32, 250, 2048, 0, true},
                        {DataType::kBFloat16, 1, 4096, 20, true},   {DataType::kBFloat16, 8, 8192, 20, false},
                        {DataType::kBFloat16, 5, 288, 6, false},    {DataType::kFloat16, 3, 8, 0, false},
                        {DataType::kFloat32, 7, 4096, 20, false},   {DataType::kBFloat16, 65537, 8, 6, false}};
  uint64_t seed = 1;
  for (const Case& c : cases)
    for (bool aliased : {false, true}) {
      SCOPED_TRACE(testing::Message() << "dtype " << nvrar::dtype_name(c.dtype) << ", rows " << c.rows << ", hidden "
                                      << c.hidden << ", spread " << c.spread << (aliased ? ", y aliasing out" : ""));
      ASSERT_EQ(nvrar::gpu::residual_rmsnorm_kernel_for(nvrar::gpu::kResidualRmsNormWarpRowsMin, c.hidden, c.dtype) ==
                    ResidualRmsNormKernel::kWarpPerRow,
                c.warp);  // the case's row suits the warp kernel or not, as listed
      const std::size_t n = static_cast<std::size_t>(c.rows * c.hidden);
      const auto y = random_words(c.dtype, n, seed++, 1.0f, c.spread);
      const auto res = random_words(c.dtype, n, seed++, 4.0f, c.spread);
      const auto w = random_words(c.dtype, static_cast<std::size_t>(c.hidden), seed++, 2.0f);
      const Result block = run(ResidualRmsNormKernel::kBlockPerRow, aliased, c.dtype, c.rows, c.hidden, y, res, w);
      for (const auto k : {ResidualRmsNormKernel::kUnitPerThread, ResidualRmsNormKernel::kWarpPerRow}) {
        if (k == ResidualRmsNormKernel::kWarpPerRow && !c.warp) continue;
        SCOPED_TRACE(kernel_name(k));
        const Result other = run(k, aliased, c.dtype, c.rows, c.hidden, y, res, w);
        ASSERT_EQ(other.residual, block.residual);
        ASSERT_EQ(other.out, block.out);
      }
      for (std::size_t i = 0; i < n; i += 97) {  // the new residual: the sum rounded to the element type
        const float sum = element(c.dtype, res, i) + element(c.dtype, y, i);
        ASSERT_EQ(element(c.dtype, block.residual, i), rounded(c.dtype, sum)) << "element " << i;
      }
    }
}

// launch_residual_rmsnorm's own choice at kResidualRmsNormWarpRowsMin rows (the warp kernel) gives the block kernel's
// bits; with y 8 bytes off 16-byte alignment the warp kernel refuses and the automatic choice takes the block kernel.
TEST(ResidualRmsNorm, AutomaticChoiceGivesTheSameBits) {
  if (!have_gpu()) GTEST_SKIP() << "no CUDA device";
  const int64_t rows = nvrar::gpu::kResidualRmsNormWarpRowsMin, hidden = 4096;
  const std::size_t n = static_cast<std::size_t>(rows * hidden), words = n / 2;
  for (const std::size_t offset_words : {std::size_t{0}, std::size_t{2}}) {  // 0 or 8 bytes past the allocation
    SCOPED_TRACE(testing::Message() << "y offset " << 4 * offset_words << " bytes");
    std::vector<uint32_t> y = random_words(DataType::kBFloat16, n, 71, 1.0f, 10);
    y.insert(y.begin(), offset_words, 0u);
    const auto res = random_words(DataType::kBFloat16, n, 72, 4.0f, 10);
    const auto w = random_words(DataType::kBFloat16, static_cast<std::size_t>(hidden), 73, 2.0f);
    std::vector<std::vector<uint32_t>> outs, residuals;
    for (int mode = 0; mode < 2; ++mode) {  // 0: automatic, 1: the block kernel named
      uint32_t *d_y = upload(y), *d_res = upload(res), *d_w = upload(w);
      uint32_t* d_out = upload(std::vector<uint32_t>(words, 0xdeadbeefu));
      const cudaError_t e =
          mode == 0 ? nvrar::gpu::launch_residual_rmsnorm(d_y + offset_words, d_res, d_w, d_out, rows, hidden, 1e-5f,
                                                          DataType::kBFloat16, nullptr)
                    : nvrar::gpu::launch_residual_rmsnorm_rows(d_y + offset_words, d_res, d_w, d_out, rows, hidden,
                                                               1e-5f, DataType::kBFloat16,
                                                               ResidualRmsNormKernel::kBlockPerRow, nullptr);
      EXPECT_EQ(e, cudaSuccess);
      outs.push_back(download(d_out, words));
      residuals.push_back(download(d_res, words));
      if (offset_words != 0)
        EXPECT_EQ(nvrar::gpu::launch_residual_rmsnorm_rows(d_y + offset_words, d_res, d_w, d_out, rows, hidden, 1e-5f,
                                                           DataType::kBFloat16, ResidualRmsNormKernel::kWarpPerRow,
                                                           nullptr),
                  cudaErrorInvalidValue);
      for (uint32_t* p : {d_y, d_res, d_w, d_out}) cudaFree(p);
    }
    EXPECT_EQ(outs[0], outs[1]);
    EXPECT_EQ(residuals[0], residuals[1]);
  }
}

// y == nullptr (the engine's norm after a GEMM that added into the residual itself): both kernels give the bits of a
// call with y all zeros, and the residual comes back as it went in. With negative zeros in the residual (which an
// add of +0 would turn into +0) both kernels still leave it bit for bit and agree with each other.
TEST(ResidualRmsNorm, WithoutYNormalisesTheResidualAlone) {
  if (!have_gpu()) GTEST_SKIP() << "no CUDA device";
  const auto norm_only = [](ResidualRmsNormKernel kernel, DataType dtype, int64_t rows, int64_t hidden,
                            const std::vector<uint32_t>& res, const std::vector<uint32_t>& w) {
    uint32_t *d_res = upload(res), *d_w = upload(w);
    uint32_t* d_out = upload(std::vector<uint32_t>(res.size(), 0xdeadbeefu));
    EXPECT_EQ(nvrar::gpu::launch_residual_rmsnorm_rows(nullptr, d_res, d_w, d_out, rows, hidden, 1e-5f, dtype,
                                                       kernel, nullptr),
              cudaSuccess);
    Result r{download(d_res, res.size()), download(d_out, res.size())};
    for (uint32_t* p : {d_res, d_w, d_out}) cudaFree(p);
    return r;
  };
  for (const DataType dtype : {DataType::kBFloat16, DataType::kFloat32})
    for (const int64_t rows : {int64_t{3}, int64_t{1001}}) {
      const int64_t hidden = dtype == DataType::kBFloat16 ? 4096 : 2048;
      SCOPED_TRACE(testing::Message() << "dtype " << nvrar::dtype_name(dtype) << ", rows " << rows);
      const std::size_t n = static_cast<std::size_t>(rows * hidden);
      const auto res = random_words(dtype, n, 91 + rows, 4.0f, 12);
      const auto w = random_words(dtype, static_cast<std::size_t>(hidden), 92, 2.0f);
      const std::vector<uint32_t> zeros(res.size(), 0u);
      auto res_signed_zeros = res;  // every 37th element -0
      for (std::size_t i = 0; i < n; i += 37) {
        if (dtype == DataType::kFloat32) res_signed_zeros[i] = 0x80000000u;
        else reinterpret_cast<uint16_t*>(res_signed_zeros.data())[i] = 0x8000u;
      }
      std::vector<Result> signed_zero_runs;
      for (const ResidualRmsNormKernel kernel : {ResidualRmsNormKernel::kBlockPerRow,
                                                 ResidualRmsNormKernel::kUnitPerThread,
                                                 ResidualRmsNormKernel::kWarpPerRow}) {
        SCOPED_TRACE(kernel_name(kernel));
        const Result with_zeros = run(kernel, false, dtype, rows, hidden, zeros, res, w);
        const Result alone = norm_only(kernel, dtype, rows, hidden, res, w);
        EXPECT_EQ(alone.out, with_zeros.out);
        EXPECT_EQ(alone.residual, res);
        signed_zero_runs.push_back(norm_only(kernel, dtype, rows, hidden, res_signed_zeros, w));
        EXPECT_EQ(signed_zero_runs.back().residual, res_signed_zeros);
      }
      EXPECT_EQ(signed_zero_runs[0].out, signed_zero_runs[1].out);
      EXPECT_EQ(signed_zero_runs[0].out, signed_zero_runs[2].out);
    }
}

TEST(ResidualRmsNorm, KernelsRefuseRowsTheyDoNotFit) {
  if (!have_gpu()) GTEST_SKIP() << "no CUDA device";
  std::vector<uint32_t> buf(64 * 8192);
  uint32_t* d = upload(buf);
  const auto call = [&](int64_t hidden, ResidualRmsNormKernel k) {
    return nvrar::gpu::launch_residual_rmsnorm_rows(d, d, d, d, 8, hidden, 1e-5f, DataType::kBFloat16, k, nullptr);
  };
  // warp per row: bf16 rows of 1024 units (hidden 8192) and of 36 units (hidden 288: not a multiple of 32 units)
  EXPECT_EQ(call(8192, ResidualRmsNormKernel::kWarpPerRow), cudaErrorInvalidValue);
  EXPECT_EQ(call(288, ResidualRmsNormKernel::kWarpPerRow), cudaErrorInvalidValue);
  // unit per thread: a bf16 row of 1025 units (hidden 8200)
  EXPECT_EQ(call(8200, ResidualRmsNormKernel::kUnitPerThread), cudaErrorInvalidValue);
  cudaFree(d);
}

TEST(ResidualRmsNorm, KernelChoice) {
  using nvrar::gpu::kResidualRmsNormUnitRowsMax;
  using nvrar::gpu::kResidualRmsNormWarpRowsMin;
  using nvrar::gpu::residual_rmsnorm_kernel_for;
  constexpr auto kBlock = ResidualRmsNormKernel::kBlockPerRow, kUnit = ResidualRmsNormKernel::kUnitPerThread,
                 kWarp = ResidualRmsNormKernel::kWarpPerRow;
  EXPECT_EQ(residual_rmsnorm_kernel_for(kResidualRmsNormWarpRowsMin, 4096, DataType::kBFloat16), kWarp);
  EXPECT_EQ(residual_rmsnorm_kernel_for(kResidualRmsNormWarpRowsMin - 1, 4096, DataType::kBFloat16), kBlock);
  EXPECT_EQ(residual_rmsnorm_kernel_for(1, 4096, DataType::kBFloat16), kUnit);        // decode
  EXPECT_EQ(residual_rmsnorm_kernel_for(kResidualRmsNormUnitRowsMax, 4096, DataType::kBFloat16), kUnit);
  EXPECT_EQ(residual_rmsnorm_kernel_for(kResidualRmsNormUnitRowsMax + 1, 4096, DataType::kBFloat16), kBlock);
  EXPECT_EQ(residual_rmsnorm_kernel_for(8, 8192, DataType::kBFloat16), kUnit);        // 1024 units
  EXPECT_EQ(residual_rmsnorm_kernel_for(16384, 8192, DataType::kBFloat16), kBlock);   // 1024 units, many rows
  EXPECT_EQ(residual_rmsnorm_kernel_for(16384, 2048, DataType::kFloat32), kWarp);     // 512 units
  EXPECT_EQ(residual_rmsnorm_kernel_for(16384, 288, DataType::kBFloat16), kBlock);    // 36 units
  EXPECT_EQ(residual_rmsnorm_kernel_for(8, 288, DataType::kBFloat16), kUnit);
  EXPECT_EQ(residual_rmsnorm_kernel_for(8, 8200, DataType::kBFloat16), kBlock);       // 1025 units
  EXPECT_EQ(residual_rmsnorm_kernel_for(8, 16384, DataType::kFloat32), kBlock);       // 4096 units
}

}  // namespace
