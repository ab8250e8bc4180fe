// The tensor-core prefill attention (src/engine/gpu/flash_prefill.h) against a float64 causal softmax on one GPU
// (skipped without one): chunks of a chunked-prefill plan (engine/prefill_plan.h) with several sequences, a chunk
// that continues a sequence begun in an earlier chunk (its queries see keys the chunk did not write), tiles of 1-64
// rows, head_dim 64, 128 and 256, grouped-query ratios 1, 4 and 8, each kernel (mma.sync on 64- and 128-row tiles;
// wgmma, wgmma2 and wgmma-tma on 128-row tiles where the GPU is compute capability 9.0); and the chunked result equal
// to the unchunked one row by row (bitwise: a row's key tiles and their order do not depend on its query tile, and a
// key tile past a row's position leaves it unchanged (corr 1, P 0); for the wgmma kernels this also assumes a row's
// result does not depend on its place in the warpgroup: if only that comparison fails, suspect this first).
// Cache rows past each sequence are NaN, so a read past a tile's last key shows. On the CPU: the grid's block order
// and its L2 sections (prefill_grid.cuh).
#include <gtest/gtest.h>

#include <cuda_runtime_api.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "engine_gpu_test_support.h"
#include "engine/gpu/copy_wait.h"
#include "engine/gpu/flash_prefill.h"
#include "engine/gpu/prefill_grid.cuh"
#include "engine/prefill_plan.h"
#include "nvrar/types.h"

