// Writes the fuzz targets' seed corpora and dictionaries into the build directory, so that no corpus is committed:
//   make_seeds SOURCE_DIR OUT_DIR  ->  OUT_DIR/seeds/<target>/*  and  OUT_DIR/dicts/<target>.dict
//
// Seeds are small valid inputs, the kind each parser sees in use: safetensors files and an index shaped like an HF
// checkpoint's (built here, byte by byte), config.json files of the shapes the engine tests use, the tuning tables
// in tuning/ and the bench reports in tests/data/ (copied, plus a cut-down report that fuzzes faster). A
// dictionary per target lists every JSON key and string value found in its seeds, plus JSON's own tokens, so
// that mutations spell field names instead of guessing them byte by byte.
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("make_seeds: cannot read " + path.string());
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

class Target {
 public:
  Target(const fs::path& out, std::string name) : name_(std::move(name)), dir_(out / "seeds" / name_) {
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    dict_path_ = out / "dicts" / (name_ + ".dict");
    fs::create_directories(dict_path_.parent_path());
  }
  ~Target() { write_dict(); }

  // A seed; `json_text` is also mined for dictionary words (for a safetensors file: its header).
  void add(const std::string& file, const std::string& bytes, const std::string& json_text) {
    std::ofstream(dir_ / file, std::ios::binary) << bytes;
    try {
      collect(json::parse(json_text));
    } catch (const json::exception&) {
    }
  }
  void add_json(const std::string& file, const std::string& text) { add(file, text, text); }

 private:
  void collect(const json& value) {
    if (value.is_object()) {
      for (const auto& [key, item] : value.items()) {
        words_.insert(json(key).dump());
        collect(item);
      }
    } else if (value.is_array()) {
      for (const json& item : value) collect(item);
    } else if (value.is_string()) {
      words_.insert(value.dump());
    }
  }
  void write_dict() const {
    std::ofstream out(dict_path_);
    // JSON's tokens, and numbers at the edges of the types the parsers convert to.
    for (const char* token : {"{", "}", "[", "]", ":", ",", "\"", "null", "true", "false", "-", "e", "E", "0.5",
                              "1e308", "1e999", "-1", "2147483648", "4294967296", "9223372036854775807",
                              "18446744073709551616"}) {
      out << json(token).dump() << "\n";
    }
    // libFuzzer's dictionary format is "a C-style string" per line: JSON's escaping of a string, with bytes
    // outside printable ASCII (UTF-8 of the tokenizer's byte alphabet) written as \xNN.
    for (const std::string& word : words_) {
      std::string line;
      for (const char c : json(word).dump(-1, ' ', /*ensure_ascii=*/false)) {
        const auto byte = static_cast<unsigned char>(c);
        if (byte >= 0x20 && byte < 0x7F) {
          line += c;
        } else {
          char hex[5];
          std::snprintf(hex, sizeof hex, "\\x%02X", byte);
          line += hex;
        }
      }
      out << line << "\n";
    }
  }

  std::string name_;
  fs::path dir_;
  fs::path dict_path_;
  std::set<std::string> words_;
};

// A safetensors file: 8-byte little-endian header length, the JSON header, then `data_bytes` bytes of data.
std::string safetensors_file(const json& header, std::size_t data_bytes) {
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');  // HF pads the header to 8 bytes
  std::string file(8, '\0');
  for (int i = 0; i < 8; ++i) file[i] = char((std::uint64_t(text.size()) >> (8 * i)) & 0xff);
  file += text;
  for (std::size_t i = 0; i < data_bytes; ++i) file.push_back(char(i * 37 + 11));
  return file;
}

json tensor(const char* dtype, std::vector<std::int64_t> shape, std::uint64_t begin, std::uint64_t end) {
  return {{"dtype", dtype}, {"shape", shape}, {"data_offsets", {begin, end}}};
}

