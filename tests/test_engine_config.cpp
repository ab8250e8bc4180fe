// The engine's model configs (src/engine/model_config.h) and RoPE table (src/engine/rope.h): the presets against
// the published HF values and parameter counts, config.json parsing with optional and legacy fields, every
// validation error naming the file and the field, truncation, and the Llama-3 frequency scaling against
// hand-computed values.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <string>

#include "engine/llama_weights.h"
#include "engine/model_config.h"
#include "engine/rope.h"
#include "engine_test_support.h"
#include "nvrar/types.h"

namespace nvrar::engine {
namespace {

using test_support::error_of;

// meta-llama/Llama-3.1-8B config.json as published (transformers 4.43).
constexpr const char* kLlama31_8B = R"({
  "architectures": ["LlamaForCausalLM"], "attention_bias": false, "attention_dropout": 0.0,
  "bos_token_id": 128000, "eos_token_id": 128001, "hidden_act": "silu", "hidden_size": 4096,
  "initializer_range": 0.02, "intermediate_size": 14336, "max_position_embeddings": 131072, "mlp_bias": false,
  "model_type": "llama", "num_attention_heads": 32, "num_hidden_layers": 32, "num_key_value_heads": 8,
  "pretraining_tp": 1, "rms_norm_eps": 1e-05,
  "rope_scaling": {"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                   "original_max_position_embeddings": 8192, "rope_type": "llama3"},
  "rope_theta": 500000.0, "tie_word_embeddings": false, "torch_dtype": "bfloat16",
  "transformers_version": "4.43.0.dev0", "use_cache": true, "vocab_size": 128256})";

// meta-llama/Llama-3.2-1B: tied embeddings, explicit head_dim, rope factor 32.
constexpr const char* kLlama32_1B = R"({
  "hidden_size": 2048, "intermediate_size": 8192, "num_hidden_layers": 16, "num_attention_heads": 32,
  "num_key_value_heads": 8, "head_dim": 64, "vocab_size": 128256, "rms_norm_eps": 1e-05, "rope_theta": 500000.0,
  "rope_scaling": {"factor": 32.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                   "original_max_position_embeddings": 8192, "rope_type": "llama3"},
  "max_position_embeddings": 131072, "tie_word_embeddings": true, "torch_dtype": "bfloat16",
  "model_type": "llama"})";

// The smallest valid config; tests add or change one field.
constexpr const char* kMinimal =
    R"({"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
        "vocab_size": 100)";

std::string minimal_with(const std::string& extra) { return std::string(kMinimal) + extra + "}"; }

// Parses `text` expecting an Error whose message contains the source and every string in `needles`.
void expect_parse_error(const std::string& text, std::initializer_list<const char*> needles) {
  const std::string source = "/ckpt/config.json";
  const std::string message = error_of([&] { parse_config_json(text, source); });
  EXPECT_HAS(message, source);
  for (const char* needle : needles) EXPECT_HAS(message, needle);
}

TEST(EngineConfig, PresetsHoldThePublishedValues) {
  EXPECT_EQ(preset_names(), (std::vector<std::string>{"llama3.1-8b", "llama3.1-70b", "llama3.1-405b"}));
  // The four sizes that differ between the three HF config.json files; everything else they share.
  struct Expected {
    const char* name;
    std::int64_t hidden, intermediate, layers, heads;
  };
  for (const Expected& e : {Expected{"llama3.1-8b", 4096, 14336, 32, 32}, Expected{"llama3.1-70b", 8192, 28672, 80, 64},
                            Expected{"llama3.1-405b", 16384, 53248, 126, 128}}) {
    SCOPED_TRACE(e.name);
    const ModelConfig c = preset_config(e.name);
    EXPECT_EQ(c.source, std::string("preset ") + e.name);
    EXPECT_EQ(c.hidden_size, e.hidden);
    EXPECT_EQ(c.intermediate_size, e.intermediate);
    EXPECT_EQ(c.num_layers, e.layers);
    EXPECT_EQ(c.num_heads, e.heads);
    EXPECT_EQ(c.num_kv_heads, 8);
    EXPECT_EQ(c.head_dim, 128);
    EXPECT_EQ(c.vocab_size, 128256);
    EXPECT_EQ(c.rms_norm_eps, 1e-5);
    EXPECT_EQ(c.rope_theta, 500000.0);
    EXPECT_EQ(c.rope_scaling.type, "llama3");
    EXPECT_EQ(c.rope_scaling.factor, 8.0);
    EXPECT_EQ(c.rope_scaling.low_freq_factor, 1.0);
    EXPECT_EQ(c.rope_scaling.high_freq_factor, 4.0);
    EXPECT_EQ(c.rope_scaling.original_max_position_embeddings, 8192);
    EXPECT_EQ(c.max_position_embeddings, 131072);
    EXPECT_FALSE(c.tie_word_embeddings);
    EXPECT_EQ(c.torch_dtype, "bfloat16");
  }
}

