// Checked reading of the JSON files users hand us: config.json, safetensors headers and index files, tuning tables,
// nvrar-bench reports, nvrar-llm reference files. Every parser of those files goes through here, so that each of
// them refuses hostile input the same way, with a message that names the file and the field:
//  - parse() limits nesting to kMaxDepth levels while it parses, and turns nlohmann's exceptions (syntax errors, and
//    out_of_range.406 for a number beyond a double such as 1e999) into nvrar::Error naming the file;
//  - to_integer(), to_double(), to_float(), to_string(), to_bool() are the one checked conversion of a value: type,
//    integer-ness, range (no silent truncation, no float-to-int overflow), finiteness;
//  - describe() and excerpt() write a value or a name from the input into a message briefly, never the whole value
//    (dumping a deeply nested or huge value is exactly what crashed before).
//
// `where` begins every message; it is the tool's prefix and the file, and what inside it is being read, e.g.
//   "nvrar: tuning table /t.json entry 3" -> "nvrar: tuning table /t.json entry 3: field 'max_bytes': 1e+30 is out
//   of range (1 to 9223372036854775807)".
#pragma once

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <utility>

namespace nvrar::json_input {

using Json = nlohmann::json;

// Deepest nesting parse() accepts. The files above nest at most 4 levels (a reference file's logits); the limit
// leaves room for metadata and keeps every recursive walk of a parsed value (nlohmann's dump, comparison) shallow.
inline constexpr int kMaxDepth = 64;
// Longest excerpt of an input string or name in a message.
inline constexpr std::size_t kExcerptChars = 60;

// Parses `text`; Error "<where>: <invalid> (<nlohmann's reason, shortened>)" on a syntax error,
// "<where>: JSON nested deeper than 64 levels", "<where>: JSON number '1e999' is out of the range of a double".
// `invalid` is how the caller's messages have always named a syntax error.
Json parse(std::string_view text, const std::string& where, std::string_view invalid = "not valid JSON");

// A value in a few words: "null", "true", "the number 2.5", "the string \"abc...\"", "an array of 3 values",
// "an object of 2 fields". At most about kExcerptChars characters of the input.
std::string describe(const Json& value);
// `text` cut to at most `max_chars` bytes (at a UTF-8 character boundary), "..." appended when cut.
std::string excerpt(std::string_view text, std::size_t max_chars = kExcerptChars);

// Error "<where>: field '<field>': <why>".
[[noreturn]] void fail_field(const std::string& where, std::string_view field, std::string_view why);

namespace detail {
// `value` as an integer, its range not yet checked. Integers of the JSON text are taken as they are; a
// floating-point number only when whole (Python writes some integers as 8192.0), and then `inexact` when beyond
// 2^53, where its decimal text and its value may differ (to_integer refuses it after the range check, so that 1e30
// reads as out of range), and `beyond_64_bits` when no 64-bit integer holds it.
struct ExactInteger {
  bool is_unsigned = false;  // the value is u (at least 2^63), else s
  std::int64_t s = 0;
  std::uint64_t u = 0;
  bool inexact = false;
  bool beyond_64_bits = false;
};
ExactInteger exact_integer(const Json& value, const std::string& where, std::string_view field);
[[noreturn]] void out_of_range(const Json& value, const std::string& where, std::string_view field,
                               const std::string& min, const std::string& max);
[[noreturn]] void inexact(const Json& value, const std::string& where, std::string_view field);
}  // namespace detail

// `value` as a T in [min, max]; Error naming where and field for another type, a fraction, or a value out of range.
template <std::integral T>
T to_integer(const Json& value, const std::string& where, std::string_view field,
             T min = std::numeric_limits<T>::min(), T max = std::numeric_limits<T>::max()) {
  static_assert(!std::same_as<T, bool>, "use to_bool");
  const detail::ExactInteger x = detail::exact_integer(value, where, field);
  if (x.beyond_64_bits || (x.is_unsigned ? std::cmp_greater(x.u, max)
                                         : std::cmp_less(x.s, min) || std::cmp_greater(x.s, max)))
    detail::out_of_range(value, where, field, std::to_string(min), std::to_string(max));
  if (x.inexact) detail::inexact(value, where, field);
  return x.is_unsigned ? T(x.u) : T(x.s);
}

// A number (an integer of the text is converted), in [min, max]; always finite.
double to_double(const Json& value, const std::string& where, std::string_view field,
                 double min = std::numeric_limits<double>::lowest(), double max = std::numeric_limits<double>::max());
// A number that fits a float (|value| <= FLT_MAX): the conversion of a larger double is undefined behaviour.
float to_float(const Json& value, const std::string& where, std::string_view field);
std::string to_string(const Json& value, const std::string& where, std::string_view field);
bool to_bool(const Json& value, const std::string& where, std::string_view field);

}  // namespace nvrar::json_input
