// The chunked prefill plan (src/engine/prefill_plan.h): every prompt token appears once, in order, with its
// sequence, position and causal length; chunks respect the size; tiles cover each chunk's rows without crossing a
// sequence, longest attention first; the sequences ending in a chunk and their last rows; errors.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <map>
#include <random>
#include <vector>

#include "engine/prefill_plan.h"
#include "nvrar/types.h"

namespace {

using nvrar::engine::plan_prefill;
using nvrar::engine::PrefillChunk;
using nvrar::engine::PrefillTile;

std::vector<std::vector<int32_t>> prompts_of(const std::vector<int>& lengths) {
  std::vector<std::vector<int32_t>> p;
  int32_t next = 0;
  for (const int len : lengths) {
    p.emplace_back();
    for (int i = 0; i < len; ++i) p.back().push_back(next++);
  }
  return p;
}

// Replays the plan and checks it against the prompts; with group_keys, the tiles' groups against groups made here
// from the rows (each sequence's keys = its longest attention length among the chunk's rows).
void check_plan(const std::vector<int>& lengths, int64_t chunk, int tile, int64_t group_keys = 0) {
  const auto prompts = prompts_of(lengths);
  const auto plan = plan_prefill(prompts, chunk, tile, group_keys);
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
    // Groups of consecutive sequences whose keys fit group_keys (a sequence alone where it does not), in order;
    // inside a group longest attention first (the kernels start blocks in this order), ties in row order.
    std::map<int32_t, int64_t> seq_keys;  // sequence -> its keys in this chunk
    for (int64_t r = 0; r < c.rows(); ++r) seq_keys[c.seq[r]] = std::max<int64_t>(seq_keys[c.seq[r]], c.lengths[r]);
    std::map<int32_t, int> group_of;
    int group = 0;
    int64_t sum = 0;
    for (const auto& [seq, keys] : seq_keys) {
      if (group_keys > 0 && sum > 0 && sum + keys > group_keys) {
        ++group;
        sum = 0;
      }
      sum += keys;
      group_of[seq] = group;
    }
    for (std::size_t i = 1; i < c.tiles.size(); ++i) {
      const auto &a = c.tiles[i - 1], &t = c.tiles[i];
      const int ga = group_of.at(a.seq), gt = group_of.at(t.seq);
      EXPECT_TRUE(ga < gt || (ga == gt && (a.pos0 + a.count > t.pos0 + t.count ||
                                           (a.pos0 + a.count == t.pos0 + t.count && a.row0 < t.row0))))
          << "tile " << i << " (groups " << ga << ", " << gt << ")";
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
    check_plan(lengths, 1 + rng() % 400, 1 + static_cast<int>(rng() % 80), 1 + rng() % 600);
  }
}

TEST(PrefillPlan, OneChunkWhenItFits) {
  const auto plan = plan_prefill(prompts_of({100, 100}), 200, 64);
  ASSERT_EQ(plan.size(), 1u);
  EXPECT_EQ(plan[0].first_done, 0);
  EXPECT_EQ(plan[0].done_rows, (std::vector<int32_t>{99, 199}));
  EXPECT_EQ(plan[0].tiles.size(), 4u);  // 64 + 36 per sequence
}

// Keys of a tile: its attention length at its last row.
int64_t keys(const PrefillTile& t) { return static_cast<int64_t>(t.pos0) + t.count; }

// Tiles [first, last) are one group: the sequences `seqs`, longest attention first (ties in row order).
void expect_group(const PrefillChunk& c, std::size_t first, std::size_t last, std::vector<int32_t> seqs) {
  std::vector<int32_t> seen;
  for (std::size_t i = first; i < last; ++i) {
    if (std::find(seen.begin(), seen.end(), c.tiles[i].seq) == seen.end()) seen.push_back(c.tiles[i].seq);
    if (i > first) {
      const auto &a = c.tiles[i - 1], &t = c.tiles[i];
      EXPECT_TRUE(keys(a) > keys(t) || (keys(a) == keys(t) && a.row0 < t.row0)) << "tile " << i;
    }
  }
  std::sort(seen.begin(), seen.end());
  EXPECT_EQ(seen, seqs) << "tiles " << first << " to " << last;
}

// Groups of consecutive sequences whose keys fit group_keys, each longest first, in sequence order.
TEST(PrefillPlan, GroupsOfSequencesWhoseKeysFit) {
  // 8 x 2048 in one chunk, groups of 8960 keys (an 8B model's K and V in 70% of a 50 MB L2): 4 sequences each.
  auto plan = plan_prefill(prompts_of({2048, 2048, 2048, 2048, 2048, 2048, 2048, 2048}), 16384, 128, 8960);
  ASSERT_EQ(plan.size(), 1u);
  ASSERT_EQ(plan[0].tiles.size(), 128u);
  expect_group(plan[0], 0, 64, {0, 1, 2, 3});
  expect_group(plan[0], 64, 128, {4, 5, 6, 7});
  EXPECT_EQ(plan[0].tiles[0].seq, 0);
  EXPECT_EQ(plan[0].tiles[64].seq, 4);
  EXPECT_EQ(keys(plan[0].tiles[64]), 2048);
  // A sequence of more keys than a group takes is a group of its own; the next one starts another.
  plan = plan_prefill(prompts_of({100, 9000, 50}), 20000, 64, 8960);
  ASSERT_EQ(plan.size(), 1u);
  ASSERT_EQ(plan[0].tiles.size(), 2u + 141u + 1u);
  expect_group(plan[0], 0, 2, {0});
  expect_group(plan[0], 2, 143, {1});
  expect_group(plan[0], 143, 144, {2});
  // A sequence continued from an earlier chunk counts the keys it attends to, not only its rows in this chunk:
  // 6000 + 2192 keys fit 8960 in the first chunk; the second chunk's 3808 rows attend to up to 6000 keys.
  plan = plan_prefill(prompts_of({6000, 6000}), 8192, 128, 8960);
  ASSERT_EQ(plan.size(), 2u);
  expect_group(plan[0], 0, plan[0].tiles.size(), {0, 1});
  expect_group(plan[1], 0, plan[1].tiles.size(), {1});
  // Keys, not rows: the second chunk holds 2000 rows of sequence 0 (6000 keys) and 1000 of sequence 1: 7000 keys
  // are over 6500 (3000 rows would not be), so two groups.
  plan = plan_prefill(prompts_of({6000, 1000}), 4000, 128, 6500);
  ASSERT_EQ(plan.size(), 2u);
  expect_group(plan[1], 0, (2000 + 127) / 128, {0});
  expect_group(plan[1], (2000 + 127) / 128, plan[1].tiles.size(), {1});
  plan = plan_prefill(prompts_of({6000, 6000}), 8192, 128, 7000);  // 6000 + 2192 > 7000: two groups
  const std::size_t first_group = (6000 + 127) / 128;
  expect_group(plan[0], 0, first_group, {0});
  expect_group(plan[0], first_group, plan[0].tiles.size(), {1});
  // group_keys 0: one group, longest first across the chunk (the order without groups).
  plan = plan_prefill(prompts_of({2048, 2048, 2048}), 16384, 128, 0);
  expect_group(plan[0], 0, plan[0].tiles.size(), {0, 1, 2});
  EXPECT_EQ(nvrar::engine::prefill_group_keys(8 * 128 * 4, int64_t{50} << 20), 8960);
  EXPECT_EQ(nvrar::engine::prefill_group_keys(8 * 128 * 4, 0), 0);
}

TEST(PrefillPlan, Errors) {
  EXPECT_THROW(plan_prefill({}, 8, 4), nvrar::Error);
  EXPECT_THROW(plan_prefill(prompts_of({3, 0}), 8, 4), nvrar::Error);
  EXPECT_THROW(plan_prefill(prompts_of({3}), 0, 4), nvrar::Error);
  EXPECT_THROW(plan_prefill(prompts_of({3}), 8, 0), nvrar::Error);
  EXPECT_THROW(plan_prefill(prompts_of({3}), 8, 4, -1), nvrar::Error);
}

}  // namespace