void safetensors_seeds(const fs::path& out) {
  Target t(out, "safetensors");
  const json small = {{"__metadata__", {{"format", "pt"}}},
                      {"model.embed_tokens.weight", tensor("BF16", {4, 3}, 0, 24)},
                      {"model.norm.weight", tensor("F32", {3}, 24, 36)},
                      {"lm_head.weight", tensor("F16", {2, 3}, 36, 48)}};
  t.add("small.safetensors", safetensors_file(small, 48), small.dump());
  // One tensor of every dtype the loader knows, scalars and an empty tensor among them.
  json all = json::object();
  std::uint64_t at = 0;
  const std::vector<std::pair<const char*, std::uint64_t>> dtypes = {
      {"BOOL", 1}, {"U8", 1},  {"I8", 1},  {"F8_E4M3", 1}, {"F8_E5M2", 1}, {"I16", 2}, {"U16", 2}, {"F16", 2},
      {"BF16", 2}, {"I32", 4}, {"U32", 4}, {"F32", 4},     {"I64", 8},     {"U64", 8}, {"F64", 8}};
  for (const auto& [dtype, bytes] : dtypes) {
    all[std::string("t.") + dtype] = tensor(dtype, {2, 2}, at, at + 4 * bytes);
    at += 4 * bytes;
  }
  all["scalar"] = tensor("F32", {}, at, at + 4);
  all["empty"] = tensor("BF16", {0, 8}, at + 4, at + 4);
  t.add("dtypes.safetensors", safetensors_file(all, at + 4), all.dump());
  t.add("no-tensors.safetensors", safetensors_file(json::object(), 0), "{}");
}

void index_seeds(const fs::path& out) {
  Target t(out, "safetensors_index");
  json map = json::object();
  for (int layer = 0; layer < 2; ++layer) {
    for (const char* w : {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
                          "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"}) {
      map["model.layers." + std::to_string(layer) + "." + w + ".weight"] =
          "model-0000" + std::to_string(layer + 1) + "-of-00002.safetensors";
    }
  }
  map["model.embed_tokens.weight"] = "model-00001-of-00002.safetensors";
  map["lm_head.weight"] = "model-00002-of-00002.safetensors";
  t.add_json("two-shards.json", json({{"metadata", {{"total_size", 16060522496}}}, {"weight_map", map}}).dump(2));
  t.add_json("no-metadata.json", json({{"weight_map", {{"a.weight", "model.safetensors"}}}}).dump());
}

void config_seeds(const fs::path& out) {
  Target t(out, "model_config");
  // Llama-3.1 8B as HF publishes it, Llama-3.2 1B (tied embeddings, explicit head_dim), the smallest valid
  // config, the legacy rope_scaling spelling and transformers 5's rope_parameters.
  const json rope8 = {{"factor", 8.0},
                      {"low_freq_factor", 1.0},
                      {"high_freq_factor", 4.0},
                      {"original_max_position_embeddings", 8192},
                      {"rope_type", "llama3"}};
  t.add_json("llama3.1-8b.json", json({{"architectures", {"LlamaForCausalLM"}},
                                       {"hidden_size", 4096},
                                       {"intermediate_size", 14336},
                                       {"num_hidden_layers", 32},
                                       {"num_attention_heads", 32},
                                       {"num_key_value_heads", 8},
                                       {"vocab_size", 128256},
                                       {"max_position_embeddings", 131072},
                                       {"rms_norm_eps", 1e-05},
                                       {"rope_theta", 500000.0},
                                       {"rope_scaling", rope8},
                                       {"tie_word_embeddings", false},
                                       {"torch_dtype", "bfloat16"},
                                       {"model_type", "llama"}})
                                     .dump(2));
  json small = {{"hidden_size", 2048},          {"intermediate_size", 8192}, {"num_hidden_layers", 16},
                {"num_attention_heads", 32},    {"num_key_value_heads", 8},  {"head_dim", 64},
                {"vocab_size", 128256},         {"rms_norm_eps", 1e-05},     {"rope_theta", 500000.0},
                {"tie_word_embeddings", true},  {"torch_dtype", "bfloat16"}, {"max_position_embeddings", 131072}};
  small["rope_scaling"] = rope8;
  small["rope_scaling"]["factor"] = 32.0;
  t.add_json("llama3.2-1b.json", small.dump());
  const json minimal = {{"hidden_size", 64},
                        {"intermediate_size", 128},
                        {"num_hidden_layers", 2},
                        {"num_attention_heads", 4},
                        {"vocab_size", 100}};
  t.add_json("minimal.json", minimal.dump());
  json legacy = minimal;
  legacy["dtype"] = "float16";
  legacy["rope_scaling"] = {{"type", "llama3"}, {"factor", 8}, {"low_freq_factor", 1}, {"high_freq_factor", 4},
                            {"original_max_position_embeddings", 8192}};
  legacy["head_dim"] = nullptr;
  t.add_json("legacy-rope-scaling.json", legacy.dump());
  json v5 = minimal;
  v5["rope_parameters"] = rope8;
  v5["rope_parameters"]["rope_theta"] = 500000.0;
  t.add_json("rope-parameters.json", v5.dump());
}

