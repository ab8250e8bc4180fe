// Pre-tokenizer steps of a tokenizer.json on PCRE2 (pretokenizer.h).
//
// Each Split pattern is compiled once with PCRE2_UTF | PCRE2_UCP (\s, \d, \w and POSIX classes by Unicode
// properties, as Oniguruma does in HF tokenizers) and JIT-compiled; matching uses pcre2_jit_match, which skips
// PCRE2's per-call UTF check: the tokenizer validates the whole text once before it gets here. Match data is made
// per call, so one PreTokenizer may serve several threads.
#define PCRE2_CODE_UNIT_WIDTH 8
#include "text/pretokenizer.h"

#include <pcre2.h>

#include "core/json_input.h"
#include "nvrar/types.h"

namespace nvrar::text {

namespace ji = nvrar::json_input;

// GPT-2's pattern, what ByteLevel's use_regex means (the same text HF's ByteLevel compiles).
constexpr std::string_view kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

class RegexSplitter {
 public:
  RegexSplitter(std::string_view pattern, bool literal, const std::string& where, const std::string& field) {
    int error_code = 0;
    PCRE2_SIZE error_offset = 0;
    const uint32_t options = PCRE2_UTF | PCRE2_UCP | (literal ? PCRE2_LITERAL : 0);
    code_ = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(), options, &error_code,
                          &error_offset, nullptr);
    if (!code_) {
      PCRE2_UCHAR message[256];
      pcre2_get_error_message(error_code, message, sizeof message);
      ji::fail_field(where, field,
                     "PCRE2 cannot compile the pattern at offset " + std::to_string(error_offset) + ": " +
                         reinterpret_cast<const char*>(message));
    }
    if (pcre2_jit_compile(code_, PCRE2_JIT_COMPLETE) != 0) {
      pcre2_code_free(code_);
      ji::fail_field(where, field, "PCRE2 cannot JIT-compile the pattern (PCRE2 built without JIT?)");
    }
  }
  RegexSplitter(const RegexSplitter&) = delete;
  RegexSplitter& operator=(const RegexSplitter&) = delete;
  ~RegexSplitter() { pcre2_code_free(code_); }

  // Isolated split of one piece: emit(part) for the matches and the stretches between them, in order.
  template <typename Emit>
  void split(std::string_view text, pcre2_match_data* match, const Emit& emit) const {
    const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
    std::size_t offset = 0, last_end = 0;
    while (offset < text.size()) {
      const int rc = pcre2_jit_match(code_, subject, text.size(), offset, 0, match, nullptr);
      if (rc == PCRE2_ERROR_NOMATCH) break;
      if (rc < 0) {
        PCRE2_UCHAR message[256];
        pcre2_get_error_message(rc, message, sizeof message);
        throw Error(std::string("nvrar-llm: tokenizer: PCRE2 match failed: ") +
                    reinterpret_cast<const char*>(message));
      }
      const PCRE2_SIZE* ovector = pcre2_get_ovector_pointer(match);
      const std::size_t begin = ovector[0], end = ovector[1];
      if (begin > last_end) emit(text.substr(last_end, begin - last_end));
      if (end > begin) {
        emit(text.substr(begin, end - begin));
        offset = end;
      } else {  // an empty match still cuts the text there; step over one character
        offset = end + 1;
        while (offset < text.size() && (static_cast<unsigned char>(text[offset]) & 0xC0) == 0x80) ++offset;
      }
      last_end = end;
    }
    if (last_end < text.size()) emit(text.substr(last_end));
  }

  pcre2_match_data* make_match_data() const { return pcre2_match_data_create_from_pattern(code_, nullptr); }

 private:
  pcre2_code* code_ = nullptr;
};

