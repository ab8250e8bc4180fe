// The weights of a Llama-3.x model: their HF checkpoint names and full (unsharded) shapes.
//
// Per layer i: model.layers.{i}.self_attn.{q,k,v,o}_proj.weight, model.layers.{i}.mlp.{gate,up,down}_proj.weight,
// model.layers.{i}.input_layernorm.weight, model.layers.{i}.post_attention_layernorm.weight. Once per model:
// model.embed_tokens.weight, model.norm.weight and lm_head.weight (absent from a checkpoint with tied embeddings:
// the output projection then reads embed_tokens). A linear layer's weight is [out_features, in_features].
//
// check_checkpoint() checks a checkpoint against a config on the CPU, before any GPU is touched: every tensor the
// model reads is there, in bf16, with the config's shape (its file's header is read; no weight data is).
#pragma once

#include <array>
#include <cstdint>
#include <string>

#include "engine/checkpoint.h"
#include "engine/model_config.h"
#include "engine/shape.h"

namespace nvrar::engine {

enum class Weight {
  kEmbedTokens,
  kQProj,
  kKProj,
  kVProj,
  kOProj,
  kGateProj,
  kUpProj,
  kDownProj,
  kInputLayernorm,
  kPostAttentionLayernorm,
  kFinalNorm,
  kLmHead,
};
inline constexpr std::array kAllWeights = {
    Weight::kEmbedTokens, Weight::kQProj,  Weight::kKProj,    Weight::kVProj,          Weight::kOProj,
    Weight::kGateProj,    Weight::kUpProj, Weight::kDownProj, Weight::kInputLayernorm, Weight::kPostAttentionLayernorm,
    Weight::kFinalNorm,   Weight::kLmHead,
};

// "q_proj", "embed_tokens", "lm_head", ...
const char* weight_name(Weight weight);
// One per layer (q_proj ... post_attention_layernorm), as opposed to once per model.
bool is_layer_weight(Weight weight);
// [out, in] for the projections and embeddings, [hidden_size] for the norms.
Shape weight_shape(const ModelConfig& config, Weight weight);
// The checkpoint's tensor name ("model.layers.3.self_attn.q_proj.weight"); `layer` is ignored for the weights that
// exist once (for the others, Error unless 0 <= layer < num_layers). With tied embeddings lm_head names
// model.embed_tokens.weight, the tensor it reads.
std::string checkpoint_tensor_name(const ModelConfig& config, Weight weight, std::int64_t layer = 0);

// Error (naming the index or safetensors file, the tensor and the cause) unless every weight of `config`'s layers
// 0 .. num_layers - 1 and the model's others are in `checkpoint` as BF16 with weight_shape(). Maps the files it
// looks in (kept mapped by `checkpoint` for the load that follows).
void check_checkpoint(const ModelConfig& config, Checkpoint& checkpoint);

}  // namespace nvrar::engine