TEST(EngineConfig, UnknownPresetListsThePresets) {
  const std::string m = error_of([] { preset_config("llama3.1-7b"); });
  EXPECT_HAS(m, "no preset 'llama3.1-7b'");
  EXPECT_HAS(m, "llama3.1-405b");
}

TEST(EngineConfig, ParameterCounts) {
  // 8B by hand: embed 128256 x 4096 = 525,336,576 (twice: untied lm_head); per layer q 4096^2 + k, v 1024 x 4096
  // each + o 4096^2 + MLP 3 x 4096 x 14336 + two norms 4096 = 218,112,000; 32 layers; final norm 4096.
  const ParameterCount n8 = count_parameters(preset_config("llama3.1-8b"));
  EXPECT_EQ(n8.embedding, 525'336'576);
  EXPECT_EQ(n8.per_layer, 218'112'000);
  EXPECT_EQ(n8.lm_head, 525'336'576);
  EXPECT_EQ(n8.final_norm, 4096);
  EXPECT_EQ(n8.total, 8'030'261'248);  // "8.03B", as the model card says
  EXPECT_EQ(n8.bf16_bytes, 2 * n8.total);
  // 70B: 2 x 128256 x 8192 + 80 x 855,654,400 per layer + 8192; 405B: 2 x 128256 x 16384 + 126 x 3,187,703,808
  // + 16384.
  EXPECT_EQ(count_parameters(preset_config("llama3.1-70b")).total, 70'553'706'496);
  EXPECT_EQ(count_parameters(preset_config("llama3.1-405b")).total, 405'853'388'800);
  // Tied embeddings count embed_tokens once: Llama-3.2 1B is 1.24B.
  const ParameterCount n1 = count_parameters(parse_config_json(kLlama32_1B, "1b"));
  EXPECT_EQ(n1.lm_head, 0);
  EXPECT_EQ(n1.total, 1'235'814'400);
}

TEST(EngineConfig, ParameterCountIsTheSumOfTheWeightShapes) {
  for (const std::string& name : preset_names()) {
    const ModelConfig c = preset_config(name);
    std::int64_t sum = 0;
    for (const Weight w : kAllWeights) sum += shape_numel(weight_shape(c, w)) * (is_layer_weight(w) ? c.num_layers : 1);
    EXPECT_EQ(sum, count_parameters(c).total) << name;
  }
}

TEST(EngineConfig, ParsesThePublishedConfigLikeThePreset) {
  const ModelConfig parsed = parse_config_json(kLlama31_8B, "/ckpt/config.json");
  const ModelConfig preset = preset_config("llama3.1-8b");
  EXPECT_EQ(parsed.source, "/ckpt/config.json");
  EXPECT_EQ(parsed.hidden_size, preset.hidden_size);
  EXPECT_EQ(parsed.intermediate_size, preset.intermediate_size);
  EXPECT_EQ(parsed.num_layers, preset.num_layers);
  EXPECT_EQ(parsed.num_heads, preset.num_heads);
  EXPECT_EQ(parsed.num_kv_heads, preset.num_kv_heads);
  EXPECT_EQ(parsed.head_dim, preset.head_dim);
  EXPECT_FALSE(parsed.head_dim_explicit);
  EXPECT_EQ(parsed.vocab_size, preset.vocab_size);
  EXPECT_EQ(parsed.rms_norm_eps, preset.rms_norm_eps);
  EXPECT_EQ(parsed.rope_theta, preset.rope_theta);
  EXPECT_EQ(parsed.rope_scaling.type, preset.rope_scaling.type);
  EXPECT_EQ(parsed.rope_scaling.factor, preset.rope_scaling.factor);
  EXPECT_EQ(parsed.rope_scaling.low_freq_factor, preset.rope_scaling.low_freq_factor);
  EXPECT_EQ(parsed.rope_scaling.high_freq_factor, preset.rope_scaling.high_freq_factor);
  EXPECT_EQ(parsed.rope_scaling.original_max_position_embeddings, preset.rope_scaling.original_max_position_embeddings);
  EXPECT_EQ(parsed.max_position_embeddings, preset.max_position_embeddings);
  EXPECT_EQ(parsed.tie_word_embeddings, preset.tie_word_embeddings);
  EXPECT_EQ(parsed.torch_dtype, preset.torch_dtype);
}

TEST(EngineConfig, OptionalFieldsTakeTheirDefaults) {
  const ModelConfig c = parse_config_json(minimal_with(""), "m");
  EXPECT_EQ(c.num_kv_heads, 4);  // no GQA
  EXPECT_EQ(c.head_dim, 16);     // hidden / heads
  EXPECT_FALSE(c.head_dim_explicit);
  EXPECT_FALSE(c.rope_scaling.enabled());
  EXPECT_EQ(c.rope_theta, 10000.0);
  EXPECT_EQ(c.rms_norm_eps, 1e-6);
  EXPECT_EQ(c.max_position_embeddings, 2048);
  EXPECT_FALSE(c.tie_word_embeddings);
  EXPECT_EQ(c.torch_dtype, "bfloat16");
  // null is absent; "default" RoPE is no scaling; integers written as floats are accepted.
  const ModelConfig n =
      parse_config_json(minimal_with(R"(, "head_dim": null, "rope_scaling": null, "num_key_value_heads": 2.0)"), "m");
  EXPECT_EQ(n.head_dim, 16);
  EXPECT_FALSE(n.rope_scaling.enabled());
  EXPECT_EQ(n.num_kv_heads, 2);
  EXPECT_FALSE(
      parse_config_json(minimal_with(R"(, "rope_scaling": {"rope_type": "default"})"), "m").rope_scaling.enabled());
}

TEST(EngineConfig, ExplicitHeadDimAndLegacyKeys) {
  const ModelConfig c = parse_config_json(kLlama32_1B, "1b");
  EXPECT_TRUE(c.head_dim_explicit);
  EXPECT_EQ(c.head_dim, 64);
  EXPECT_TRUE(c.tie_word_embeddings);
  EXPECT_EQ(c.rope_scaling.factor, 32.0);
  // An explicit head_dim may differ from hidden / heads (q_size 4 x 32 = 128 != 64).
  const ModelConfig wide = parse_config_json(minimal_with(R"(, "head_dim": 32)"), "m");
  EXPECT_EQ(wide.q_size(), 128);
  EXPECT_EQ(wide.hidden_size, 64);
  // Older transformers: "type" for rope_scaling, newer: "dtype" for torch_dtype.
  const ModelConfig legacy = parse_config_json(
      minimal_with(R"(, "dtype": "float16", "rope_scaling": {"type": "llama3", "factor": 8, "low_freq_factor": 1,
                   "high_freq_factor": 4, "original_max_position_embeddings": 8192})"),
      "m");
  EXPECT_EQ(legacy.rope_scaling.type, "llama3");
  EXPECT_EQ(legacy.torch_dtype, "float16");
  // transformers 5: rope_theta and the scaling move into "rope_parameters".
  const ModelConfig v5 = parse_config_json(
      minimal_with(R"(, "rope_parameters": {"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0,
                   "low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_max_position_embeddings": 1024})"),
      "m");
  EXPECT_EQ(v5.rope_theta, 500000.0);
  EXPECT_EQ(v5.rope_scaling.type, "llama3");
  EXPECT_EQ(v5.rope_scaling.original_max_position_embeddings, 1024);
  const ModelConfig v5_plain =
      parse_config_json(minimal_with(R"(, "rope_parameters": {"rope_type": "default", "rope_theta": 1e6})"), "m");
  EXPECT_EQ(v5_plain.rope_theta, 1e6);
  EXPECT_FALSE(v5_plain.rope_scaling.enabled());
  expect_parse_error(minimal_with(R"(, "rope_parameters": {"rope_type": "yarn", "rope_theta": 1e6})"),
                     {"rope_parameters.rope_type", "yarn"});
}

TEST(EngineConfig, ErrorsNameTheFileAndTheField) {
  expect_parse_error("{\"hidden_size\": 4096,", {"not valid JSON"});
  expect_parse_error("[1, 2]", {"not an HF config"});
  expect_parse_error(R"({"intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
                         "vocab_size": 100})",
                     {"'hidden_size'", "missing"});
  expect_parse_error(minimal_with(R"(, "num_key_value_heads": "8")"), {"'num_key_value_heads'", "integer"});
  expect_parse_error(minimal_with(R"(, "num_key_value_heads": 2.5)"), {"'num_key_value_heads'", "integer"});
  expect_parse_error(minimal_with(R"(, "num_key_value_heads": 3)"),
                     {"'num_key_value_heads'", "3 does not divide num_attention_heads (4)"});
  expect_parse_error(minimal_with(R"(, "num_key_value_heads": 0)"), {"'num_key_value_heads'", "positive"});
  expect_parse_error(minimal_with(R"(, "max_position_embeddings": -1)"), {"'max_position_embeddings'", "positive"});
  expect_parse_error(minimal_with(R"(, "head_dim": 15)"), {"'head_dim'", "even"});
  expect_parse_error(minimal_with(R"(, "rms_norm_eps": 0)"), {"'rms_norm_eps'"});
  expect_parse_error(minimal_with(R"(, "rope_theta": "big")"), {"'rope_theta'", "number"});
  expect_parse_error(minimal_with(R"(, "tie_word_embeddings": 1)"), {"'tie_word_embeddings'"});
  expect_parse_error(minimal_with(R"(, "torch_dtype": "int8")"), {"'torch_dtype'", "int8"});
  expect_parse_error(minimal_with(R"(, "vocab_size": 100000000000)"), {"'vocab_size'", "beyond"});
  expect_parse_error(minimal_with(R"(, "model_type": "mistral")"), {"'model_type'", "mistral"});
  expect_parse_error(minimal_with(R"(, "hidden_act": "gelu")"), {"'hidden_act'"});
  expect_parse_error(minimal_with(R"(, "attention_bias": true)"), {"'attention_bias'"});
  expect_parse_error(minimal_with(R"(, "rope_scaling": 8)"), {"'rope_scaling'"});
  expect_parse_error(minimal_with(R"(, "rope_scaling": {"rope_type": "yarn", "factor": 4})"),
                     {"'rope_scaling.rope_type'", "yarn"});
  expect_parse_error(minimal_with(R"(, "rope_scaling": {"rope_type": "llama3", "factor": 8, "low_freq_factor": 1,
                                    "high_freq_factor": 4})"),
                     {"'rope_scaling.original_max_position_embeddings'", "missing"});
  expect_parse_error(minimal_with(R"(, "rope_scaling": {"rope_type": "llama3", "factor": 8, "low_freq_factor": 4,
                                    "high_freq_factor": 4, "original_max_position_embeddings": 8192})"),
                     {"'rope_scaling.high_freq_factor'"});
  // hidden_size not a multiple of the heads, with head_dim derived from it.
  expect_parse_error(R"({"hidden_size": 66, "intermediate_size": 128, "num_hidden_layers": 2,
                         "num_attention_heads": 4, "vocab_size": 100})",
                     {"'hidden_size'", "num_attention_heads (4)"});
}

