// Loading a tokenizer.json and encoding/decoding with it (tokenizer.h).
//
// Encode: one UTF-8 check of the whole text, then a scan for added tokens (a table of candidates per first byte,
// longest first, so the leftmost match is also the longest there), each stretch between them pre-tokenized and
// BPE-encoded piece by piece, the post-processor's ids around the result. Decode: every id's bytes joined, then
// repaired to UTF-8 once (utf8::append_lossy). All of it is const and safe to call from several threads.
#include "text/tokenizer.h"

#include <array>
#include <functional>
#include <fstream>
#include <sstream>

#include "core/json_input.h"
#include "nvrar/types.h"
#include "text/bpe.h"
#include "text/pretokenizer.h"
#include "text/utf8.h"

namespace nvrar::text {

namespace ji = nvrar::json_input;

struct AddedToken {
  std::string content;
  int32_t id = 0;
  bool special = false;
};

enum class IdKind : uint8_t { none, vocab, added, special };

struct TokenizerData {
  TokenizerData(std::unique_ptr<BpeModel> m, PreTokenizer&& p) : model_owner(std::move(m)), pre(std::move(p)) {}
  std::string where;
  std::unique_ptr<BpeModel> model_owner;
  const BpeModel& model = *model_owner;
  PreTokenizer pre;
  std::vector<AddedToken> added;
  std::array<std::vector<int>, 256> added_by_first_byte;  // indices into added, longest first
  BytesToId added_ids;                                     // content -> id
  std::vector<int32_t> prefix_ids, suffix_ids;             // the post-processor's, around the sequence
  std::vector<std::string> id_bytes;                       // what each id decodes to
  std::vector<IdKind> id_kind;
};

namespace {

constexpr std::string_view kPrefix = "nvrar-llm: tokenizer ";

std::vector<AddedToken> read_added_tokens(const nlohmann::json& root, const std::string& where) {
  std::vector<AddedToken> added;
  const auto list = root.find("added_tokens");
  if (list == root.end() || list->is_null()) return added;
  if (!list->is_array()) ji::fail_field(where, "added_tokens", "expected an array, got " + ji::describe(*list));
  for (std::size_t i = 0; i < list->size(); ++i) {
    const nlohmann::json& t = (*list)[i];
    const std::string field = "added_tokens[" + std::to_string(i) + "]";
    if (!t.is_object()) ji::fail_field(where, field, "expected an object, got " + ji::describe(t));
    AddedToken token;
    if (!t.contains("id") || !t.contains("content")) ji::fail_field(where, field, "needs 'id' and 'content'");
    token.id = ji::to_integer<int32_t>(t["id"], where, field + ".id", 0, (1 << 24) - 1);
    token.content = ji::to_string(t["content"], where, field + ".content");
    if (token.content.empty()) ji::fail_field(where, field + ".content", "is empty");
    if (t.contains("special")) token.special = ji::to_bool(t["special"], where, field + ".special");
    // Matching rules we do not implement are refused rather than ignored.
    for (const char* flag : {"single_word", "lstrip", "rstrip"})
      if (t.contains(flag) && ji::to_bool(t[flag], where, field + "." + flag))
        ji::fail_field(where, field + "." + flag, "true is not supported");
    added.push_back(std::move(token));
  }
  return added;
}

// The ids TemplateProcessing's "single" template puts before and after the sequence.
void read_template(const nlohmann::json& p, const std::string& where, const std::string& field,
                   TokenizerData& data) {
  const auto single = p.find("single");
  if (single == p.end() || !single->is_array()) ji::fail_field(where, field + ".single", "expected an array");
  const auto specials = p.find("special_tokens");
  bool after_sequence = false;
  for (std::size_t i = 0; i < single->size(); ++i) {
    const nlohmann::json& item = (*single)[i];
    const std::string item_field = field + ".single[" + std::to_string(i) + "]";
    if (item.contains("Sequence")) {
      if (after_sequence) ji::fail_field(where, item_field, "a second sequence in the single template");
      after_sequence = true;
    } else if (item.contains("SpecialToken")) {
      const std::string name = ji::to_string(item["SpecialToken"].value("id", nlohmann::json()), where,
                                             item_field + ".SpecialToken.id");
      if (specials == p.end() || !specials->is_object() || !specials->contains(name))
        ji::fail_field(where, field + ".special_tokens", "has no entry '" + ji::excerpt(name) + "'");
      const nlohmann::json& ids = (*specials)[name].value("ids", nlohmann::json());
      if (!ids.is_array()) ji::fail_field(where, field + ".special_tokens." + name + ".ids", "expected an array");
      for (const auto& id : ids)
        (after_sequence ? data.suffix_ids : data.prefix_ids)
            .push_back(ji::to_integer<int32_t>(id, where, field + ".special_tokens." + name + ".ids", 0));
    } else {
      ji::fail_field(where, item_field, "expected a Sequence or a SpecialToken, got " + ji::describe(item));
    }
  }
}

void read_post_processor(const nlohmann::json& p, const std::string& where, const std::string& field,
                         TokenizerData& data) {
  if (p.is_null()) return;
  if (!p.is_object()) ji::fail_field(where, field, "expected an object, got " + ji::describe(p));
  const std::string type = ji::to_string(p.value("type", nlohmann::json()), where, field + ".type");
  if (type == "ByteLevel") return;  // offsets only; the ids are untouched
  if (type == "TemplateProcessing") return read_template(p, where, field, data);
  if (type == "Sequence") {
    const auto list = p.find("processors");
    if (list == p.end() || !list->is_array()) ji::fail_field(where, field + ".processors", "expected an array");
    for (std::size_t i = 0; i < list->size(); ++i)
      read_post_processor((*list)[i], where, field + ".processors[" + std::to_string(i) + "]", data);
    return;
  }
  ji::fail_field(where, field + ".type",
                 "'" + ji::excerpt(type) + "' is not supported (ByteLevel, TemplateProcessing and Sequence are)");
}

void check_decoder(const nlohmann::json& d, const std::string& where) {
  const bool byte_level = d.is_object() && d.contains("type") && d["type"] == "ByteLevel";
  if (!byte_level)
    ji::fail_field(where, "decoder",
                   d.is_object() && d.contains("type")
                       ? "'" + ji::excerpt(ji::describe(d["type"])) + "' is not supported (ByteLevel only)"
                       : "expected a ByteLevel decoder, got " + ji::describe(d));
}

std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  if (!in || !(text << in.rdbuf()))
    throw Error(std::string(kPrefix) + path.string() + ": cannot read the file");
  return std::move(text).str();
}

}  // namespace

