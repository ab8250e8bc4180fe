// The Llama-3 chat format (chat.h): recognising the template of a model directory and rendering messages.
//
// Recognition is by the template's defining pieces rather than by its exact text (the published templates differ
// in whitespace and comments between releases): the header tokens with the per-message line
//   '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>'
// and then either the Llama-3.1 system preamble ("Cutting Knowledge Date") or Llama-3's BOS on the first message.
// Rendering follows those templates' no-tools branch; Jinja's `|` binds tighter than `+`, so only the content is
// trimmed. scripts/hf_tokenizer_check.py --model-dir compares render() with transformers' apply_chat_template.
#include "text/chat.h"

#include <ctime>
#include <optional>
#include <fstream>
#include <sstream>

#include "core/json_input.h"
#include "nvrar/types.h"
#include "text/utf8.h"

namespace nvrar::text {

namespace ji = nvrar::json_input;

namespace {

constexpr std::string_view kHeaderStart = "<|start_header_id|>";
constexpr std::string_view kHeaderEnd = "<|end_header_id|>\n\n";
constexpr std::string_view kEndOfTurn = "<|eot_id|>";
constexpr std::string_view kKnowledgeDate = "Cutting Knowledge Date: December 2023\n";

std::optional<std::string> read_if_exists(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  std::ostringstream text;
  text << in.rdbuf();
  return std::move(text).str();
}

// A token field of tokenizer_config.json: a string, or an AddedToken object {"content": ...}; "" when absent.
std::string token_field(const nlohmann::json& config, const char* name, const std::string& where) {
  const auto it = config.find(name);
  if (it == config.end() || it->is_null()) return "";
  if (it->is_object()) return ji::to_string(it->value("content", nlohmann::json()), where, std::string(name) + ".content");
  return ji::to_string(*it, where, name);
}

// The template text: tokenizer_config.json's chat_template (a string, or a list of named templates of which we take
// "default"), else chat_template.jinja beside it.
std::string template_text(const nlohmann::json& config, const std::filesystem::path& dir, const std::string& where) {
  const auto it = config.find("chat_template");
  if (it != config.end() && it->is_string()) return it->get<std::string>();
  if (it != config.end() && it->is_array()) {
    for (std::size_t i = 0; i < it->size(); ++i) {
      const nlohmann::json& entry = (*it)[i];
      const std::string field = "chat_template[" + std::to_string(i) + "]";
      if (entry.is_object() && ji::to_string(entry.value("name", nlohmann::json()), where, field + ".name") == "default")
        return ji::to_string(entry.value("template", nlohmann::json()), where, field + ".template");
    }
    ji::fail_field(where, "chat_template", "a list of templates without one named \"default\"");
  }
  if (it != config.end() && !it->is_null())
    ji::fail_field(where, "chat_template", "expected a string or a list, got " + ji::describe(*it));
  if (auto jinja = read_if_exists(dir / "chat_template.jinja")) return *jinja;
  ji::fail_field(where, "chat_template", "is missing (and there is no chat_template.jinja): not a chat model?");
}

std::string today_day_month_year() {
  const std::time_t now = std::time(nullptr);
  std::tm local{};
  localtime_r(&now, &local);
  char text[32];
  std::strftime(text, sizeof text, "%d %b %Y", &local);
  return text;
}

void append_turn(std::string& out, std::string_view role, std::string_view content) {
  out.append(kHeaderStart).append(role).append(kHeaderEnd);
  out.append(utf8::trim_python_whitespace(content)).append(kEndOfTurn);
}

}  // namespace

ChatFormat ChatFormat::from_template(const std::string& chat_template, const std::string& bos_token,
                                     const std::string& where) {
  // Compared without spaces, with Jinja's "\n" escapes as newlines (releases differ in both).
  std::string squeezed;
  for (std::size_t i = 0; i < chat_template.size(); ++i) {
    if (chat_template[i] == ' ') continue;
    if (chat_template[i] == '\\' && i + 1 < chat_template.size() && chat_template[i + 1] == 'n') {
      squeezed += '\n';
      ++i;
      continue;
    }
    squeezed += chat_template[i];
  }
  const auto has = [&](std::string_view s) { return squeezed.find(s) != std::string::npos; };
  const bool header_turns = has("'<|start_header_id|>'+message['role']+'<|end_header_id|>\n\n'+") &&
                            has("'<|eot_id|>'") && has("message['content']|trim");
  if (!header_turns)
    ji::fail_field(where, "chat_template",
                   "not a Llama-3 template (no '<|start_header_id|>' + role + '<|end_header_id|>' turns ending in "
                   "<|eot_id|>); supported: Llama-3 and Llama-3.1/3.2/3.3 Instruct templates");
  ChatFormat format;
  format.bos_token_ = bos_token;
  if (has("CuttingKnowledgeDate:December2023")) {
    format.family_ = Family::llama3_1;
    // The template's default date, or today's where the template asks transformers for it (Llama-3.2's).
    constexpr std::string_view kDefault = "set date_string = \"";
    const std::size_t at = chat_template.find(kDefault);
    if (has("strftime_now")) {
      format.date_string_ = today_day_month_year();
    } else if (at != std::string::npos && chat_template.find('"', at + kDefault.size()) != std::string::npos) {
      const std::size_t begin = at + kDefault.size();
      format.date_string_ = chat_template.substr(begin, chat_template.find('"', begin) - begin);
    } else {
      ji::fail_field(where, "chat_template", "a Llama-3.1-style template without a default date_string");
    }
  } else if (has("loop.index0==0") && has("bos_token+content")) {
    format.family_ = Family::llama3;
  } else {
    ji::fail_field(where, "chat_template",
                   "Llama-3 header turns, but neither Llama-3's (BOS on the first turn) nor Llama-3.1's (system "
                   "preamble with 'Cutting Knowledge Date') layout; not supported");
  }
  return format;
}

ChatFormat ChatFormat::from_model_dir(const std::filesystem::path& dir) {
  const std::filesystem::path path = dir / "tokenizer_config.json";
  const std::string where = "nvrar-llm: " + path.string();
  const auto text = read_if_exists(path);
  if (!text) throw Error(where + ": cannot read the file");
  const nlohmann::json config = ji::parse(*text, where);
  if (!config.is_object()) throw Error(where + ": expected a JSON object, got " + ji::describe(config));
  ChatFormat format = from_template(template_text(config, dir, where), token_field(config, "bos_token", where), where);
  format.eos_token_ = token_field(config, "eos_token", where);
  return format;
}

std::string ChatFormat::render(const std::vector<ChatMessage>& messages, bool add_generation_prompt) const {
  for (std::size_t i = 0; i < messages.size(); ++i) {
    const std::string& role = messages[i].role;
    if (role.empty() || role.find("<|") != std::string::npos || role.find('\n') != std::string::npos)
      throw Error("nvrar-llm: chat: message " + std::to_string(i) + ": role '" + ji::excerpt(role) +
                  "' is empty or holds a newline or a special token");
    if (family_ == Family::llama3_1 && (role == "tool" || role == "ipython"))
      throw Error("nvrar-llm: chat: message " + std::to_string(i) + ": role '" + role +
                  "': tool messages are not supported (the template's tool-calling branch is not implemented)");
  }
  // Llama-3's template puts BOS on the first message (none without messages); Llama-3.1's always starts with it.
  std::string out = family_ == Family::llama3 && messages.empty() ? "" : bos_token_;
  std::size_t first = 0;
  if (family_ == Family::llama3_1) {
    // The system turn always comes first: the preamble, then the system message if the conversation opens with one.
    std::string_view system_message;
    if (!messages.empty() && messages[0].role == "system") {
      system_message = utf8::trim_python_whitespace(messages[0].content);
      first = 1;
    }
    out.append(kHeaderStart).append("system").append(kHeaderEnd).append(kKnowledgeDate);
    out.append("Today Date: ").append(date_string_).append("\n\n").append(system_message).append(kEndOfTurn);
  }
  for (std::size_t i = first; i < messages.size(); ++i) append_turn(out, messages[i].role, messages[i].content);
  if (add_generation_prompt) out.append(kHeaderStart).append("assistant").append(kHeaderEnd);
  return out;
}

}  // namespace nvrar::text