// Issue 21: hostile config.json files give an error naming the file and the field, never a crash or a bare
// nlohmann exception.
TEST(EngineConfig, HostileJsonIsRefusedNamingTheFile) {
  const std::string deep = "nvrar-llm: /ckpt/config.json: JSON nested deeper than 64 levels";
  EXPECT_EQ(error_of([] { parse_config_json(std::string(200000, '['), "/ckpt/config.json"); }), deep);
  // Deep inside a field the reader would describe in an error (it used to dump() it: ~65k frames of recursion).
  const std::string nested = std::string(100000, '[') + std::string(100000, ']');
  EXPECT_EQ(error_of([&] { parse_config_json(minimal_with(", \"rope_scaling\": " + nested), "/ckpt/config.json"); }),
            deep);
  expect_parse_error(minimal_with(R"(, "rope_theta": 1e999)"), {"JSON number '1e999' is out of the range of a double"});
  expect_parse_error(minimal_with(R"(, "unknown_field": [1e400])"), {"JSON number '1e400'"});
}

TEST(EngineConfig, NumbersGoThroughTheCheckedConversion) {
  expect_parse_error(minimal_with(R"(, "max_position_embeddings": 1e30)"),
                     {"field 'max_position_embeddings': 1e+30 is out of range"});
  expect_parse_error(minimal_with(R"(, "max_position_embeddings": 18446744073709551615)"),
                     {"field 'max_position_embeddings': 18446744073709551615 is out of range"});
  expect_parse_error(minimal_with(R"(, "head_dim": 1e17)"), {"field 'head_dim': 1e+17 is not an exact integer"});
  expect_parse_error(minimal_with(R"(, "rope_scaling": {"rope_type": "llama3", "factor": 8, "low_freq_factor": 1,
                                    "high_freq_factor": 4, "original_max_position_embeddings": 8192.5})"),
                     {"field 'rope_scaling.original_max_position_embeddings': expected an integer, got 8192.5"});
  // A wrong-typed value is described in a few words, not written out.
  const std::string m = error_of([] {
    parse_config_json(minimal_with(", \"num_key_value_heads\": \"" + std::string(100000, 'x') + "\""), "c.json");
  });
  EXPECT_HAS(m, "c.json: field 'num_key_value_heads': wrong type: expected an integer, got the string \"xxx");
  EXPECT_LT(m.size(), 200u) << m;
  const std::string array = error_of([] {
    parse_config_json(minimal_with(", \"rope_scaling\": [\"" + std::string(100000, '7') + "\"]"), "c.json");
  });
  EXPECT_EQ(array, "nvrar-llm: c.json: field 'rope_scaling': expected an object or null, got an array of 1 values");
  // A number of 100,000 digits is beyond a double, and quoted in part.
  const std::string digits = error_of([] {
    parse_config_json(minimal_with(", \"rope_theta\": " + std::string(100000, '7')), "c.json");
  });
  EXPECT_HAS(digits, "nvrar-llm: c.json: JSON number '7777");
  EXPECT_LT(digits.size(), 200u) << digits;
}

