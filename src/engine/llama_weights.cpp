// Llama-3.x weight names and shapes (llama_weights.h).
#include "engine/llama_weights.h"

#include <fmt/format.h>

#include "engine/error.h"

namespace nvrar::engine {

const char* weight_name(Weight weight) {
  switch (weight) {
    case Weight::kEmbedTokens:
      return "embed_tokens";
    case Weight::kQProj:
      return "q_proj";
    case Weight::kKProj:
      return "k_proj";
    case Weight::kVProj:
      return "v_proj";
    case Weight::kOProj:
      return "o_proj";
    case Weight::kGateProj:
      return "gate_proj";
    case Weight::kUpProj:
      return "up_proj";
    case Weight::kDownProj:
      return "down_proj";
    case Weight::kInputLayernorm:
      return "input_layernorm";
    case Weight::kPostAttentionLayernorm:
      return "post_attention_layernorm";
    case Weight::kFinalNorm:
      return "norm";
    case Weight::kLmHead:
      return "lm_head";
  }
  fail("unknown weight value {}", int(weight));
}

bool is_layer_weight(Weight weight) {
  return weight != Weight::kEmbedTokens && weight != Weight::kFinalNorm && weight != Weight::kLmHead;
}

Shape weight_shape(const ModelConfig& c, Weight weight) {
  switch (weight) {
    case Weight::kEmbedTokens:
    case Weight::kLmHead:
      return {c.vocab_size, c.hidden_size};
    case Weight::kQProj:
      return {c.q_size(), c.hidden_size};
    case Weight::kKProj:
    case Weight::kVProj:
      return {c.kv_size(), c.hidden_size};
    case Weight::kOProj:
      return {c.hidden_size, c.q_size()};
    case Weight::kGateProj:
    case Weight::kUpProj:
      return {c.intermediate_size, c.hidden_size};
    case Weight::kDownProj:
      return {c.hidden_size, c.intermediate_size};
    case Weight::kInputLayernorm:
    case Weight::kPostAttentionLayernorm:
    case Weight::kFinalNorm:
      return {c.hidden_size};
  }
  fail("unknown weight value {}", int(weight));
}

std::string checkpoint_tensor_name(const ModelConfig& c, Weight weight, std::int64_t layer) {
  if (is_layer_weight(weight) && (layer < 0 || layer >= c.num_layers))
    fail("{}: {} of layer {}: the model has layers 0 to {}", c.source, weight_name(weight), layer, c.num_layers - 1);
  switch (weight) {
    case Weight::kEmbedTokens:
      return "model.embed_tokens.weight";
    case Weight::kFinalNorm:
      return "model.norm.weight";
    case Weight::kLmHead:
      return c.tie_word_embeddings ? "model.embed_tokens.weight" : "lm_head.weight";
    case Weight::kQProj:
    case Weight::kKProj:
    case Weight::kVProj:
    case Weight::kOProj:
      return fmt::format("model.layers.{}.self_attn.{}.weight", layer, weight_name(weight));
    case Weight::kGateProj:
    case Weight::kUpProj:
    case Weight::kDownProj:
      return fmt::format("model.layers.{}.mlp.{}.weight", layer, weight_name(weight));
    case Weight::kInputLayernorm:
    case Weight::kPostAttentionLayernorm:
      return fmt::format("model.layers.{}.{}.weight", layer, weight_name(weight));
  }
  fail("unknown weight value {}", int(weight));
}

void check_checkpoint(const ModelConfig& config, Checkpoint& checkpoint) {
  for (const Weight w : kAllWeights) {
    const std::int64_t layers = is_layer_weight(w) ? config.num_layers : 1;
    for (std::int64_t layer = 0; layer < layers; ++layer)
      checkpoint.expect_tensor(checkpoint_tensor_name(config, w, layer), TensorDtype::kBF16, weight_shape(config, w));
  }
}

}  // namespace nvrar::engine