void tuning_seeds(const fs::path& source, const fs::path& out) {
  Target t(out, "tuning_table");
  for (const auto& entry : fs::directory_iterator(source / "tuning")) {
    if (entry.path().extension() == ".json") t.add_json(entry.path().filename().string(), read_file(entry.path()));
  }
  // One entry of each algorithm with every option written.
  const json one = {{"format", "nvrar-tuning-1"},
                    {"card", "fuzz"},
                    {"created", "2026-01-01T00:00:00Z"},
                    {"source", "make_seeds"},
                    {"ranks", 8},
                    {"nodes", 2},
                    {"gpus_per_node", 4},
                    {"entries",
                     {{{"max_bytes", 4096}, {"algorithm", "oneshot"}, {"threads", 256}, {"blocks", 0},
                       {"bulk", -1}, {"time_us", 3.5}},
                      {{"max_bytes", 65536}, {"algorithm", "ll128"}, {"threads", 512}, {"blocks", 8},
                       {"bulk", -1}, {"time_us", 6.25}},
                      {{"max_bytes", 1048576}, {"algorithm", "push"}, {"threads", 256}, {"blocks", 16},
                       {"bulk", -1}, {"piece_units", 1024}, {"time_us", 20.0}},
                      {{"max_bytes", 8388608}, {"algorithm", "hierarchical"}, {"threads", 1024}, {"blocks", 32},
                       {"bulk", 1}, {"time_us", 90.0}},
                      {{"max_bytes", 67108864}, {"algorithm", "nccl"}, {"threads", 0}, {"blocks", 0},
                       {"bulk", -1}, {"time_us", 400.0}}}}};
  t.add_json("every-algorithm.json", one.dump(1));
}

void bench_seeds(const fs::path& source, const fs::path& out) {
  Target t(out, "bench_report");
  for (const auto& entry : fs::directory_iterator(source / "tests" / "data")) {
    if (entry.path().extension() != ".json" || entry.path().filename().string().rfind("bench_", 0) != 0) continue;
    const std::string text = read_file(entry.path());
    t.add_json(entry.path().filename().string(), text);
    // The same run cut to a few rows of each algorithm: small enough to mutate quickly, still a fit's input.
    json cut = json::parse(text);
    json rows = json::array();
    std::map<std::string, int> kept;
    for (const json& row : cut["results"]) {
      if (kept[row.value("algorithm", "")]++ < 4) rows.push_back(row);
    }
    cut["results"] = rows;
    t.add_json("cut-" + entry.path().filename().string(), cut.dump());
  }
}

}  // namespace

// GPT-2's byte-level alphabet: printable Latin-1 bytes spell themselves, the others U+0100 onwards, as UTF-8.
std::string byte_spelling(int byte) {
  static const std::vector<int> code_points = [] {
    std::vector<int> cp(256, -1);
    int next = 256;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
      cp[b] = printable ? b : next++;
    }
    return cp;
  }();
  const int c = code_points[byte];
  std::string out;
  if (c < 0x80) {
    out += static_cast<char>(c);
  } else {
    out += static_cast<char>(0xC0 | (c >> 6));
    out += static_cast<char>(0x80 | (c & 0x3F));
  }
  return out;
}

