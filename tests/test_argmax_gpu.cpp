// The greedy decode's argmax over vocabulary-wide logits rows (src/engine/gpu/layers.h, argmax_rows) against a CPU
// scan on one GPU (skipped without one); the small-row cases (ties, NaN, offsets) are in test_engine_gpu.cpp.
#include <gtest/gtest.h>

#include <cuda_runtime_api.h>

#include <cmath>
#include <cstdint>
#include <vector>

#include "engine_gpu_test_support.h"
#include "engine/gpu/layers.h"

namespace {

namespace eg = nvrar::engine::gpu;
using namespace nvrar::engine::test_support;

// argmax over vocabulary-wide rows: 16-byte units where the row is aligned (128256 columns), element by element where
// it is not (128259: rows 1 and 2 start mid-unit); a tie far apart and one inside a unit (the lowest index wins), NaNs,
// the winner in the last column; against a CPU scan.
TEST(EngineGpu, ArgmaxWideRows) {
  REQUIRE_GPU();
  for (const int64_t cols : {int64_t{128256}, int64_t{128259}}) {
    const int64_t rows = 3;
    auto logits = random_bf16(rows * cols, 31 + cols, 4.0f);
    for (int64_t c = 5; c < cols; c += 977) logits[c] = bf(NAN);
    logits[0 * cols + 100000] = logits[0 * cols + 77] = bf(9.0f);  // tie: 77 wins
    logits[1 * cols + cols - 1] = bf(9.5f);                        // the last column
    logits[2 * cols + 65543] = bf(8.0f);
    logits[2 * cols + 65544] = bf(8.0f);  // tie in one unit: 65543 wins
    uint16_t* dl = upload(logits);
    float* dv = upload(std::vector<float>(rows));
    int32_t* di = upload(std::vector<int32_t>(rows));
    eg::argmax_rows(dl, rows, cols, 0, dv, di, nullptr);
    const auto idx = download(di, rows);
    for (int64_t r = 0; r < rows; ++r) {
      int64_t want = 0;
      float best = -INFINITY;
      for (int64_t c = 0; c < cols; ++c)
        if (fl(logits[r * cols + c]) > best) best = fl(logits[r * cols + c]), want = c;
      EXPECT_EQ(idx[r], want) << cols << " columns, row " << r;
    }
    cudaFree(dl);
    cudaFree(dv);
    cudaFree(di);
  }
}

}  // namespace
