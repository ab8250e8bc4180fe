// Llama-3.x model configs: the built-in presets, the HF config.json parser, validation, truncation and the
// parameter count (model_config.h).
#include "engine/model_config.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <cmath>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>

#include "core/json_input.h"
#include "engine/error.h"

namespace nvrar::engine {

namespace {

using Json = json_input::Json;

// The published HF config.json of meta-llama/Llama-3.1-{8B,70B,405B}: the rows differ only in these four sizes;
// everything else (8 KV heads, vocabulary, RoPE, context) is common to the three and set in make_preset().
struct PresetRow {
  const char* name;
  std::int64_t hidden_size;
  std::int64_t intermediate_size;
  std::int64_t num_layers;
  std::int64_t num_heads;
};
constexpr PresetRow kPresets[] = {
    {"llama3.1-8b", 4096, 14336, 32, 32},
    {"llama3.1-70b", 8192, 28672, 80, 64},
    {"llama3.1-405b", 16384, 53248, 126, 128},
};

ModelConfig make_preset(const PresetRow& row) {
  ModelConfig c;
  c.source = fmt::format("preset {}", row.name);
  c.hidden_size = row.hidden_size;
  c.intermediate_size = row.intermediate_size;
  c.num_layers = row.num_layers;
  c.num_heads = row.num_heads;
  c.num_kv_heads = 8;
  c.head_dim = row.hidden_size / row.num_heads;  // 128 for all three
  c.vocab_size = 128256;
  c.rms_norm_eps = 1e-5;
  c.rope_theta = 500000.0;
  c.rope_scaling = {.type = "llama3",
                    .factor = 8.0,
                    .low_freq_factor = 1.0,
                    .high_freq_factor = 4.0,
                    .original_max_position_embeddings = 8192};
  c.max_position_embeddings = 131072;
  c.tie_word_embeddings = false;
  c.torch_dtype = "bfloat16";
  return c;
}

// Largest sizes validate() accepts: far above any Llama-3 (16384 hidden, 128256 vocabulary, 126 layers), and small
// enough that count_parameters() cannot overflow int64 (under 2^43 weights per layer x 2^16 layers).
constexpr std::int64_t kMaxSize = std::int64_t(1) << 20;
constexpr std::int64_t kMaxLayers = std::int64_t(1) << 16;

// Reads the fields of one JSON object of a config.json; `prefix` is "rope_scaling." inside that object, so errors
// name the field as a user would look for it. A null value counts as absent (HF writes "head_dim": null at times).
class FieldReader {
 public:
  FieldReader(const Json& object, const std::string& source, std::string prefix = "")
      : object_(object), source_(source), prefix_(std::move(prefix)) {}

  [[noreturn]] void bad(const char* key, std::string_view why) const {
    fail("{}: field '{}{}': {}", source_, prefix_, key, why);
  }

  std::string where() const { return "nvrar-llm: " + source_; }

  const Json* find(const char* key) const {
    const auto it = object_.find(key);
    return it == object_.end() || it->is_null() ? nullptr : &*it;
  }

  // Through json_input's checked conversions: the type, integer-ness and range, with the file and the field named.
  std::optional<std::int64_t> integer(const char* key) const {
    const Json* v = find(key);
    if (!v) return std::nullopt;
    return json_input::to_integer<std::int64_t>(*v, where(), prefix_ + key);
  }

  std::optional<double> number(const char* key) const {
    const Json* v = find(key);
    if (!v) return std::nullopt;
    return json_input::to_double(*v, where(), prefix_ + key);
  }

  std::optional<bool> boolean(const char* key) const {
    const Json* v = find(key);
    if (!v) return std::nullopt;
    return json_input::to_bool(*v, where(), prefix_ + key);
  }

  std::optional<std::string> string(const char* key) const {
    const Json* v = find(key);
    if (!v) return std::nullopt;
    return json_input::to_string(*v, where(), prefix_ + key);
  }

  template <typename T>
  T required(const char* key, std::optional<T> value) const {
    if (!value) bad(key, "missing (required)");
    return *value;
  }