void tokenizer_seeds(const fs::path& out) {
  Target t(out, "tokenizer");
  // A byte-level BPE file of the Llama-3 kind, small: the 256 byte tokens, a few merges, the Llama-3 split pattern,
  // added tokens (special and not), a TemplateProcessing post-processor that adds BOS, a ByteLevel decoder.
  json vocab = json::object();
  for (int b = 0; b < 256; ++b) vocab[byte_spelling(b)] = b;
  vocab["he"] = 256;
  vocab["ll"] = 257;
  vocab["hell"] = 258;
  vocab["hello"] = 259;
  vocab[byte_spelling(' ') + "w"] = 260;
  vocab["or"] = 261;
  vocab["ld"] = 262;
  const std::string pattern =
      "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
      "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
  json file;
  file["normalizer"] = nullptr;
  file["pre_tokenizer"] = {{"type", "Sequence"},
                           {"pretokenizers",
                            {{{"type", "Split"}, {"pattern", {{"Regex", pattern}}}, {"behavior", "Isolated"},
                              {"invert", false}},
                             {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", false}}}}};
  file["model"] = {{"type", "BPE"}, {"ignore_merges", true}, {"vocab", vocab},
                   {"merges", {"h e", "l l", "he ll", "hell o", byte_spelling(' ') + " w", "o r", "l d"}}};
  const auto added = [](int id, const char* content, bool special) {
    return json{{"id", id}, {"content", content}, {"special", special}, {"single_word", false},
                {"lstrip", false}, {"rstrip", false}, {"normalized", false}};
  };
  file["added_tokens"] = {added(263, "<|begin_of_text|>", true), added(264, "<|eot_id|>", true),
                          added(265, "<tool>", false)};
  file["post_processor"] = {
      {"type", "TemplateProcessing"},
      {"single", {{{"SpecialToken", {{"id", "<|begin_of_text|>"}, {"type_id", 0}}}},
                  {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}}},
      {"special_tokens", {{"<|begin_of_text|>", {{"id", "<|begin_of_text|>"}, {"ids", {263}}}}}}};
  file["decoder"] = {{"type", "ByteLevel"}};
  t.add_json("byte-level-bpe.json", file.dump());
  file["model"]["ignore_merges"] = false;
  file["post_processor"] = nullptr;
  t.add_json("no-post-processor.json", file.dump());
}

// The shipped published files (tests/data/published_*.json: times with their launch-shape sweep, the paper's speedup
// range), each also cut to its first rows so mutations stay quick.
void published_seeds(const fs::path& source, const fs::path& out) {
  Target t(out, "published");
  for (const auto& entry : fs::directory_iterator(source / "tests" / "data")) {
    const std::string name = entry.path().filename().string();
    if (entry.path().extension() != ".json" || name.rfind("published_", 0) != 0) continue;
    const std::string text = read_file(entry.path());
    t.add_json(name, text);
    json cut = json::parse(text);
    auto keep_first = [](json& rows, std::size_t n) {
      if (!rows.is_array() || rows.size() <= n) return;
      json kept = json::array();
      for (std::size_t i = 0; i < n; ++i) kept.push_back(rows[i]);
      rows = kept;
    };
    if (cut.contains("results")) keep_first(cut["results"], 3);
    if (cut.contains("sweep") && cut["sweep"].is_object() && cut["sweep"].contains("rows"))
      keep_first(cut["sweep"]["rows"], 12);  // two sizes' rows: still a slope to fit
    t.add_json("cut-" + name, cut.dump());
  }
}

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: make_seeds SOURCE_DIR OUT_DIR\n");
    return 2;
  }
  try {
    const fs::path source = argv[1], out = argv[2];
    safetensors_seeds(out);
    index_seeds(out);
    config_seeds(out);
    tuning_seeds(source, out);
    bench_seeds(source, out);
    tokenizer_seeds(out);
    published_seeds(source, out);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  }
  return 0;
}
