// EOS ids and sampling defaults of a model directory (generation_config.h).
#include "engine/generation_config.h"

#include <fmt/format.h>

#include <fstream>
#include <optional>
#include <sstream>

#include "core/json_input.h"
#include "engine/error.h"

namespace nvrar::engine {

namespace {

namespace ji = json_input;

// The parsed object of `path`, or nothing when the file does not exist.
std::optional<ji::Json> read_object(const std::filesystem::path& path) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) return std::nullopt;
  std::ifstream f(path, std::ios::binary);
  if (!f) fail("{}: cannot open", path.string());
  std::ostringstream text;
  text << f.rdbuf();
  const std::string where = "nvrar-llm: " + path.string();
  ji::Json j = ji::parse(text.str(), where);
  if (!j.is_object()) fail("{}: the top level is {}, expected an object", path.string(), ji::describe(j));
  return j;
}

// eos_token_id of `j` (integer, list of integers, or null/absent: none); nothing when the field is absent.
std::optional<std::vector<int32_t>> eos_ids(const ji::Json& j, const std::filesystem::path& path, int64_t vocab) {
  const auto it = j.find("eos_token_id");
  if (it == j.end() || it->is_null()) return std::nullopt;
  const std::string where = "nvrar-llm: " + path.string();
  const auto id = [&](const ji::Json& v, const std::string& field) {
    return ji::to_integer<int32_t>(v, where, field, 0, static_cast<int32_t>(vocab - 1));
  };
  std::vector<int32_t> ids;
  if (it->is_array()) {
    for (std::size_t i = 0; i < it->size(); ++i) ids.push_back(id((*it)[i], fmt::format("eos_token_id[{}]", i)));
  } else {
    ids.push_back(id(*it, "eos_token_id"));
  }
  return ids;
}

}  // namespace

GenerationConfig load_generation_config(const std::filesystem::path& dir, int64_t vocab_size) {
  GenerationConfig out;
  const std::filesystem::path gen_path = dir / "generation_config.json", config_path = dir / "config.json";
  const std::optional<ji::Json> gen = read_object(gen_path);
  std::optional<std::vector<int32_t>> eos = gen ? eos_ids(*gen, gen_path, vocab_size) : std::nullopt;
  if (!eos) {
    const std::optional<ji::Json> config = read_object(config_path);
    if (config) eos = eos_ids(*config, config_path, vocab_size);
  }
  if (eos) out.eos_token_ids = *eos;
  if (gen) {
    const std::string where = "nvrar-llm: " + gen_path.string();
    const auto field = [&](const char* name) -> const ji::Json* {
      const auto it = gen->find(name);
      return it == gen->end() || it->is_null() ? nullptr : &*it;
    };
    const ji::Json* do_sample = field("do_sample");
    if (do_sample && ji::to_bool(*do_sample, where, "do_sample")) {
      out.sampling.temperature = 1.0f;
      if (const ji::Json* t = field("temperature")) out.sampling.temperature = ji::to_float(*t, where, "temperature");
      if (const ji::Json* k = field("top_k")) out.sampling.top_k = ji::to_integer<int>(*k, where, "top_k", 0);
      if (const ji::Json* p = field("top_p")) out.sampling.top_p = ji::to_float(*p, where, "top_p");
      check_sampling_params(out.sampling, where);
    }
  }
  return out;
}

}  // namespace nvrar::engine