namespace {

namespace eg = nvrar::engine::gpu;
using nvrar::engine::plan_prefill;
using nvrar::engine::PrefillChunk;
using nvrar::engine::PrefillTile;
using namespace nvrar::engine::test_support;

struct Problem {
  int D, q_heads, kv_heads;
  std::vector<int> lengths;  // prompt lengths
  int64_t chunk;             // chunk tokens
  eg::FlashKernel kernel = eg::FlashKernel::kMma64;
  int64_t section_max_len = 0;  // > 0: the shape's max_len, which sizes the grid's sections (prefill_grid.cuh): a
                                // huge one gives one KV head per section, so several sections on a small problem
  int64_t group_keys = 0;       // plan_prefill's groups of sequences (the chunked run only; the whole run takes 0)
};

// Runs every chunk of the plan; each chunk's queries are that chunk's rows of one shared table of random queries
// (row i of the whole prefill), so chunked and unchunked runs see the same inputs. Returns the output of every
// prompt token [total][q_heads * D] as bf16 bits.
std::vector<uint16_t> run(const Problem& p, const std::vector<uint16_t>& queries, const std::vector<uint16_t>& ck,
                          const std::vector<uint16_t>& cv, int64_t max_seq, int64_t chunk, int64_t group_keys) {
  std::vector<std::vector<int32_t>> prompts;
  for (const int len : p.lengths) prompts.emplace_back(len, 1);
  const auto plan = plan_prefill(prompts, chunk, eg::flash_tile_rows(p.kernel), group_keys);
  const int64_t q_cols = static_cast<int64_t>(p.q_heads) * p.D, cols = q_cols + 2LL * p.kv_heads * p.D;
  uint16_t *dk = upload(ck), *dv = upload(cv);
  std::vector<uint16_t> all;
  int64_t done = 0;
  for (const PrefillChunk& c : plan) {
    // The qkv rows of this chunk: q from the shared table, k and v columns garbage (the kernel reads the cache).
    std::vector<uint16_t> qkv = random_bf16(c.rows() * cols, 99 + done, 50.0f);
    for (int64_t r = 0; r < c.rows(); ++r)
      for (int64_t i = 0; i < q_cols; ++i) qkv[r * cols + i] = queries[(done + r) * q_cols + i];
    uint16_t *dq = upload(qkv), *dout = upload(std::vector<uint16_t>(c.rows() * q_cols, bf(7.0f)));
    PrefillTile* dt = upload(c.tiles);
    const eg::AttentionShape s{c.rows(), cols, p.q_heads, p.kv_heads, p.D, max_seq,
                               p.section_max_len > 0 ? p.section_max_len : c.max_len,
                               static_cast<int64_t>(p.lengths.size())};
    eg::flash_prefill_attention(dq, dt, static_cast<int64_t>(c.tiles.size()), dk, dv, s, p.kernel, dout, nullptr);
    const auto got = download(dout, c.rows() * q_cols);
    all.insert(all.end(), got.begin(), got.end());
    done += c.rows();
    for (void* ptr : std::initializer_list<void*>{dq, dout, dt}) cudaFree(ptr);
  }
  cudaFree(dk);
  cudaFree(dv);
  return all;
}

void check(const Problem& p, uint64_t seed) {
  SCOPED_TRACE(::testing::Message() << "D " << p.D << " heads " << p.q_heads << "/" << p.kv_heads << " chunk "
                                    << p.chunk << " kernel " << static_cast<int>(p.kernel));
  int64_t total = 0, max_seq = 0;
  for (const int len : p.lengths) {
    total += len;
    max_seq = std::max<int64_t>(max_seq, len + 3);
  }
  const int64_t q_cols = static_cast<int64_t>(p.q_heads) * p.D;
  const int64_t seqs = static_cast<int64_t>(p.lengths.size());
  // Scales that make the softmax neither flat nor one-hot.
  const auto queries = random_bf16(total * q_cols, seed, 1.0f);
  auto ck = random_bf16(seqs * p.kv_heads * max_seq * p.D, seed + 1, 1.0f);
  auto cv = random_bf16(seqs * p.kv_heads * max_seq * p.D, seed + 2, 1.0f);
  // Cache rows past each sequence's end are NaN: a kernel that reads a key past its tile's last position instead of
  // zero-filling it (or leaves it unmasked) turns its output into NaN, which the comparison below reports.
  for (int64_t b = 0; b < seqs; ++b)
    for (int h = 0; h < p.kv_heads; ++h)
      for (int64_t j = p.lengths[b]; j < max_seq; ++j)
        for (int d = 0; d < p.D; ++d) ck[((b * p.kv_heads + h) * max_seq + j) * p.D + d] =
            cv[((b * p.kv_heads + h) * max_seq + j) * p.D + d] = 0x7FC0;  // bf16 quiet NaN
  const auto got = run(p, queries, ck, cv, max_seq, p.chunk, p.group_keys);
  ASSERT_EQ(static_cast<int64_t>(got.size()), total * q_cols);
  int bad = 0;
  int64_t row = 0;
  for (int64_t b = 0; b < seqs; ++b)
    for (int pos = 0; pos < p.lengths[b]; ++pos, ++row)
      for (int h = 0; h < p.q_heads; ++h) {
        const int kvh = h / (p.q_heads / p.kv_heads);
        const int64_t base = (b * p.kv_heads + kvh) * max_seq;
        std::vector<double> w(pos + 1);
        double mx = -1e300, sum = 0;
        for (int j = 0; j <= pos; ++j) {
          double dot = 0;
          for (int d = 0; d < p.D; ++d) dot += double(fl(queries[row * q_cols + h * p.D + d])) * fl(ck[(base + j) * p.D + d]);
          w[j] = dot / std::sqrt(double(p.D));
          mx = std::max(mx, w[j]);
        }
        for (auto& v : w) sum += (v = std::exp(v - mx));
        for (int d = 0; d < p.D; ++d) {
          double o = 0, mag = 0;
          for (int j = 0; j <= pos; ++j) {
            o += w[j] * fl(cv[(base + j) * p.D + d]);
            mag += w[j] * std::fabs(fl(cv[(base + j) * p.D + d]));
          }
          o /= sum;
          mag /= sum;
          // bf16 output rounding plus P rounded to bf16 (relative 2^-8 of each term).
          const float g = fl(got[row * q_cols + h * p.D + d]);
          if (!(std::fabs(g - o) <= std::fabs(o) / 128 + mag / 128 + 1e-3) && bad++ < 10)
            ADD_FAILURE() << "sequence " << b << " position " << pos << " head " << h << " dim " << d << ": " << g
                          << " vs " << o;
        }
      }
  EXPECT_EQ(bad, 0);
  // The same rows computed in one chunk (and one group of tiles: another block order): bitwise equal.
  const auto whole = run(p, queries, ck, cv, max_seq, total, 0);
  EXPECT_EQ(whole, got);
}

TEST(FlashPrefillGpu, MatchesFloat64CausalSoftmax) {
  if (!have_gpu()) GTEST_SKIP() << "no CUDA device";
  check({128, 8, 2, {300, 1, 77, 130}, 200}, 1);   // GQA 4; chunk boundaries inside sequences
  check({64, 4, 4, {129, 64, 65}, 100}, 2);        // no grouping
  check({128, 8, 1, {513}, 128}, 3);               // GQA 8; a sequence over four chunks
  check({256, 2, 2, {100, 33}, 57}, 4);            // head_dim 256 (32-key tiles)
  check({64, 16, 2, {1, 2, 3, 200}, 4096}, 5);     // one chunk, tiny sequences
  check({64, 8, 4, {130, 70}, 100, eg::FlashKernel::kMma64, int64_t{1} << 40}, 6);  // 4 grid sections of 2 heads
}

// The 128-row kernels: mma.sync with two row groups per warp, and wgmma with a warpgroup per 64 rows. Tiles with only
// the first group, with both, and chunk boundaries that cut a 128-row tile.
void check_wide(eg::FlashKernel kernel, uint64_t seed) {
  check({128, 8, 2, {300, 1, 77, 130}, 200, kernel}, seed);   // GQA 4; tiles of 1-128 rows
  check({64, 4, 4, {129, 64, 65, 128}, 100, kernel}, seed + 1);  // no grouping; exactly 64 and 128 rows
  check({128, 8, 1, {513}, 200, kernel}, seed + 2);           // GQA 8; 128-row tiles cut by chunks
  check({64, 16, 2, {1, 2, 3, 700}, 300, kernel}, seed + 3);   // tiny sequences and a long one over 3 chunks
  check({128, 8, 2, {300, 1, 77, 130}, 200, kernel, int64_t{1} << 40}, seed + 4);  // 2 grid sections of 4 heads
}

TEST(FlashPrefillGpu, WideTilesMatchFloat64CausalSoftmax) {
  if (!have_gpu()) GTEST_SKIP() << "no CUDA device";
  check_wide(eg::FlashKernel::kMma128, 11);
}

int compute_capability() {
  int device = 0, major = 0, minor = 0;
  cudaGetDevice(&device);
  cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device);
  cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, device);
  return major * 10 + minor;
}