Tokenizer::Tokenizer(std::unique_ptr<TokenizerData> data) : data_(std::move(data)) {}
Tokenizer::Tokenizer(Tokenizer&&) noexcept = default;
Tokenizer& Tokenizer::operator=(Tokenizer&&) noexcept = default;
Tokenizer::~Tokenizer() = default;

Tokenizer Tokenizer::from_file(const std::filesystem::path& tokenizer_json) {
  return from_json_text(read_file(tokenizer_json), std::string(kPrefix) + tokenizer_json.string());
}

Tokenizer Tokenizer::from_json_text(std::string_view json_text, const std::string& where) {
  const nlohmann::json root = ji::parse(json_text, where);
  if (!root.is_object()) throw Error(where + ": expected a JSON object, got " + ji::describe(root));
  if (root.contains("normalizer") && !root["normalizer"].is_null())
    ji::fail_field(where, "normalizer", "is set; only null is supported (Llama-3 and GPT-2 files have none)");
  if (!root.contains("model")) ji::fail_field(where, "model", "is missing");
  check_decoder(root.value("decoder", nlohmann::json()), where);

  auto data = std::make_unique<TokenizerData>(BpeModel::from_json(root["model"], where),
                                              PreTokenizer::from_json(root.value("pre_tokenizer", nlohmann::json()),
                                                                      where));
  data->where = where;
  data->added = read_added_tokens(root, where);
  read_post_processor(root.value("post_processor", nlohmann::json()), where, "post_processor", *data);

  // What each id decodes to: the model's bytes, or an added token's bytes as the ByteLevel decoder computes them.
  const auto& model_bytes = data->model.id_bytes();
  data->id_bytes = model_bytes;
  data->id_kind.assign(model_bytes.size(), IdKind::none);
  for (std::size_t id = 0; id < model_bytes.size(); ++id)
    if (!model_bytes[id].empty()) data->id_kind[id] = IdKind::vocab;
  for (std::size_t i = 0; i < data->added.size(); ++i) {
    const AddedToken& t = data->added[i];
    if (static_cast<std::size_t>(t.id) >= data->id_bytes.size()) {
      data->id_bytes.resize(t.id + 1);
      data->id_kind.resize(t.id + 1, IdKind::none);
    }
    data->id_bytes[t.id] = utf8::spelling_to_bytes(t.content);
    data->id_kind[t.id] = t.special ? IdKind::special : IdKind::added;
    data->added_ids.insert_or_assign(t.content, t.id);
    data->added_by_first_byte[static_cast<unsigned char>(t.content[0])].push_back(static_cast<int>(i));
  }
  for (auto& candidates : data->added_by_first_byte)
    std::stable_sort(candidates.begin(), candidates.end(), [&](int a, int b) {
      return data->added[a].content.size() > data->added[b].content.size();
    });
  for (const int32_t id : data->prefix_ids)
    if (static_cast<std::size_t>(id) >= data->id_kind.size() || data->id_kind[id] == IdKind::none)
      ji::fail_field(where, "post_processor", "adds id " + std::to_string(id) + ", which no token has");
  for (const int32_t id : data->suffix_ids)
    if (static_cast<std::size_t>(id) >= data->id_kind.size() || data->id_kind[id] == IdKind::none)
      ji::fail_field(where, "post_processor", "adds id " + std::to_string(id) + ", which no token has");
  return Tokenizer(std::move(data));
}

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool add_special_tokens) const {
  const TokenizerData& d = *data_;
  if (const auto bad = utf8::first_invalid(text))
    throw Error(std::string(kPrefix) + "encode: the text is not valid UTF-8 (byte " + std::to_string(*bad) +
                " of " + std::to_string(text.size()) + ")");
  std::vector<int32_t> ids;
  ids.reserve(text.size() / 3 + d.prefix_ids.size() + d.suffix_ids.size() + 1);
  if (add_special_tokens) ids.insert(ids.end(), d.prefix_ids.begin(), d.prefix_ids.end());

  const std::function<void(std::string_view)> encode_piece = [&](std::string_view piece) {
    d.model.encode_piece(piece, ids);
  };
  auto encode_stretch = [&](std::string_view stretch) {
    if (!stretch.empty()) d.pre.split(stretch, encode_piece);
  };
  std::size_t stretch_begin = 0;
  for (std::size_t i = 0; i < text.size();) {
    const auto& candidates = d.added_by_first_byte[static_cast<unsigned char>(text[i])];
    const AddedToken* match = nullptr;
    for (const int c : candidates)
      if (text.substr(i).starts_with(d.added[c].content)) {
        match = &d.added[c];
        break;
      }
    if (!match) {
      ++i;
      continue;
    }
    encode_stretch(text.substr(stretch_begin, i - stretch_begin));
    ids.push_back(match->id);
    i += match->content.size();
    stretch_begin = i;
  }
  encode_stretch(text.substr(stretch_begin));
  if (add_special_tokens) ids.insert(ids.end(), d.suffix_ids.begin(), d.suffix_ids.end());
  return ids;
}

