// The pre-tokenizer of a byte-level BPE tokenizer.json: the text between added tokens cut into pieces that BPE then
// encodes one by one. Supported steps, in the file's order (a "Sequence" of them, or one):
//  - Split with {"Regex": ...} or {"String": ...}, behavior "Isolated", invert false: every match is a piece, and so
//    is every stretch between matches. The regex runs on PCRE2 (UTF + Unicode properties, JIT-compiled), whose
//    syntax covers what these files use (\p{L}, \p{N}, (?i:...), (?!...)).
//  - ByteLevel: add_prefix_space (a space before a piece that does not start with one), and use_regex (a Split with
//    GPT-2's pattern). Its byte mapping is implicit: the tokenizer works on raw bytes throughout.
// Pieces are views into the input, except a piece given a prefix space, which lives only during the callback.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace nvrar::text {

class RegexSplitter;  // one compiled pattern (pretokenizer.cpp)
class MatchDataSet;   // PCRE2 match data of one split() call (pretokenizer.cpp)

class PreTokenizer {
 public:
  // Reads the "pre_tokenizer" value; `where` names the file in errors (field 'pre_tokenizer...').
  static PreTokenizer from_json(const nlohmann::json& value, const std::string& where);

  // Calls emit(piece) for each non-empty piece of `text` (valid UTF-8), in order. A piece may point into a string
  // that lives only during the call.
  void split(std::string_view text, const std::function<void(std::string_view)>& emit) const;

  PreTokenizer(PreTokenizer&&) noexcept;
  PreTokenizer& operator=(PreTokenizer&&) noexcept;
  ~PreTokenizer();

 private:
  PreTokenizer();
  struct Step {
    std::shared_ptr<const RegexSplitter> regex;  // null: the add-prefix-space step
  };
  void run_step(std::size_t step, std::string_view piece, MatchDataSet& matches,
                const std::function<void(std::string_view)>& emit) const;
  std::vector<Step> steps_;
};

}  // namespace nvrar::text