// On a GPU other than compute capability 9.0, a Hopper kernel is refused with an error naming its setting `name`.
void expect_refused_by_name(eg::FlashKernel kernel, const std::string& name) {
  const eg::AttentionShape s{1, 3 * 128, 1, 1, 128, 8, 1, 1};
  try {
    eg::flash_prefill_attention(nullptr, nullptr, 1, nullptr, nullptr, s, kernel, nullptr, nullptr);
    ADD_FAILURE() << name << " ran on compute capability " << compute_capability();
  } catch (const nvrar::Error& e) {
    EXPECT_NE(std::string(e.what()).find(name), std::string::npos) << e.what();
  }
}

TEST(FlashPrefillGpu, WgmmaMatchesFloat64CausalSoftmax) {
  if (!have_gpu()) GTEST_SKIP() << "no CUDA device";
  if (compute_capability() != 90) {
    expect_refused_by_name(eg::FlashKernel::kWgmma, "wgmma");
    GTEST_SKIP() << "wgmma needs compute capability 9.0; this GPU is " << compute_capability();
  }
  check_wide(eg::FlashKernel::kWgmma, 21);
}

// wgmma2: 128-key tiles in three-stage rings, one product in flight while the softmax runs. Beyond check_wide: a
// sequence of 8 key tiles whose chunks start off the 128-key grid (every ring stage refilled twice, the diagonal
// tile cut anywhere), and one of exactly two key tiles.
TEST(FlashPrefillGpu, WgmmaOverlapMatchesFloat64CausalSoftmax) {
  if (!have_gpu()) GTEST_SKIP() << "no CUDA device";
  if (compute_capability() != 90) {
    expect_refused_by_name(eg::FlashKernel::kWgmmaOverlap, "wgmma2");
    GTEST_SKIP() << "wgmma2 needs compute capability 9.0; this GPU is " << compute_capability();
  }
  check_wide(eg::FlashKernel::kWgmmaOverlap, 31);
  check({128, 8, 2, {1000, 3}, 300, eg::FlashKernel::kWgmmaOverlap}, 35);  // GQA 4; chunks at 300, 600, 900
  check({64, 4, 1, {256, 255}, 256, eg::FlashKernel::kWgmmaOverlap}, 36);   // GQA 4; two key tiles, one short
}

