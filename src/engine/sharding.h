// Tensor-parallel sharding of a Llama-3.x model over P ranks: which dimension of each weight is split and the
// [begin, end) that rank r holds. Pure arithmetic on the config; the loader copies these slices (safetensors.h).
//
// Megatron-style layout, two all-reduces per layer:
//   q_proj, k_proj, v_proj, gate_proj, up_proj  column-parallel: rows (output features) split by head / by
//                                               intermediate index; each rank computes its heads and its part
//                                               of the MLP with no communication
//   o_proj, down_proj                           row-parallel: columns (input features) split the same way; each
//                                               rank's product is a partial sum -> all-reduce
//   input/post_attention_layernorm, norm       replicated
//   embed_tokens, lm_head                       vocabulary-parallel (rows split by token id; the embedding lookup
//                                               then needs an all-reduce, the logits an all-gather) or replicated
//
// Heads: num_heads % P == 0, rank r owns query heads [r H/P, (r+1) H/P). KV heads: with P <= num_kv_heads,
// num_kv_heads % P == 0 and rank r owns [r KV/P, (r+1) KV/P); with P > num_kv_heads, P % num_kv_heads == 0 and
// each KV head is replicated on P / KV consecutive ranks: rank r holds KV head r / (P / KV). Either way rank r's
// query heads attend only to its own KV heads (query head q uses KV head q / (H / KV)).
// Intermediate: intermediate_size % P == 0. Vocabulary: shards of ceil(V / P) rows, the last one smaller when P
// does not divide V (Llama-3's 128256 = 2^8 x 501 splits evenly up to P = 256); every rank must get at least one.
//
// Violations are an Error naming the config, the field and P, e.g.
//   nvrar-llm: preset llama3.1-8b: tensor parallelism over 3 ranks: num_attention_heads (32) is not divisible by 3
#pragma once

#include <cstdint>
#include <optional>

#include "engine/llama_weights.h"
#include "engine/model_config.h"
#include "engine/shape.h"

namespace nvrar::engine {

enum class EmbeddingSharding { kVocabParallel, kReplicated };

struct Range {
  std::int64_t begin = 0;
  std::int64_t end = 0;

  std::int64_t size() const { return end - begin; }
  bool operator==(const Range&) const = default;
};

// Rank r of P: what it owns, in heads and indices.
struct TpRank {
  std::int64_t world_size = 1;
  std::int64_t rank = 0;
  EmbeddingSharding embedding = EmbeddingSharding::kVocabParallel;
  Range q_heads;                 // query heads
  Range kv_heads;                // KV heads (one head when they are replicated)
  std::int64_t kv_replicas = 1;  // ranks holding each KV head: P / num_kv_heads when P > num_kv_heads, else 1
  Range intermediate;            // MLP intermediate indices
  Range vocab;                   // token ids of embed_tokens / lm_head rows (all of them when replicated)
};

// Error unless the model can be split over `world_size` ranks (heads, KV heads, intermediate, vocabulary).
void check_tensor_parallel(const ModelConfig& config, std::int64_t world_size,
                           EmbeddingSharding embedding = EmbeddingSharding::kVocabParallel);
TpRank tp_rank(const ModelConfig& config, std::int64_t world_size, std::int64_t rank,
               EmbeddingSharding embedding = EmbeddingSharding::kVocabParallel);

// Token ids [begin, end) of rank r's vocabulary shard: ceil(V / P) each, the last shard what is left.
Range vocab_range(std::int64_t vocab_size, std::int64_t world_size, std::int64_t rank);

// One rank's piece of one weight: `split` is the axis cut (none: the whole weight is replicated), `range` the
// rows or columns it keeps, `shape` the piece's shape.
struct WeightShard {
  std::optional<Axis> split;
  Range range;
  Shape shape;
};
WeightShard weight_shard(const ModelConfig& config, const TpRank& rank, Weight weight);

// Parameters rank r holds (the sum over its weight shards, every layer, lm_head only when untied).
std::int64_t rank_parameter_count(const ModelConfig& config, const TpRank& rank);

}  // namespace nvrar::engine