namespace {

void add_step_from_json(const nlohmann::json& value, const std::string& where, const std::string& field,
                        std::vector<std::shared_ptr<const RegexSplitter>>& steps) {
  if (!value.is_object()) ji::fail_field(where, field, "expected an object, got " + ji::describe(value));
  const std::string type = value.contains("type") ? ji::to_string(value["type"], where, field + ".type") : "";
  if (type == "Sequence") {
    const auto it = value.find("pretokenizers");
    if (it == value.end() || !it->is_array()) ji::fail_field(where, field + ".pretokenizers", "expected an array");
    for (std::size_t i = 0; i < it->size(); ++i)
      add_step_from_json((*it)[i], where, field + ".pretokenizers[" + std::to_string(i) + "]", steps);
  } else if (type == "Split") {
    const auto behavior = value.find("behavior");
    if (behavior == value.end() || ji::to_string(*behavior, where, field + ".behavior") != "Isolated")
      ji::fail_field(where, field + ".behavior", "only \"Isolated\" is supported");
    if (value.contains("invert") && ji::to_bool(value["invert"], where, field + ".invert"))
      ji::fail_field(where, field + ".invert", "true is not supported");
    const auto pattern = value.find("pattern");
    if (pattern == value.end() || !pattern->is_object())
      ji::fail_field(where, field + ".pattern", "expected {\"Regex\": ...} or {\"String\": ...}");
    if (pattern->contains("Regex"))
      steps.push_back(std::make_shared<RegexSplitter>(
          ji::to_string((*pattern)["Regex"], where, field + ".pattern.Regex"), false, where, field + ".pattern"));
    else if (pattern->contains("String"))
      steps.push_back(std::make_shared<RegexSplitter>(
          ji::to_string((*pattern)["String"], where, field + ".pattern.String"), true, where, field + ".pattern"));
    else
      ji::fail_field(where, field + ".pattern", "expected {\"Regex\": ...} or {\"String\": ...}");
  } else if (type == "ByteLevel") {
    if (value.contains("add_prefix_space") && ji::to_bool(value["add_prefix_space"], where, field + ".add_prefix_space"))
      steps.push_back(nullptr);  // the add-prefix-space step
    if (value.contains("use_regex") && ji::to_bool(value["use_regex"], where, field + ".use_regex"))
      steps.push_back(std::make_shared<RegexSplitter>(kGpt2Pattern, false, where, field + " (GPT-2 pattern)"));
  } else {
    ji::fail_field(where, field + ".type",
                   "'" + ji::excerpt(type) + "' is not supported (Sequence, Split and ByteLevel are)");
  }
}

}  // namespace

PreTokenizer::PreTokenizer() = default;
PreTokenizer::PreTokenizer(PreTokenizer&&) noexcept = default;
PreTokenizer& PreTokenizer::operator=(PreTokenizer&&) noexcept = default;
PreTokenizer::~PreTokenizer() = default;

PreTokenizer PreTokenizer::from_json(const nlohmann::json& value, const std::string& where) {
  PreTokenizer result;
  if (value.is_null()) return result;  // no pre-tokenizer: the whole text is one piece
  std::vector<std::shared_ptr<const RegexSplitter>> steps;
  add_step_from_json(value, where, "pre_tokenizer", steps);
  for (auto& s : steps) result.steps_.push_back(Step{std::move(s)});
  return result;
}

// One pcre2_match_data per regex step, for one split() call.
class MatchDataSet {
 public:
  explicit MatchDataSet(std::size_t steps) : data_(steps, nullptr) {}
  MatchDataSet(const MatchDataSet&) = delete;
  MatchDataSet& operator=(const MatchDataSet&) = delete;
  ~MatchDataSet() {
    for (pcre2_match_data* m : data_) pcre2_match_data_free(m);
  }
  pcre2_match_data* get(std::size_t step, const RegexSplitter& regex) {
    if (!data_[step] && !(data_[step] = regex.make_match_data()))
      throw Error("nvrar-llm: tokenizer: out of memory for PCRE2 match data");
    return data_[step];
  }

 private:
  std::vector<pcre2_match_data*> data_;
};

// Step `step` applied to `piece`, its parts handed to the next step, the last step's parts to emit: depth first,
// so no list of all pieces is ever built (a large text would otherwise allocate, and fault in, megabytes per call).
void PreTokenizer::run_step(std::size_t step, std::string_view piece, MatchDataSet& matches,
                            const std::function<void(std::string_view)>& emit) const {
  if (piece.empty()) return;
  if (step == steps_.size()) return emit(piece);
  const Step& s = steps_[step];
  if (!s.regex) {
    if (piece.front() == ' ') return run_step(step + 1, piece, matches, emit);
    std::string spaced(1, ' ');
    spaced.append(piece);
    return run_step(step + 1, spaced, matches, emit);
  }
  s.regex->split(piece, matches.get(step, *s.regex),
                 [&](std::string_view part) { run_step(step + 1, part, matches, emit); });
}

void PreTokenizer::split(std::string_view text, const std::function<void(std::string_view)>& emit) const {
  MatchDataSet matches(steps_.size());
  run_step(0, text, matches, emit);
}

}  // namespace nvrar::text
