// The chunked prefill plan (src/engine/prefill_plan.h): every prompt token appears once, in order, with its
// sequence, position and causal length; chunks respect the size; tiles cover each chunk's rows without crossing a
// sequence, longest attention first; the sequences ending in a chunk and their last rows; errors.
#include <gtest/gtest.h>

#include <random>
#include <vector>

#include "engine/prefill_plan.h"
#include "nvrar/types.h"

namespace {

using nvrar::engine::plan_prefill;
using nvrar::engine::PrefillChunk;

std::vector<std::vector<int32_t>> prompts_of(const std::vector<int>& lengths) {
  std::vector<std::vector<int32_t>> p;
  int32_t next = 0;
  for (const int len : lengths) {
    p.emplace_back();
    for (int i = 0; i < len; ++i) p.back().push_back(next++);
  }
  return p;
}

// Replays the plan and checks it against the prompts.
void check_plan(const std::vector<int>& lengths, int64_t chunk, int tile) {
  const auto prompts = prompts_of(lengths);
  const auto plan = plan_prefill(prompts, chunk, tile);
  std::size_t b = 0;
  int32_t pos = 0;
  int64_t total = 0;
  for (const PrefillChunk& c : plan) {
    ASSERT_GE(c.rows(), 1);
    ASSERT_LE(c.rows(), chunk);
    ASSERT_EQ(c.seq.size(), c.tokens.size());
    int64_t max_len = 0;
    std::vector<int> covered(c.tokens.size(), 0);
    for (const auto& t : c.tiles) {
      ASSERT_GE(t.count, 1);
      ASSERT_LE(t.count, tile);
      for (int i = 0; i < t.count; ++i) {
        ++covered[t.row0 + i];
        EXPECT_EQ(c.seq[t.row0 + i], t.seq);
        EXPECT_EQ(c.positions[t.row0 + i], t.pos0 + i);
      }
    }
    for (const int n : covered) EXPECT_EQ(n, 1);
    // Longest attention first (the kernels start blocks in this order), ties in row order.
    for (std::size_t i = 1; i < c.tiles.size(); ++i) {
      const auto &a = c.tiles[i - 1], &t = c.tiles[i];
      EXPECT_TRUE(a.pos0 + a.count > t.pos0 + t.count || (a.pos0 + a.count == t.pos0 + t.count && a.row0 < t.row0))
          << "tile " << i;
    }
    std::vector<int32_t> done;
    int32_t first_done = -1;
    for (int64_t r = 0; r < c.rows(); ++r) {
      ASSERT_LT(b, prompts.size());
      EXPECT_EQ(c.seq[r], static_cast<int32_t>(b));
      EXPECT_EQ(c.positions[r], pos);
      EXPECT_EQ(c.lengths[r], pos + 1);
      EXPECT_EQ(c.tokens[r], prompts[b][pos]);
      max_len = std::max<int64_t>(max_len, pos + 1);
      ++total;
      if (++pos == static_cast<int32_t>(prompts[b].size())) {
        if (first_done < 0) first_done = static_cast<int32_t>(b);
        done.push_back(static_cast<int32_t>(r));
        ++b;
        pos = 0;
      }
    }
    EXPECT_EQ(c.done_rows, done);
    if (!done.empty()) EXPECT_EQ(c.first_done, first_done);
    EXPECT_EQ(c.max_len, max_len);
  }
  EXPECT_EQ(b, prompts.size());
  int64_t want = 0;
  for (const int l : lengths) want += l;
  EXPECT_EQ(total, want);
}

TEST(PrefillPlan, CoversEveryTokenInOrder) {
  check_plan({5}, 8, 4);
  check_plan({8}, 8, 64);
  check_plan({1, 1, 1}, 2, 64);
  check_plan({300, 7, 2048, 1, 65}, 512, 64);
  check_plan({9000}, 2048, 64);
  std::mt19937 rng(42);
  for (int trial = 0; trial < 50; ++trial) {
    std::vector<int> lengths(1 + rng() % 9);
    for (int& l : lengths) l = 1 + static_cast<int>(rng() % 300);
    check_plan(lengths, 1 + rng() % 400, 1 + static_cast<int>(rng() % 80));
  }
}

TEST(PrefillPlan, OneChunkWhenItFits) {
  const auto plan = plan_prefill(prompts_of({100, 100}), 200, 64);
  ASSERT_EQ(plan.size(), 1u);
  EXPECT_EQ(plan[0].first_done, 0);
  EXPECT_EQ(plan[0].done_rows, (std::vector<int32_t>{99, 199}));
  EXPECT_EQ(plan[0].tiles.size(), 4u);  // 64 + 36 per sequence
}

TEST(PrefillPlan, Errors) {
  EXPECT_THROW(plan_prefill({}, 8, 4), nvrar::Error);
  EXPECT_THROW(plan_prefill(prompts_of({3, 0}), 8, 4), nvrar::Error);
  EXPECT_THROW(plan_prefill(prompts_of({3}), 0, 4), nvrar::Error);
  EXPECT_THROW(plan_prefill(prompts_of({3}), 8, 0), nvrar::Error);
}

}  // namespace
