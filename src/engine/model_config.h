// The shape of a Llama-3.x model, as nvrar-llm needs it: sizes, attention heads, RoPE parameters, embeddings.
//
// Where a config comes from: a built-in preset (the published HF config.json values of Llama-3.1 8B, 70B and
// 405B, so benchmarks with dummy weights need no download), or any HF config.json (parse_config_json /
// load_config). Every config is validated once, when it is made; an invalid one never leaves this file, and the
// error names its source (the preset or the file) and the HF field at fault, e.g.
//   nvrar-llm: /models/x/config.json: field 'num_key_value_heads': 7 does not divide num_attention_heads (32)
//
// truncate() keeps the first N layers (--num-layers), for experiments with a model that does not fit.
// count_parameters() counts the weights (and their bytes in bf16) from the shapes alone.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

namespace nvrar::engine {

// HF "rope_scaling". Only Llama-3's scheme is supported (rope_type "llama3"); an empty type means plain RoPE.
struct RopeScaling {
  std::string type;  // "llama3", or "" for none
  double factor = 1.0;
  double low_freq_factor = 1.0;
  double high_freq_factor = 4.0;
  std::int64_t original_max_position_embeddings = 8192;

  bool enabled() const { return !type.empty(); }
};

struct ModelConfig {
  std::string source;  // "preset llama3.1-8b" or the config.json path: every error about this config names it
  std::int64_t hidden_size = 0;
  std::int64_t intermediate_size = 0;
  std::int64_t num_layers = 0;     // HF num_hidden_layers
  std::int64_t num_heads = 0;      // HF num_attention_heads
  std::int64_t num_kv_heads = 0;   // HF num_key_value_heads (absent: num_heads, i.e. no GQA)
  std::int64_t head_dim = 0;       // absent: hidden_size / num_heads
  bool head_dim_explicit = false;  // config.json gave head_dim; then heads x head_dim may differ from hidden_size
  std::int64_t vocab_size = 0;
  double rms_norm_eps = 1e-5;
  double rope_theta = 10000.0;
  RopeScaling rope_scaling;
  std::int64_t max_position_embeddings = 0;
  bool tie_word_embeddings = false;  // lm_head reuses embed_tokens (Llama-3.2 1B/3B), else its own weight
  std::string torch_dtype = "bfloat16";

  std::int64_t q_size() const { return num_heads * head_dim; }      // rows of q_proj, columns of o_proj
  std::int64_t kv_size() const { return num_kv_heads * head_dim; }  // rows of k_proj and of v_proj
};

// Names of the built-in presets: "llama3.1-8b", "llama3.1-70b", "llama3.1-405b".
std::vector<std::string> preset_names();
// A preset by name; Error listing the presets for an unknown name.
ModelConfig preset_config(std::string_view name);

// Parses the text of an HF config.json. `source` names it in errors (normally the file's path).
ModelConfig parse_config_json(std::string_view text, const std::string& source);
// Reads and parses a config.json; `path` may also be the checkpoint directory that holds it.
ModelConfig load_config(const std::filesystem::path& path);
// What --model takes: a preset name, else a config.json or a checkpoint directory.
ModelConfig resolve_config(const std::string& preset_or_path);

// Throws Error naming config.source and the field when the config is not a model the engine can run.
void validate(const ModelConfig& config);

// The first `num_layers` layers of `config` (the embeddings, final norm and lm_head stay). Error when
// num_layers < 1 or exceeds the model's layer count.
ModelConfig truncate(const ModelConfig& config, std::int64_t num_layers);

struct ParameterCount {
  std::int64_t embedding = 0;  // embed_tokens
  std::int64_t per_layer = 0;  // attention + MLP + the layer's two RMSNorm weights
  std::int64_t lm_head = 0;    // 0 when tied to embed_tokens
  std::int64_t final_norm = 0;
  std::int64_t total = 0;
  std::int64_t bf16_bytes = 0;  // total x 2
};
ParameterCount count_parameters(const ModelConfig& config);

}  // namespace nvrar::engine