class EngineConfigFiles : public test_support::TempDirTest {
 protected:
  std::filesystem::path write(const std::string& name, const std::string& text) {
    const std::filesystem::path path = dir_ / name;
    std::ofstream(path) << text;
    return path;
  }
};

TEST_F(EngineConfigFiles, LoadsAFileOrADirectory) {
  const std::filesystem::path path = write("config.json", kLlama31_8B);
  EXPECT_EQ(load_config(path).source, path.string());
  EXPECT_EQ(load_config(dir_).hidden_size, 4096);
  EXPECT_EQ(resolve_config(dir_.string()).num_layers, 32);
  EXPECT_EQ(resolve_config("llama3.1-70b").num_layers, 80);
}

TEST_F(EngineConfigFiles, FileErrorsNameTheFile) {
  const std::filesystem::path bad = write("bad.json", minimal_with(R"(, "num_key_value_heads": 3)"));
  EXPECT_HAS(error_of([&] { load_config(bad); }), bad.string() + ": field 'num_key_value_heads'");
  const std::filesystem::path missing = dir_ / "absent" / "config.json";
  EXPECT_HAS(error_of([&] { load_config(missing); }), missing.string() + ": cannot open");
  EXPECT_HAS(error_of([] { resolve_config("no-such-model"); }), "'no-such-model' is neither a preset");
}