// A TMA kernel refuses, naming AttentionShape::cache_sequences, a shape that does not set it (its tensor map needs
// the cache's slice count).
void expect_refused_without_cache_sequences(eg::FlashKernel kernel, const char* name) {
  const eg::AttentionShape unknown{1, 3 * 128, 1, 1, 128, 8, 1};  // cache_sequences unset
  uint16_t* cache = upload(std::vector<uint16_t>(8 * 128));
  try {
    eg::flash_prefill_attention(nullptr, nullptr, 1, cache, cache, unknown, kernel, nullptr, nullptr);
    ADD_FAILURE() << name << " ran without the cache's sequence count";
  } catch (const nvrar::Error& e) {
    EXPECT_NE(std::string(e.what()).find("cache_sequences"), std::string::npos) << e.what();
  }
  cudaFree(cache);
}

// wgmma-tma: wgmma with K and V brought by TMA from a 3-D tensor map of the cache. Beyond check_wide: boxes past
// max_seq (a sequence ending 3 positions short of it, whose last key tile reads past the slice: zeros, not the next
// slice), NaN cache rows inside the last box (zeroed V, masked K), many stage reuses; and the refusal without the
// cache's sequence count.
TEST(FlashPrefillGpu, WgmmaTmaMatchesFloat64CausalSoftmax) {
  if (!have_gpu()) GTEST_SKIP() << "no CUDA device";
  if (compute_capability() != 90) {
    expect_refused_by_name(eg::FlashKernel::kWgmmaTma, "wgmma-tma");
    GTEST_SKIP() << "wgmma-tma needs compute capability 9.0; this GPU is " << compute_capability();
  }
  check_wide(eg::FlashKernel::kWgmmaTma, 41);
  check({128, 8, 2, {1000, 3}, 300, eg::FlashKernel::kWgmmaTma}, 45);  // GQA 4; chunks at 300, 600, 900
  check({64, 4, 1, {256, 255}, 256, eg::FlashKernel::kWgmmaTma}, 46);   // GQA 4; whole and short last key tiles
  expect_refused_without_cache_sequences(eg::FlashKernel::kWgmmaTma, "wgmma-tma");
}

// wgmma-ws: wgmma2's products fed by a TMA producer warp through mbarrier rings, the two warpgroups in turns. Beyond
// check_wide: many uses of each ring stage and of each turn barrier (8 key tiles, chunks off the 128-key grid), a
// last key tile cut short (copied by cp.async, NaN rows past the end zero-filled), a block whose second warpgroup has
// no rows (a 1-row sequence), and the refusal without the cache's sequence count.
TEST(FlashPrefillGpu, WgmmaWsMatchesFloat64CausalSoftmax) {
  if (!have_gpu()) GTEST_SKIP() << "no CUDA device";
  if (compute_capability() != 90) {
    expect_refused_by_name(eg::FlashKernel::kWgmmaWs, "wgmma-ws");
    GTEST_SKIP() << "wgmma-ws needs compute capability 9.0; this GPU is " << compute_capability();
  }
  check_wide(eg::FlashKernel::kWgmmaWs, 51);
  check({128, 8, 2, {1000, 3}, 300, eg::FlashKernel::kWgmmaWs}, 55);  // GQA 4; chunks at 300, 600, 900
  check({64, 4, 1, {256, 255}, 256, eg::FlashKernel::kWgmmaWs}, 56);   // GQA 4; whole and short last key tiles
  check({128, 4, 4, {2000, 1}, 4096, eg::FlashKernel::kWgmmaWs}, 57);  // 16 key tiles in one chunk
  // Tiles in groups of sequences (plan_prefill's group_keys; the whole run in one group): the same bits.
  check({128, 8, 2, {700, 300, 500, 129}, 512, eg::FlashKernel::kWgmmaWs, 0, 800}, 58);  // 4 chunks
  expect_refused_without_cache_sequences(eg::FlashKernel::kWgmmaWs, "wgmma-ws");
}