std::string_view Tokenizer::token_bytes(int32_t id) const {
  const TokenizerData& d = *data_;
  if (id < 0 || static_cast<std::size_t>(id) >= d.id_kind.size() || d.id_kind[id] == IdKind::none)
    throw Error(std::string(kPrefix) + "decode: id " + std::to_string(id) + " is no token of " +
                d.where.substr(kPrefix.size()) + " (ids 0 to " + std::to_string(vocab_size() - 1) + ")");
  return d.id_bytes[id];
}

bool Tokenizer::is_special(int32_t id) const {
  const TokenizerData& d = *data_;
  return id >= 0 && static_cast<std::size_t>(id) < d.id_kind.size() && d.id_kind[id] == IdKind::special;
}

std::string Tokenizer::decode(std::span<const int32_t> ids, bool skip_special_tokens) const {
  std::string bytes;
  for (const int32_t id : ids) {
    const std::string_view b = token_bytes(id);
    if (!(skip_special_tokens && is_special(id))) bytes += b;
  }
  std::string text;
  text.reserve(bytes.size());
  utf8::append_lossy(text, bytes);
  return text;
}

std::optional<int32_t> Tokenizer::token_id(std::string_view token) const {
  const TokenizerData& d = *data_;
  if (const auto it = d.added_ids.find(token); it != d.added_ids.end()) return it->second;
  bool all_mapped = false;
  const std::string bytes = utf8::spelling_to_bytes(token, &all_mapped);
  if (!all_mapped) return std::nullopt;
  if (const int32_t id = d.model.find_bytes(bytes); id >= 0) return id;
  return std::nullopt;
}

int64_t Tokenizer::vocab_size() const { return static_cast<int64_t>(data_->id_kind.size()); }

StreamDecoder::StreamDecoder(const Tokenizer& tok, bool skip_special_tokens)
    : tok_(&tok), skip_special_(skip_special_tokens) {}

std::string StreamDecoder::push(int32_t id) {
  const std::string_view bytes = tok_->token_bytes(id);
  if (skip_special_ && tok_->is_special(id)) return {};
  pending_ += bytes;
  std::string text;
  const std::size_t consumed = utf8::append_lossy_complete(text, pending_);
  pending_.erase(0, consumed);
  return text;
}

std::string StreamDecoder::finish() {
  std::string text;
  utf8::append_lossy(text, pending_);
  pending_.clear();
  return text;
}

}  // namespace nvrar::text