 private:
  const Json& object_;
  const std::string& source_;
  std::string prefix_;
};

// `key` is "rope_scaling" (transformers 4.x) or "rope_parameters" (transformers 5, which also moves rope_theta in).
RopeScaling parse_rope_scaling(const Json& object, const std::string& source, const std::string& key) {
  if (!object.is_object())
    fail("{}: field '{}': expected an object or null, got {}", source, key, json_input::describe(object));
  const FieldReader f(object, source, key + ".");
  // transformers >= 4.45 writes "rope_type"; older configs "type".
  const char* type_key = f.find("rope_type") ? "rope_type" : "type";
  const std::string type = f.required(type_key, f.string(type_key));
  if (type == "default") return {};
  if (type != "llama3")
    f.bad(type_key, fmt::format("'{}' is not supported (nvrar-llm implements 'llama3' and 'default')",
                                json_input::excerpt(type)));
  return {.type = type,
          .factor = f.required("factor", f.number("factor")),
          .low_freq_factor = f.required("low_freq_factor", f.number("low_freq_factor")),
          .high_freq_factor = f.required("high_freq_factor", f.number("high_freq_factor")),
          .original_max_position_embeddings =
              f.required("original_max_position_embeddings", f.integer("original_max_position_embeddings"))};
}

// Fields of a config.json that describe a different architecture than the one the engine implements.
void reject_unsupported(const FieldReader& f) {
  if (const auto type = f.string("model_type"); type && *type != "llama")
    f.bad("model_type", fmt::format("'{}' is not a Llama model (nvrar-llm runs model_type 'llama')",
                                    json_input::excerpt(*type)));
  if (const auto act = f.string("hidden_act"); act && *act != "silu")
    f.bad("hidden_act", fmt::format("'{}' is not supported (Llama's SwiGLU uses 'silu')", json_input::excerpt(*act)));
  for (const char* key : {"attention_bias", "mlp_bias"})
    if (f.boolean(key).value_or(false)) f.bad(key, "biases are not supported (Llama-3 has none)");
}

}  // namespace

std::vector<std::string> preset_names() {
  std::vector<std::string> names;
  for (const PresetRow& row : kPresets) names.emplace_back(row.name);
  return names;
}

ModelConfig preset_config(std::string_view name) {
  for (const PresetRow& row : kPresets)
    if (name == row.name) {
      ModelConfig c = make_preset(row);
      validate(c);
      return c;
    }
  fail("no preset '{}' (presets: {})", name, fmt::join(preset_names(), ", "));
}

ModelConfig parse_config_json(std::string_view text, const std::string& source) {
  const Json root = json_input::parse(text, "nvrar-llm: " + source);
  if (!root.is_object()) fail("{}: not an HF config (the top level is not a JSON object)", source);
  const FieldReader f(root, source);
  reject_unsupported(f);

  ModelConfig c;
  c.source = source;
  c.hidden_size = f.required("hidden_size", f.integer("hidden_size"));
  c.intermediate_size = f.required("intermediate_size", f.integer("intermediate_size"));
  c.num_layers = f.required("num_hidden_layers", f.integer("num_hidden_layers"));
  c.num_heads = f.required("num_attention_heads", f.integer("num_attention_heads"));
  c.vocab_size = f.required("vocab_size", f.integer("vocab_size"));
  // The defaults below are transformers' LlamaConfig defaults, used when a config.json leaves a field out.
  c.num_kv_heads = f.integer("num_key_value_heads").value_or(c.num_heads);
  const auto head_dim = f.integer("head_dim");
  c.head_dim_explicit = head_dim.has_value();
  c.head_dim = head_dim ? *head_dim : (c.num_heads > 0 ? c.hidden_size / c.num_heads : 0);
  c.rms_norm_eps = f.number("rms_norm_eps").value_or(1e-6);
  c.rope_theta = f.number("rope_theta").value_or(10000.0);
  if (const Json* scaling = f.find("rope_scaling")) c.rope_scaling = parse_rope_scaling(*scaling, source, "rope_scaling");
  // transformers >= 5 writes {"rope_parameters": {"rope_type", "rope_theta", "factor", ...}} instead of both fields.
  if (const Json* params = f.find("rope_parameters")) {
    c.rope_scaling = parse_rope_scaling(*params, source, "rope_parameters");
    const FieldReader pf(*params, source, "rope_parameters.");
    if (const auto theta = pf.number("rope_theta")) c.rope_theta = *theta;
  }
  c.max_position_embeddings = f.integer("max_position_embeddings").value_or(2048);
  c.tie_word_embeddings = f.boolean("tie_word_embeddings").value_or(false);
  // transformers >= 4.56 writes "dtype"; earlier versions "torch_dtype".
  c.torch_dtype = f.string("dtype").value_or(f.string("torch_dtype").value_or("bfloat16"));
  validate(c);
  return c;
}

ModelConfig load_config(const std::filesystem::path& path) {
  const std::filesystem::path file = std::filesystem::is_directory(path) ? path / "config.json" : path;
  std::ifstream in(file, std::ios::binary);
  if (!in) fail("{}: cannot open the model config (no such file, or not readable)", file.string());
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) fail("{}: error reading the model config", file.string());
  return parse_config_json(text.str(), file.string());
}

ModelConfig resolve_config(const std::string& preset_or_path) {
  for (const PresetRow& row : kPresets)
    if (preset_or_path == row.name) return preset_config(preset_or_path);
  if (std::filesystem::exists(preset_or_path)) return load_config(preset_or_path);
  fail("'{}' is neither a preset ({}) nor a config.json or checkpoint directory", preset_or_path,
       fmt::join(preset_names(), ", "));
}

