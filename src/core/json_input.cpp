// Checked reading of user-supplied JSON (json_input.h).
#include "core/json_input.h"

#include <fmt/format.h>

#include <cfloat>
#include <cmath>

#include "nvrar/types.h"

namespace nvrar::json_input {

namespace {

// Thrown from the parser callback to stop at the first value nested too deep (the callback's return value only
// decides whether a value is kept, not whether parsing goes on).
struct TooDeep {};

// nlohmann's message quotes the token it stopped at ("last read: '...'", "parsing '1e999'"), which can be as long
// as the input (an unterminated string): keep its start.
constexpr std::size_t kReasonChars = 200;

// Largest magnitude below which every integer is exact in a double.
constexpr double kExactDoubleLimit = 9007199254740992.0;  // 2^53

// The token of nlohmann's "number overflow parsing '<token>'" message, or "" when it is not that message.
std::string_view overflow_token(std::string_view what) {
  constexpr std::string_view kMarker = "parsing '";
  const std::size_t begin = what.find(kMarker);
  const std::size_t end = what.rfind('\'');
  if (begin == std::string_view::npos || end == std::string_view::npos || end < begin + kMarker.size()) return {};
  return what.substr(begin + kMarker.size(), end - begin - kMarker.size());
}

// A number as the text would have it (integers exactly, doubles shortest round-trip).
std::string number_text(const Json& value) {
  if (value.is_number_unsigned()) return fmt::format("{}", value.get<std::uint64_t>());
  if (value.is_number_integer()) return fmt::format("{}", value.get<std::int64_t>());
  return fmt::format("{}", value.get<double>());
}

[[noreturn]] void wrong_type(const Json& value, const std::string& where, std::string_view field,
                             std::string_view expected) {
  fail_field(where, field, fmt::format("wrong type: expected {}, got {}", expected, describe(value)));
}

}  // namespace

Json parse(std::string_view text, const std::string& where, std::string_view invalid) {
  // depth is the number of containers around the one that starts: 0 for the top level.
  const Json::parser_callback_t limit = [](int depth, Json::parse_event_t event, Json&) {
    if ((event == Json::parse_event_t::object_start || event == Json::parse_event_t::array_start) &&
        depth >= kMaxDepth)
      throw TooDeep{};
    return true;
  };
  try {
    return Json::parse(text, limit);
  } catch (const TooDeep&) {
    throw Error(fmt::format("{}: JSON nested deeper than {} levels", where, kMaxDepth));
  } catch (const Json::out_of_range& e) {
    // out_of_range.406: a number beyond a double (1e999); nlohmann would otherwise have stored an infinity.
    const std::string_view token = overflow_token(e.what());
    if (!token.empty())
      throw Error(fmt::format("{}: JSON number '{}' is out of the range of a double", where, excerpt(token)));
    throw Error(fmt::format("{}: {} ({})", where, invalid, excerpt(e.what(), kReasonChars)));
  } catch (const Json::exception& e) {
    throw Error(fmt::format("{}: {} ({})", where, invalid, excerpt(e.what(), kReasonChars)));
  }
}

std::string excerpt(std::string_view text, std::size_t max_chars) {
  if (text.size() <= max_chars) return std::string(text);
  std::size_t cut = max_chars;
  // Back up over UTF-8 continuation bytes (10xxxxxx) so the excerpt stays valid UTF-8.
  while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) --cut;
  return std::string(text.substr(0, cut)) + "...";
}

std::string describe(const Json& value) {
  switch (value.type()) {
    case Json::value_t::null:
      return "null";
    case Json::value_t::boolean:
      return value.get<bool>() ? "true" : "false";
    case Json::value_t::number_integer:
    case Json::value_t::number_unsigned:
    case Json::value_t::number_float:
      return "the number " + number_text(value);
    case Json::value_t::string: {
      // Quoted and escaped as JSON writes it; a string from the parser is valid UTF-8, and excerpt() keeps it so.
      const Json cut = excerpt(value.get_ref<const std::string&>());
      return "the string " + cut.dump(-1, ' ', false, Json::error_handler_t::replace);
    }
    case Json::value_t::array:
      return fmt::format("an array of {} values", value.size());
    case Json::value_t::object:
      return fmt::format("an object of {} fields", value.size());
    case Json::value_t::binary:
      return "binary data";
    case Json::value_t::discarded:
      break;
  }
  return "a discarded value";
}

void fail_field(const std::string& where, std::string_view field, std::string_view why) {
  throw Error(fmt::format("{}: field '{}': {}", where, field, why));
}

namespace detail {

ExactInteger exact_integer(const Json& value, const std::string& where, std::string_view field) {
  ExactInteger x;
  if (value.is_number_unsigned()) {
    const std::uint64_t u = value.get<std::uint64_t>();
    x.is_unsigned = u > std::uint64_t(std::numeric_limits<std::int64_t>::max());
    x.u = u;
    x.s = x.is_unsigned ? 0 : std::int64_t(u);
    return x;
  }
  if (value.is_number_integer()) {
    x.s = value.get<std::int64_t>();
    return x;
  }
  if (!value.is_number_float()) wrong_type(value, where, field, "an integer");
  const double d = value.get<double>();
  if (!std::isfinite(d) || d != std::floor(d))
    fail_field(where, field, fmt::format("expected an integer, got {}", d));
  x.inexact = std::abs(d) > kExactDoubleLimit;
  // Whole doubles in [-2^63, 2^64) convert exactly; the bounds are powers of two, so exact as doubles too.
  if (d < -0x1p63 || d >= 0x1p64) {
    x.beyond_64_bits = true;
  } else if (d >= 0x1p63) {
    x.is_unsigned = true;
    x.u = std::uint64_t(d);
  } else {
    x.s = std::int64_t(d);
  }
  return x;
}

void out_of_range(const Json& value, const std::string& where, std::string_view field, const std::string& min,
                  const std::string& max) {
  fail_field(where, field, fmt::format("{} is out of range ({} to {})", number_text(value), min, max));
}

void inexact(const Json& value, const std::string& where, std::string_view field) {
  fail_field(where, field,
             fmt::format("{} is not an exact integer (a floating-point number beyond 2^53; write it without a "
                         "fraction or exponent)",
                         value.get<double>()));
}

}  // namespace detail

double to_double(const Json& value, const std::string& where, std::string_view field, double min, double max) {
  if (!value.is_number()) wrong_type(value, where, field, "a number");
  const double d = value.get<double>();
  if (!std::isfinite(d)) fail_field(where, field, fmt::format("{} is not finite", d));
  if (d < min || d > max) fail_field(where, field, fmt::format("{} is out of range ({} to {})", d, min, max));
  return d;
}

float to_float(const Json& value, const std::string& where, std::string_view field) {
  const double d = to_double(value, where, field);
  if (std::abs(d) > double(FLT_MAX))
    fail_field(where, field, fmt::format("{} is out of the range of a 32-bit float (magnitude at most {})", d,
                                         double(FLT_MAX)));
  return static_cast<float>(d);
}

std::string to_string(const Json& value, const std::string& where, std::string_view field) {
  if (!value.is_string()) wrong_type(value, where, field, "a string");
  return value.get<std::string>();
}

bool to_bool(const Json& value, const std::string& where, std::string_view field) {
  if (!value.is_boolean()) wrong_type(value, where, field, "true or false");
  return value.get<bool>();
}

}  // namespace nvrar::json_input
