// Tensor-parallel sharding arithmetic (src/engine/sharding.h) for the three Llama-3.1 presets over P = 1..16
// ranks: the shards of every weight partition its split dimension exactly, head counts, KV-head replication
// when P exceeds the KV heads, GQA consistency (a rank's query heads use only its KV heads), uneven vocabulary
// shards, per-rank parameter counts, and the errors for P that does not fit.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "engine/llama_weights.h"
#include "engine/model_config.h"
#include "engine/sharding.h"
#include "engine_test_support.h"
#include "nvrar/types.h"

namespace nvrar::engine {
namespace {

constexpr std::int64_t kWorldSizes[] = {1, 2, 4, 8, 16};

using test_support::error_of;

std::string error_of_tp(const ModelConfig& config, std::int64_t p) {
  return error_of([&] { check_tensor_parallel(config, p); });
}

// Every preset at every P: the ranks' ranges of each split weight tile its dimension in rank order with no gap
// or overlap; replicated weights are whole on every rank.
TEST(Sharding, ShardsPartitionEveryWeight) {
  for (const std::string& name : preset_names()) {
    const ModelConfig c = preset_config(name);
    for (const std::int64_t p : kWorldSizes) {
      for (const Weight w : kAllWeights) {
        const Shape full = weight_shape(c, w);
        const bool kv = w == Weight::kKProj || w == Weight::kVProj;
        if (kv && p > c.num_kv_heads) continue;  // replicated KV heads: ShardingReplicatesKvHeads
        std::int64_t next = 0;
        for (std::int64_t r = 0; r < p; ++r) {
          const WeightShard s = weight_shard(c, tp_rank(c, p, r), w);
          SCOPED_TRACE(name + " P=" + std::to_string(p) + " rank " + std::to_string(r) + " " + weight_name(w));
          if (!s.split) {
            EXPECT_EQ(s.shape, full);
            EXPECT_EQ(s.range, (Range{0, full[0]}));
            continue;
          }
          const std::size_t dim = *s.split == Axis::kRows ? 0 : 1;
          EXPECT_EQ(s.range.begin, next);
          EXPECT_GT(s.range.size(), 0);
          EXPECT_EQ(s.shape[dim], s.range.size());
          EXPECT_EQ(s.shape[1 - dim], full[1 - dim]);
          next = s.range.end;
          if (r == p - 1) EXPECT_EQ(next, full[dim]);
        }
      }
    }
  }
}

TEST(Sharding, SplitAxes) {
  const ModelConfig c = preset_config("llama3.1-8b");
  const TpRank t = tp_rank(c, 4, 1);
  const auto axis = [&](Weight w) { return weight_shard(c, t, w).split; };
  for (const Weight w : {Weight::kQProj, Weight::kKProj, Weight::kVProj, Weight::kGateProj, Weight::kUpProj,
                         Weight::kEmbedTokens, Weight::kLmHead})
    EXPECT_EQ(axis(w), Axis::kRows) << weight_name(w);  // column-parallel: output features
  for (const Weight w : {Weight::kOProj, Weight::kDownProj})
    EXPECT_EQ(axis(w), Axis::kColumns) << weight_name(w);  // row-parallel: input features, then all-reduce
  for (const Weight w : {Weight::kInputLayernorm, Weight::kPostAttentionLayernorm, Weight::kFinalNorm})
    EXPECT_FALSE(axis(w).has_value()) << weight_name(w);
  // Rank 1 of 4 on 8B: query heads 8..15 = q_proj rows 1024..2047; KV heads 2..3 = rows 256..511;
  // intermediate 3584..7167; vocabulary 32064..64127.
  EXPECT_EQ(weight_shard(c, t, Weight::kQProj).range, (Range{1024, 2048}));
  EXPECT_EQ(weight_shard(c, t, Weight::kOProj).shape, (Shape{4096, 1024}));
  EXPECT_EQ(weight_shard(c, t, Weight::kKProj).range, (Range{256, 512}));
  EXPECT_EQ(weight_shard(c, t, Weight::kDownProj).range, (Range{3584, 7168}));
  EXPECT_EQ(weight_shard(c, t, Weight::kEmbedTokens).shape, (Shape{32064, 4096}));
  EXPECT_EQ(t.vocab, (Range{32064, 64128}));
  // A replicated embedding keeps the whole table on every rank.
  const TpRank rep = tp_rank(c, 4, 1, EmbeddingSharding::kReplicated);
  EXPECT_FALSE(weight_shard(c, rep, Weight::kLmHead).split.has_value());
  EXPECT_EQ(rep.vocab, (Range{0, 128256}));
}

TEST(Sharding, HeadCounts) {
  for (const std::string& name : preset_names()) {
    const ModelConfig c = preset_config(name);
    for (const std::int64_t p : kWorldSizes)
      for (std::int64_t r = 0; r < p; ++r) {
        const TpRank t = tp_rank(c, p, r);
        EXPECT_EQ(t.q_heads.size(), c.num_heads / p);
        EXPECT_EQ(t.q_heads.begin, r * (c.num_heads / p));
        EXPECT_EQ(t.kv_heads.size(), std::max<std::int64_t>(1, c.num_kv_heads / p));
        EXPECT_EQ(t.kv_replicas, std::max<std::int64_t>(1, p / c.num_kv_heads));
        EXPECT_EQ(t.intermediate.size(), c.intermediate_size / p);
        // GQA: query head q attends to KV head q / (H / KV); it must be one of this rank's.
        const std::int64_t group = c.num_heads / c.num_kv_heads;
        for (std::int64_t q = t.q_heads.begin; q < t.q_heads.end; ++q) {
          EXPECT_GE(q / group, t.kv_heads.begin) << name << " P=" << p << " rank " << r;
          EXPECT_LT(q / group, t.kv_heads.end) << name << " P=" << p << " rank " << r;
        }
      }
  }
  const TpRank t = tp_rank(preset_config("llama3.1-405b"), 16, 5);
  EXPECT_EQ(t.q_heads, (Range{40, 48}));
  EXPECT_EQ(t.intermediate, (Range{16640, 19968}));
}

TEST(Sharding, ReplicatesKvHeadsWhenRanksExceedThem) {
  // 70B at P = 16: 8 KV heads, each on 2 consecutive ranks; rank r holds KV head r / 2.
  const ModelConfig c = preset_config("llama3.1-70b");
  std::vector<int> users(std::size_t(c.num_kv_heads), 0);
  for (std::int64_t r = 0; r < 16; ++r) {
    const TpRank t = tp_rank(c, 16, r);
    EXPECT_EQ(t.kv_replicas, 2);
    EXPECT_EQ(t.kv_heads, (Range{r / 2, r / 2 + 1}));
    EXPECT_EQ(t.q_heads.size(), 4);
    for (const Weight w : {Weight::kKProj, Weight::kVProj}) {
      const WeightShard s = weight_shard(c, t, w);
      EXPECT_EQ(s.range, (Range{(r / 2) * 128, (r / 2 + 1) * 128}));
      EXPECT_EQ(s.shape, (Shape{128, 8192}));
    }
    ++users[std::size_t(t.kv_heads.begin)];
  }
  for (const int n : users) EXPECT_EQ(n, 2);
  // 8B at P = 32 (one query head per rank): each KV head on 4 ranks.
  const ModelConfig c8 = preset_config("llama3.1-8b");
  EXPECT_EQ(tp_rank(c8, 32, 31).kv_heads, (Range{7, 8}));
  EXPECT_EQ(tp_rank(c8, 32, 31).kv_replicas, 4);
}

TEST(Sharding, UnevenVocabularyShards) {
  // 128256 = 2^8 x 501 splits evenly over every P up to 16 ...
  for (const std::int64_t p : kWorldSizes) EXPECT_EQ(vocab_range(128256, p, p - 1).size(), 128256 / p);
  // ... but not over 7: ceil(128256 / 7) = 18323 rows, the last shard 128256 - 6 x 18323 = 18318.
  EXPECT_EQ(vocab_range(128256, 7, 0), (Range{0, 18323}));
  EXPECT_EQ(vocab_range(128256, 7, 6), (Range{109938, 128256}));
  // A vocabulary padded by one: the last of 8 shards is 7 rows short of the others.
  ModelConfig c = preset_config("llama3.1-8b");
  c.vocab_size = 128259;
  std::int64_t next = 0;
  for (std::int64_t r = 0; r < 8; ++r) {
    const WeightShard s = weight_shard(c, tp_rank(c, 8, r), Weight::kLmHead);
    EXPECT_EQ(s.range.begin, next);
    EXPECT_EQ(s.range.size(), r < 7 ? 16033 : 16028);
    next = s.range.end;
  }
  EXPECT_EQ(next, 128259);
  // Too small a vocabulary leaves the last rank nothing: 10 tokens in shards of 3 over 4 ranks would, 9 over 4 not.
  c.vocab_size = 9;
  EXPECT_HAS(error_of_tp(c, 4), "vocab_size (9)");
  EXPECT_NO_THROW(check_tensor_parallel(c, 4, EmbeddingSharding::kReplicated));
  c.vocab_size = 10;
  EXPECT_NO_THROW(check_tensor_parallel(c, 4));
}

TEST(Sharding, RankParameterCounts) {
  // Without replicated KV heads, the ranks' parameters add up to the model's plus the replicated norms' copies.
  for (const std::string& name : preset_names()) {
    const ModelConfig c = preset_config(name);
    const std::int64_t norms = (2 * c.num_layers + 1) * c.hidden_size;
    for (const std::int64_t p : {1, 2, 4, 8}) {
      std::int64_t sum = 0;
      for (std::int64_t r = 0; r < p; ++r) sum += rank_parameter_count(c, tp_rank(c, p, r));
      EXPECT_EQ(sum, count_parameters(c).total + (p - 1) * norms) << name << " P=" << p;
    }
  }
  // 70B at P = 16 also holds each K and V head twice.
  const ModelConfig c = preset_config("llama3.1-70b");
  std::int64_t sum = 0;
  for (std::int64_t r = 0; r < 16; ++r) sum += rank_parameter_count(c, tp_rank(c, 16, r));
  const std::int64_t norms = (2 * c.num_layers + 1) * c.hidden_size;
  const std::int64_t kv = 2 * c.kv_size() * c.hidden_size * c.num_layers;
  EXPECT_EQ(sum, count_parameters(c).total + 15 * norms + kv);
}

TEST(Sharding, ErrorsNameTheConfigTheFieldAndP) {
  const ModelConfig c8 = preset_config("llama3.1-8b");
  std::string m = error_of_tp(c8, 3);
  EXPECT_HAS(m, "preset llama3.1-8b");
  EXPECT_HAS(m, "over 3 ranks");
  EXPECT_HAS(m, "num_attention_heads (32) is not divisible by 3");
  EXPECT_HAS(error_of_tp(c8, 64), "num_attention_heads (32)");
  EXPECT_HAS(error_of_tp(preset_config("llama3.1-70b"), 12), "num_attention_heads (64)");
  EXPECT_HAS(error_of_tp(c8, 0), "at least one rank");

  // KV heads that P neither divides nor is a multiple of; 12 query heads.
  ModelConfig odd = c8;
  odd.num_heads = 12;
  odd.num_kv_heads = 6;
  EXPECT_HAS(error_of_tp(odd, 4), "num_key_value_heads (6) is not divisible by 4");
  odd.num_kv_heads = 3;
  m = error_of_tp(odd, 4);
  EXPECT_HAS(m, "num_key_value_heads (3) does not divide 4");
  EXPECT_HAS(m, "replicated");

  ModelConfig inter = c8;
  inter.intermediate_size = 14340;  // divisible by 4, not by 8
  EXPECT_NO_THROW(check_tensor_parallel(inter, 4));
  EXPECT_HAS(error_of_tp(inter, 8), "intermediate_size (14340) is not divisible by 8");

  EXPECT_HAS(error_of([&] { tp_rank(c8, 4, 4); }), "rank 4 is not in 0 to 3");
}

}  // namespace
}  // namespace nvrar::engine
