// Tensor-parallel sharding arithmetic (sharding.h).
#include "engine/sharding.h"

#include <algorithm>
#include <string>

#include "engine/error.h"

namespace nvrar::engine {

namespace {

std::int64_t ceil_div(std::int64_t a, std::int64_t b) { return (a + b - 1) / b; }

// The `index`-th of `parts` equal pieces of [0, total) (total % parts == 0, checked by the caller).
Range even_part(std::int64_t total, std::int64_t parts, std::int64_t index) {
  const std::int64_t size = total / parts;
  return {index * size, (index + 1) * size};
}

Range scaled(Range heads, std::int64_t head_dim) { return {heads.begin * head_dim, heads.end * head_dim}; }

WeightShard replicated(const Shape& full) { return {std::nullopt, {0, full[0]}, full}; }

WeightShard split(const Shape& full, Axis axis, Range range) {
  WeightShard s{axis, range, full};
  s.shape[axis == Axis::kRows ? 0 : 1] = range.size();
  return s;
}

}  // namespace

Range vocab_range(std::int64_t vocab_size, std::int64_t world_size, std::int64_t rank) {
  if (world_size < 1 || rank < 0 || rank >= world_size)
    fail("vocab_range: rank {} of {} ranks (needs 0 <= rank < ranks)", rank, world_size);
  const std::int64_t shard = ceil_div(vocab_size, world_size);
  return {std::min(vocab_size, rank * shard), std::min(vocab_size, (rank + 1) * shard)};
}

void check_tensor_parallel(const ModelConfig& c, std::int64_t p, EmbeddingSharding embedding) {
  if (p < 1) fail("{}: tensor parallelism over {} ranks: needs at least one rank", c.source, p);
  const auto bad = [&](const char* field, std::int64_t value, const std::string& why) {
    fail("{}: tensor parallelism over {} ranks: {} ({}) {}", c.source, p, field, value, why);
  };
  if (c.num_heads % p != 0) bad("num_attention_heads", c.num_heads, fmt::format("is not divisible by {}", p));
  if (p <= c.num_kv_heads && c.num_kv_heads % p != 0)
    bad("num_key_value_heads", c.num_kv_heads,
        fmt::format("is not divisible by {}: with no more ranks than KV heads, each rank takes an equal share", p));
  if (p > c.num_kv_heads && p % c.num_kv_heads != 0)
    bad("num_key_value_heads", c.num_kv_heads,
        fmt::format("does not divide {}: each KV head must be replicated on the same number of ranks", p));
  if (c.intermediate_size % p != 0)
    bad("intermediate_size", c.intermediate_size, fmt::format("is not divisible by {}", p));
  if (embedding == EmbeddingSharding::kVocabParallel && vocab_range(c.vocab_size, p, p - 1).size() <= 0)
    bad("vocab_size", c.vocab_size,
        fmt::format("in shards of {} leaves the last rank no rows (use a replicated embedding)",
                    ceil_div(c.vocab_size, p)));
}

TpRank tp_rank(const ModelConfig& c, std::int64_t world_size, std::int64_t rank, EmbeddingSharding embedding) {
  check_tensor_parallel(c, world_size, embedding);
  if (rank < 0 || rank >= world_size)
    fail("{}: tensor parallelism over {} ranks: rank {} is not in 0 to {}", c.source, world_size, rank, world_size - 1);
  TpRank t;
  t.world_size = world_size;
  t.rank = rank;
  t.embedding = embedding;
  t.q_heads = even_part(c.num_heads, world_size, rank);
  if (world_size <= c.num_kv_heads) {
    t.kv_heads = even_part(c.num_kv_heads, world_size, rank);
  } else {
    t.kv_replicas = world_size / c.num_kv_heads;
    const std::int64_t head = rank / t.kv_replicas;
    t.kv_heads = {head, head + 1};
  }
  t.intermediate = even_part(c.intermediate_size, world_size, rank);
  t.vocab = embedding == EmbeddingSharding::kVocabParallel ? vocab_range(c.vocab_size, world_size, rank)
                                                           : Range{0, c.vocab_size};
  return t;
}

WeightShard weight_shard(const ModelConfig& c, const TpRank& t, Weight weight) {
  const Shape full = weight_shape(c, weight);
  switch (weight) {
    case Weight::kQProj:
      return split(full, Axis::kRows, scaled(t.q_heads, c.head_dim));
    case Weight::kKProj:
    case Weight::kVProj:
      return split(full, Axis::kRows, scaled(t.kv_heads, c.head_dim));
    case Weight::kOProj:
      return split(full, Axis::kColumns, scaled(t.q_heads, c.head_dim));
    case Weight::kGateProj:
    case Weight::kUpProj:
      return split(full, Axis::kRows, t.intermediate);
    case Weight::kDownProj:
      return split(full, Axis::kColumns, t.intermediate);
    case Weight::kEmbedTokens:
    case Weight::kLmHead:
      return t.embedding == EmbeddingSharding::kVocabParallel ? split(full, Axis::kRows, t.vocab) : replicated(full);
    case Weight::kInputLayernorm:
    case Weight::kPostAttentionLayernorm:
    case Weight::kFinalNorm:
      return replicated(full);
  }
  fail("unknown weight value {}", int(weight));
}

std::int64_t rank_parameter_count(const ModelConfig& c, const TpRank& t) {
  std::int64_t total = 0;
  for (const Weight w : kAllWeights) {
    if (w == Weight::kLmHead && c.tie_word_embeddings) continue;
    total += shape_numel(weight_shard(c, t, w).shape) * (is_layer_weight(w) ? c.num_layers : 1);
  }
  return total;
}

}  // namespace nvrar::engine