// The Hopper kernels' bounded waits (engine/gpu/copy_wait.h), on the CPU: the record's message names the GPU, the
// kernel, the wait, the block, the thread and the timeout it was given; no record, no message.
TEST(FlashPrefillGpu, CopyWaitRecordNamesTheKernelTheWaitAndTheTimeout) {
  eg::CopyWaitRecord r{};
  EXPECT_EQ(eg::describe_copy_wait(r), "");
  r = {static_cast<int>(eg::CopyWaitSite::kWsValueTile), 17, 64, 1, 1024, 3, 28611};  // 28611 x 2^20 ns: 30000 ms
  const std::string m = eg::describe_copy_wait(r);
  for (const char* part : {"GPU 3: prefill attention wgmma-ws, consumer warp: a V tile's copy", "within 30000 ms",
                           "NVRAR_TIMEOUT_MS", "block 17, thread 64", "parity 1", "trap", "CUDA context is lost"})
    EXPECT_NE(m.find(part), std::string::npos) << part << " not in: " << m;
  r.site = static_cast<int>(eg::CopyWaitSite::kTmaTile);
  r.timeout_units = 5;
  const std::string tma = eg::describe_copy_wait(r);
  EXPECT_NE(tma.find("wgmma-tma: a key tile's K and V copies (TMA)"), std::string::npos) << tma;
  EXPECT_NE(tma.find("within 5 ms"), std::string::npos) << tma;
}

// On the GPU (compute capability 9.0): 8 x 128 threads wait on barriers nobody arrives on; they give up after the
// timeout (about together) instead of hanging, the kernel traps, and the CUDA error that follows carries one whole
// record. In a child process: the trap loses the CUDA context. The clock starts after the context and the record
// exist, so the elapsed time is the wait's.
TEST(FlashPrefillGpuDeathTest, AWaitThatNeverEndsStopsTheKernelWithAMessage) {
  if (!have_gpu()) GTEST_SKIP() << "no CUDA device";
  if (compute_capability() != 90) GTEST_SKIP() << "the bounded waits are in the compute capability 9.0 kernels";
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(
      {
        cudaFree(nullptr);
        eg::copy_wait_bound(300);
        const auto start = std::chrono::steady_clock::now();
        try {
          eg::copy_wait_self_test(300);
        } catch (const nvrar::Error& e) {
          const auto ms =
              std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start);
          std::fprintf(stderr, "%s [elapsed %lld ms]\n", e.what(), static_cast<long long>(ms.count()));
          std::_Exit(3);
        }
        std::_Exit(0);
      },
      ::testing::ExitedWithCode(3),
      "GPU [0-9]+: copy_wait_self_test: a barrier nobody arrives on did not complete within 300 ms "
      "\\(NVRAR_TIMEOUT_MS; block [0-7], thread [0-9]+,.*\\[elapsed ([3-9][0-9][0-9]|[1-4][0-9]{3}) ms\\]");
}

// The prefill grid's sections (prefill_grid.cuh; CPU): as many KV heads as fit their K and V in 70% of L2, a divisor
// of the KV heads, at least 1. 50 MiB is an H100's or H200's L2.
TEST(FlashPrefillGpu, SectionsFitTheirKeysAndValuesInL2) {
  const int64_t l2 = int64_t{50} << 20;
  const auto kv_heads = [&](int kv, int head_dim, int64_t max_len, int64_t l2_bytes) {
    eg::AttentionShape s{};
    s.q_heads = 4 * kv;
    s.kv_heads = kv;
    s.head_dim = head_dim;
    s.max_len = max_len;
    return eg::prefill_section_kv_heads(s, l2_bytes);
  };
  EXPECT_EQ(kv_heads(8, 128, 4096, l2), 8);     // 2 MiB per KV head
  EXPECT_EQ(kv_heads(8, 128, 8192, l2), 8);     // 4 MiB: 8 of them are 32 MiB <= 35 MiB
  EXPECT_EQ(kv_heads(8, 128, 16384, l2), 4);    // 8 MiB: 4 fit
  EXPECT_EQ(kv_heads(8, 128, 32768, l2), 2);    // 16 MiB: 2 fit
  EXPECT_EQ(kv_heads(8, 128, 131072, l2), 1);   // 64 MiB: none fits, still 1
  EXPECT_EQ(kv_heads(6, 128, 8192, l2), 6);     // 8 fit, 6 heads
  EXPECT_EQ(kv_heads(6, 128, 12288, l2), 3);    // 5 fit: the largest divisor of 6 below is 3
  EXPECT_EQ(kv_heads(3, 64, 300, l2), 3);
  EXPECT_EQ(kv_heads(8, 128, 0, l2), 8);        // an empty call still gets a section
  EXPECT_EQ(kv_heads(8, 128, 8192, 0), 1);      // L2 size unknown: one KV group
}