void validate(const ModelConfig& c) {
  const auto bad = [&c](std::string_view field, const std::string& why) {
    fail("{}: field '{}': {}", c.source, field, why);
  };
  struct Size {
    const char* field;
    std::int64_t value;
    std::int64_t max;
  };
  const Size sizes[] = {
      {"hidden_size", c.hidden_size, kMaxSize},
      {"intermediate_size", c.intermediate_size, kMaxSize},
      {"num_hidden_layers", c.num_layers, kMaxLayers},
      {"num_attention_heads", c.num_heads, kMaxSize},
      {"num_key_value_heads", c.num_kv_heads, kMaxSize},
      {"vocab_size", c.vocab_size, kMaxSize},
      {"max_position_embeddings", c.max_position_embeddings, std::numeric_limits<std::int64_t>::max()},
  };
  for (const Size& s : sizes) {
    if (s.value <= 0) bad(s.field, fmt::format("must be positive, got {}", s.value));
    if (s.value > s.max) bad(s.field, fmt::format("{} is beyond any Llama model (at most {})", s.value, s.max));
  }
  if (c.num_heads % c.num_kv_heads != 0)
    bad("num_key_value_heads",
        fmt::format("{} does not divide num_attention_heads ({}): grouped-query attention needs whole groups",
                    c.num_kv_heads, c.num_heads));
  if (c.head_dim <= 0 || c.head_dim % 2 != 0 || c.head_dim > kMaxSize)
    bad("head_dim", fmt::format("must be positive, even (RoPE rotates pairs of elements) and at most {}, got {}",
                                kMaxSize, c.head_dim));
  if (c.q_size() > kMaxSize)
    bad("head_dim", fmt::format("num_attention_heads x head_dim = {} is beyond any Llama model (at most {})",
                                c.q_size(), kMaxSize));
  if (!c.head_dim_explicit && c.num_heads * c.head_dim != c.hidden_size)
    bad("hidden_size", fmt::format("{} is not a multiple of num_attention_heads ({}); without an explicit head_dim, "
                                   "head_dim is hidden_size / num_attention_heads",
                                   c.hidden_size, c.num_heads));
  if (!(c.rms_norm_eps > 0) || !std::isfinite(c.rms_norm_eps))
    bad("rms_norm_eps", fmt::format("must be positive and finite, got {}", c.rms_norm_eps));
  if (!(c.rope_theta > 0) || !std::isfinite(c.rope_theta))
    bad("rope_theta", fmt::format("must be positive and finite, got {}", c.rope_theta));
  if (c.rope_scaling.enabled()) {
    const RopeScaling& s = c.rope_scaling;
    if (s.type != "llama3") bad("rope_scaling.rope_type", fmt::format("'{}' is not supported", s.type));
    if (!(s.factor > 0) || !std::isfinite(s.factor))
      bad("rope_scaling.factor", fmt::format("must be positive and finite, got {}", s.factor));
    if (!(s.low_freq_factor > 0))
      bad("rope_scaling.low_freq_factor", fmt::format("must be positive, got {}", s.low_freq_factor));
    // The smooth interpolation divides by high_freq_factor - low_freq_factor.
    if (!(s.high_freq_factor > s.low_freq_factor) || !std::isfinite(s.high_freq_factor))
      bad("rope_scaling.high_freq_factor", fmt::format("must be finite and greater than low_freq_factor ({}), got {}",
                                                       s.low_freq_factor, s.high_freq_factor));
    if (s.original_max_position_embeddings <= 0)
      bad("rope_scaling.original_max_position_embeddings",
          fmt::format("must be positive, got {}", s.original_max_position_embeddings));
  }
  if (c.torch_dtype != "bfloat16" && c.torch_dtype != "float16" && c.torch_dtype != "float32")
    bad("torch_dtype",
        fmt::format("'{}' is not supported (bfloat16, float16, float32)", json_input::excerpt(c.torch_dtype)));
}

ModelConfig truncate(const ModelConfig& config, std::int64_t num_layers) {
  if (num_layers < 1 || num_layers > config.num_layers)
    fail("{}: --num-layers {}: the model has {} layers, so it must be 1 to {}", config.source, num_layers,
         config.num_layers, config.num_layers);
  ModelConfig c = config;
  c.num_layers = num_layers;
  return c;
}

ParameterCount count_parameters(const ModelConfig& c) {
  ParameterCount n;
  const std::int64_t h = c.hidden_size;
  n.embedding = c.vocab_size * h;
  const std::int64_t attention = h * c.q_size() + 2 * h * c.kv_size() + c.q_size() * h;  // q, k, v, o
  const std::int64_t mlp = 3 * h * c.intermediate_size;                                  // gate, up, down
  n.per_layer = attention + mlp + 2 * h;                                                 // + two RMSNorms
  n.lm_head = c.tie_word_embeddings ? 0 : c.vocab_size * h;
  n.final_norm = h;
  n.total = n.embedding + c.num_layers * n.per_layer + n.lm_head + n.final_norm;
  n.bf16_bytes = 2 * n.total;
  return n;
}

}  // namespace nvrar::engine