TEST(EngineConfig, Truncate) {
  const ModelConfig c = preset_config("llama3.1-405b");
  const ModelConfig t = truncate(c, 4);
  EXPECT_EQ(t.num_layers, 4);
  EXPECT_EQ(t.hidden_size, c.hidden_size);
  const ParameterCount full = count_parameters(c);
  EXPECT_EQ(count_parameters(t).total, full.total - 122 * full.per_layer);
  EXPECT_EQ(truncate(c, 126).num_layers, 126);
  for (const std::int64_t bad : {0, -1, 127}) {
    const std::string m = error_of([&] { truncate(c, bad); });
    EXPECT_HAS(m, "preset llama3.1-405b");
    EXPECT_HAS(m, "--num-layers " + std::to_string(bad));
    EXPECT_HAS(m, "126 layers");
  }
}

// ---- RoPE ----

// Hand-computed with theta = 500000, head_dim = 128, Llama-3.1 scaling (factor 8, low 1, high 4, L = 8192): the
// wavelength 2 pi / inv_freq is below L / 4 = 2048 for i <= 28 (unchanged), above L / 1 = 8192 for i >= 35
// (divided by 8), and in between for i = 29..34, where s = (8192 / wavelen - 1) / 3.
TEST(Rope, Llama3ScalingMatchesHandComputedValues) {
  const std::vector<double> f = rope_inv_freq(preset_config("llama3.1-8b"));
  ASSERT_EQ(f.size(), 64u);
  const auto near = [](double actual, double expected) {
    EXPECT_NEAR(actual, expected, 1e-12 * expected) << "expected " << expected;
  };
  near(f[0], 1.0);                    // wavelen 2 pi: high frequency, unchanged
  near(f[1], 0.8146172338565447);     // 500000^(-2/128), unchanged
  near(f[28], 0.003211445994752591);  // wavelen 1956.5 < 2048: unchanged
  // i = 30: inv = 500000^(-60/128) = 0.0021311195369119653, wavelen 2948.30, s = 0.5928492950029659,
  // (1 - s) inv / 8 + s inv = 0.0013718935677611381.
  near(f[29], 0.002166570763503359);
  near(f[30], 0.0013718935677611381);
  near(f[34], 0.0001785078127679964);  // wavelen 6695.1, s = 0.0745
  near(f[35], 9.556212353964683e-05);  // wavelen 8218.7 > 8192: inv / 8
  near(f[63], 3.068925988914511e-07);  // 500000^(-126/128) / 8
}