// The prefill grid's block order (prefill_grid.cuh, on the CPU): every (tile, head) exactly once; inside a section
// the tiles in the plan's order with the section's heads fastest; sections of whole KV groups, one after another.
TEST(FlashPrefillGpu, GridCoversEveryTileAndHeadOnce) {
  std::vector<nvrar::engine::PrefillTile> tiles(5);
  for (int i = 0; i < 5; ++i) tiles[i].row0 = 100 * i;
  for (const int section_heads : {1, 4, 8, 32}) {
    const eg::PrefillGrid g{5 * 32, 5, static_cast<unsigned>(section_heads)};
    std::vector<int> seen(5 * 32, 0);
    for (unsigned b = 0; b < g.blocks; ++b) {
      const eg::PrefillBlock block = eg::prefill_block(tiles.data(), g, b);
      const int tile = block.tile.row0 / 100;
      ASSERT_GE(block.head, 0);
      ASSERT_LT(block.head, 32);
      ++seen[tile * 32 + block.head];
      const unsigned within = b % (5 * section_heads);
      EXPECT_EQ(tile, static_cast<int>(within / section_heads)) << "block " << b;
      EXPECT_EQ(block.head / section_heads, static_cast<int>(b / (5 * section_heads))) << "block " << b;
    }
    for (const int n : seen) EXPECT_EQ(n, 1) << "section of " << section_heads << " heads";
  }
}

TEST(FlashPrefillGpu, SupportedShapes) {
  using eg::FlashKernel;
  EXPECT_FALSE(eg::flash_prefill_supports_head_dim(32));
  EXPECT_TRUE(eg::flash_prefill_supports_head_dim(128));
  EXPECT_TRUE(eg::flash_prefill_supports(FlashKernel::kMma64, 256));
  EXPECT_FALSE(eg::flash_prefill_supports(FlashKernel::kMma128, 256));
  EXPECT_FALSE(eg::flash_prefill_supports(FlashKernel::kWgmma, 256));
  EXPECT_TRUE(eg::flash_prefill_supports(FlashKernel::kWgmma, 64));
  EXPECT_TRUE(eg::flash_prefill_supports(FlashKernel::kWgmmaOverlap, 128));
  EXPECT_TRUE(eg::flash_prefill_supports(FlashKernel::kWgmmaWs, 64));
  EXPECT_FALSE(eg::flash_prefill_supports(FlashKernel::kWgmmaWs, 256));
  EXPECT_FALSE(eg::flash_prefill_supports(FlashKernel::kWgmmaOverlap, 256));
  EXPECT_FALSE(eg::flash_prefill_supports(FlashKernel::kMma128, 96));
  EXPECT_EQ(eg::flash_tile_rows(FlashKernel::kMma64), 64);
  EXPECT_EQ(eg::flash_tile_rows(FlashKernel::kWgmma), 128);
  EXPECT_EQ(eg::flash_tile_rows(FlashKernel::kWgmmaOverlap), 128);
  EXPECT_EQ(eg::flash_tile_rows(FlashKernel::kWgmmaTma), 128);
  EXPECT_TRUE(eg::flash_prefill_supports(FlashKernel::kWgmmaTma, 64));
  EXPECT_FALSE(eg::flash_prefill_supports(FlashKernel::kWgmmaTma, 256));
  // Refused before any CUDA call, naming the kernel and the shape.
  const eg::AttentionShape s{1, 3 * 256, 1, 1, 256, 8, 1};
  try {
    eg::flash_prefill_attention(nullptr, nullptr, 1, nullptr, nullptr, s, FlashKernel::kMma128, nullptr, nullptr);
    ADD_FAILURE() << "128-row tiles at head_dim 256 were accepted";
  } catch (const nvrar::Error& e) {
    EXPECT_NE(std::string(e.what()).find("flash128 (128-row tiles): head_dim 256"), std::string::npos) << e.what();
  }
  try {
    eg::flash_prefill_attention(nullptr, nullptr, 1, nullptr, nullptr, s, FlashKernel::kWgmmaOverlap, nullptr, nullptr);
    ADD_FAILURE() << "wgmma2 at head_dim 256 was accepted";
  } catch (const nvrar::Error& e) {
    EXPECT_NE(std::string(e.what()).find("wgmma2 (128-row tiles, softmax overlapped): head_dim 256"),
              std::string::npos)
        << e.what();
  }
}

}  // namespace
