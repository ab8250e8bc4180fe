// The Llama-3 chat format, recognised from a model directory's tokenizer_config.json (its chat_template, or
// chat_template.jinja beside it) and rendered without a template engine:
//   <|begin_of_text|><|start_header_id|>ROLE<|end_header_id|>\n\nCONTENT<|eot_id|> ... per message (content trimmed
//   of surrounding whitespace as Jinja's `trim` does), then <|start_header_id|>assistant<|end_header_id|>\n\n when a
//   generation prompt is asked for.
// Two template families are known:
//  - llama3: Meta-Llama-3-*-Instruct's template (messages as given; BOS before the first);
//  - llama3.1: Llama-3.1 / 3.2 / 3.3 Instruct's template without tools: a system turn always first, opening with
//    "Cutting Knowledge Date: December 2023\nToday Date: <date>\n\n" then the system message (if any).
// Anything else (tool calls, other models' templates) is refused with an error naming the file and the reason.
// The rendered string holds the special tokens as text; Tokenizer::encode(render(...), false) gives the ids.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

namespace nvrar::text {

struct ChatMessage {
  std::string role, content;
};

class ChatFormat {
 public:
  enum class Family { llama3, llama3_1 };

  static ChatFormat from_model_dir(const std::filesystem::path& dir);  // clear error for unsupported templates
  // From a template's text and the BOS token's string; `where` names the source in errors.
  static ChatFormat from_template(const std::string& chat_template, const std::string& bos_token,
                                  const std::string& where);

  std::string render(const std::vector<ChatMessage>& messages, bool add_generation_prompt) const;

  Family family() const { return family_; }
  const std::string& bos_token() const { return bos_token_; }
  const std::string& eos_token() const { return eos_token_; }  // tokenizer_config's eos_token ("" if none)
  // llama3.1 only: the "Today Date" the template prints. The template's default, or (Llama-3.2's template, which
  // asks transformers for today's date) today's date as "%d %b %Y"; settable for reproducible prompts.
  const std::string& date_string() const { return date_string_; }
  void set_date_string(std::string date) { date_string_ = std::move(date); }

 private:
  Family family_ = Family::llama3;
  std::string bos_token_;
  std::string eos_token_;
  std::string date_string_;
};

}  // namespace nvrar::text