TEST(Rope, UnscaledWithoutRopeScaling) {
  const std::vector<double> f = rope_inv_freq(128, 500000.0, RopeScaling{});
  ASSERT_EQ(f.size(), 64u);
  EXPECT_EQ(f[0], 1.0);
  EXPECT_NEAR(f[30], 0.0021311195369119653, 1e-12 * f[30]);
  EXPECT_NEAR(f[63], 2.455140791131609e-06, 1e-12 * f[63]);
  // A config without rope_scaling gives the same plain table, with its own theta: 10000^(-2i/16).
  const std::vector<double> g = rope_inv_freq(parse_config_json(minimal_with(""), "m"));
  ASSERT_EQ(g.size(), 8u);
  for (std::size_t i = 0; i < g.size(); ++i) EXPECT_NEAR(g[i], std::pow(10000.0, -double(2 * i) / 16.0), 1e-15);
}

TEST(Rope, ScaledFrequenciesFallAndStayWithinTheFactor) {
  // A fine table (head_dim 4096) sweeps wavelengths through both thresholds: the scaled frequencies keep falling,
  // and no step between neighbours exceeds what the unscaled step and the factor allow.
  const RopeScaling s = preset_config("llama3.1-8b").rope_scaling;
  const std::vector<double> scaled = rope_inv_freq(4096, 500000.0, s);
  const std::vector<double> plain = rope_inv_freq(4096, 500000.0, RopeScaling{});
  for (std::size_t i = 1; i < scaled.size(); ++i) {
    EXPECT_LT(scaled[i], scaled[i - 1]) << i;
    EXPECT_GE(scaled[i], plain[i] / s.factor * (1 - 1e-12)) << i;
    EXPECT_LE(scaled[i], plain[i]) << i;
  }
}

TEST(Rope, RejectsOddHeadDim) { EXPECT_THROW(rope_inv_freq(127, 500000.0, RopeScaling{}), Error); }

}  // namespace
}  // namespace nvrar::engine
