// Checked reading of user-supplied JSON (src/core/json_input.h), the layer under every file parser: the depth
// limit, numbers beyond a double, short error messages for huge input, and the one checked conversion of a number
// (type, integer-ness, range, finiteness), each error checked to name the file and the field.
#include <gtest/gtest.h>

#include <cstdint>
#include <string>

#include "core/json_input.h"
#include "engine_test_support.h"
#include "nvrar/types.h"

namespace nvrar::json_input {
namespace {

using engine::test_support::error_of;  // and EXPECT_HAS

constexpr const char* kWhere = "tool: /in/f.json";

std::string parse_error(const std::string& text) {
  return error_of([&] { parse(text, kWhere); });
}

std::string nested(int levels, const std::string& open = "[", const std::string& close = "]") {
  std::string s;
  for (int i = 0; i < levels; ++i) s += open;
  s += "1";
  for (int i = 0; i < levels; ++i) s += close;
  return s;
}

TEST(JsonInput, NestingUpToTheLimitParses) {
  EXPECT_NO_THROW(parse(nested(kMaxDepth), kWhere));
  std::string objects;
  for (int i = 0; i < kMaxDepth; ++i) objects += "{\"a\":";
  objects += "1" + std::string(kMaxDepth, '}');
  EXPECT_NO_THROW(parse(objects, kWhere));
}

TEST(JsonInput, DeeperNestingIsRefusedNamingTheFile) {
  EXPECT_EQ(parse_error(nested(kMaxDepth + 1)), "tool: /in/f.json: JSON nested deeper than 64 levels");
  // The issue's case: about 200 KB of '[' (unterminated, as a fuzzer writes it) and the same closed.
  EXPECT_EQ(parse_error(std::string(200'000, '[')), "tool: /in/f.json: JSON nested deeper than 64 levels");
  EXPECT_EQ(parse_error(nested(100'000)), "tool: /in/f.json: JSON nested deeper than 64 levels");
  EXPECT_EQ(parse_error("{\"a\": " + nested(100'000, "{\"b\":", "}") + "}"),
            "tool: /in/f.json: JSON nested deeper than 64 levels");
}

TEST(JsonInput, NumbersBeyondADoubleAreRefusedNamingTheFile) {
  for (const char* big : {"1e999", "1e400", "-1e400", "123456789e999"}) {
    const std::string m = parse_error(std::string("{\"x\": [1, ") + big + "]}");
    EXPECT_HAS(m, "tool: /in/f.json: JSON number '");
    EXPECT_HAS(m, big);
    EXPECT_HAS(m, "out of the range of a double");
  }
  // A number of 100,000 digits is quoted in part.
  const std::string m = parse_error("[1" + std::string(100'000, '0') + "]");
  EXPECT_HAS(m, "out of the range of a double");
  EXPECT_LT(m.size(), 200u) << m;
  // Small but not zero, and huge integers that still fit a double, are fine.
  EXPECT_EQ(parse("[1e-400]", kWhere)[0].get<double>(), 0.0);
  EXPECT_NO_THROW(parse("[123456789012345678901234567890]", kWhere));
}

TEST(JsonInput, SyntaxErrorsAreShortAndNameTheFile) {
  EXPECT_HAS(parse_error("{\"a\": "), "tool: /in/f.json: not valid JSON (");
  // nlohmann quotes the token it stopped at: an unterminated string of 1 MB is cut.
  const std::string m = parse_error("\"" + std::string(1'000'000, 'x'));
  EXPECT_HAS(m, "tool: /in/f.json: not valid JSON (");
  EXPECT_LT(m.size(), 300u);
  EXPECT_HAS(error_of([] { parse("{", "r.json", "not JSON"); }), "r.json: not JSON (");
}

TEST(JsonInput, DescribeIsShort) {
  EXPECT_EQ(describe(Json()), "null");
  EXPECT_EQ(describe(Json(true)), "true");
  EXPECT_EQ(describe(Json(3)), "the number 3");
  EXPECT_EQ(describe(Json(2.5)), "the number 2.5");
  EXPECT_EQ(describe(Json(std::uint64_t(1) << 63)), "the number 9223372036854775808");
  EXPECT_EQ(describe(Json("ab\"c")), R"(the string "ab\"c")");
  EXPECT_EQ(describe(Json::parse("[1, [2], 3]")), "an array of 3 values");
  EXPECT_EQ(describe(Json::parse(R"({"a": 1, "b": 2})")), "an object of 2 fields");
  // A long string is cut; a deeply nested value is described without walking it.
  const std::string cut = describe(Json(std::string(100'000, 'y')));
  EXPECT_LT(cut.size(), kExcerptChars + 20);
  EXPECT_HAS(cut, "...");
  Json deep = Json::array();
  for (int i = 0; i < 100'000; ++i) deep = Json::array({std::move(deep)});
  EXPECT_EQ(describe(deep), "an array of 1 values");
}

TEST(JsonInput, ExcerptKeepsUtf8Whole) {
  EXPECT_EQ(excerpt("short"), "short");
  EXPECT_EQ(excerpt("abcdef", 3), "abc...");
  // "é" is two bytes (C3 A9): a cut inside it backs up before it.
  EXPECT_EQ(excerpt("ab\xC3\xA9z", 3), "ab...");
}

TEST(JsonInput, IntegersAreChecked) {
  const Json j = Json::parse(R"({"ok": 42, "whole": 8192.0, "neg": -3, "half": 2.5, "str": "8", "big": 1e30,
                                "u64": 18446744073709551615, "huge_whole": 1e17, "arr": [1]})");
  EXPECT_EQ(to_integer<int>(j["ok"], kWhere, "ok"), 42);
  EXPECT_EQ(to_integer<std::int64_t>(j["whole"], kWhere, "whole"), 8192);  // Python's 8192.0
  EXPECT_EQ(to_integer<int>(j["neg"], kWhere, "neg"), -3);
  EXPECT_EQ(to_integer<std::uint64_t>(j["u64"], kWhere, "u64"), UINT64_MAX);

  EXPECT_EQ(error_of([&] { to_integer<int>(j["str"], kWhere, "str"); }),
            R"(tool: /in/f.json: field 'str': wrong type: expected an integer, got the string "8")");
  EXPECT_EQ(error_of([&] { to_integer<int>(j["arr"], kWhere, "arr"); }),
            "tool: /in/f.json: field 'arr': wrong type: expected an integer, got an array of 1 values");
  EXPECT_EQ(error_of([&] { to_integer<int>(j["half"], kWhere, "half"); }),
            "tool: /in/f.json: field 'half': expected an integer, got 2.5");
  // Float-to-int overflow (undefined behaviour in a plain cast) is a range error.
  EXPECT_EQ(error_of([&] { to_integer<std::int64_t>(j["big"], kWhere, "big"); }),
            "tool: /in/f.json: field 'big': 1e+30 is out of range (-9223372036854775808 to 9223372036854775807)");
  EXPECT_HAS(error_of([&] { to_integer<int>(j["big"], kWhere, "big"); }), "1e+30 is out of range");
  EXPECT_HAS(error_of([&] { to_integer<std::int64_t>(j["u64"], kWhere, "u64"); }),
             "field 'u64': 18446744073709551615 is out of range");
  EXPECT_HAS(error_of([&] { to_integer<int>(j["u64"], kWhere, "u64"); }), "out of range");
  EXPECT_HAS(error_of([&] { to_integer<std::uint32_t>(j["neg"], kWhere, "neg"); }),
             "field 'neg': -3 is out of range (0 to 4294967295)");
  EXPECT_HAS(error_of([&] { to_integer<int>(j["ok"], kWhere, "ok", 1, 10); }), "field 'ok': 42 is out of range (1 to 10)");
  // A whole float beyond 2^53 is in range for int64 but not exactly what the text says.
  EXPECT_HAS(error_of([&] { to_integer<std::int64_t>(j["huge_whole"], kWhere, "huge_whole"); }),
             "field 'huge_whole': 1e+17 is not an exact integer");
  // Whole doubles at the 64-bit edges (2^63 and 2^64 are exact doubles; INT64_MAX and UINT64_MAX are not).
  EXPECT_HAS(error_of([&] { to_integer<std::int64_t>(Json(0x1p63), kWhere, "x"); }), "out of range");
  EXPECT_HAS(error_of([&] { to_integer<std::uint64_t>(Json(0x1p64), kWhere, "x"); }), "out of range");
  EXPECT_HAS(error_of([&] { to_integer<std::uint64_t>(Json(0x1p63), kWhere, "x"); }), "not an exact integer");
  EXPECT_HAS(error_of([&] { to_integer<std::int64_t>(Json(-0x1p64), kWhere, "x"); }), "out of range");
  // int32 edges.
  EXPECT_EQ(to_integer<std::int32_t>(Json(2147483647), kWhere, "x"), 2147483647);
  EXPECT_HAS(error_of([&] { to_integer<std::int32_t>(Json(2147483648LL), kWhere, "x"); }), "out of range");
  EXPECT_HAS(error_of([&] { to_integer<std::int32_t>(Json(-2147483649LL), kWhere, "x"); }), "out of range");
}

TEST(JsonInput, DoublesFloatsStringsAndBooleansAreChecked) {
  EXPECT_EQ(to_double(Json(3), kWhere, "d"), 3.0);
  EXPECT_EQ(error_of([&] { to_double(Json("big"), kWhere, "d"); }),
            R"(tool: /in/f.json: field 'd': wrong type: expected a number, got the string "big")");
  EXPECT_HAS(error_of([&] { to_double(Json(-1.5), kWhere, "d", 0); }), "field 'd': -1.5 is out of range (0 to");
  EXPECT_HAS(error_of([&] { to_double(Json(std::numeric_limits<double>::infinity()), kWhere, "d"); }),
             "field 'd': inf is not finite");
  EXPECT_EQ(to_float(Json(1.5), kWhere, "f"), 1.5f);
  EXPECT_HAS(error_of([&] { to_float(Json(1e39), kWhere, "f"); }), "field 'f': 1e+39 is out of the range of a 32-bit float");
  EXPECT_EQ(to_string(Json("s"), kWhere, "s"), "s");
  EXPECT_HAS(error_of([&] { to_string(Json(3), kWhere, "s"); }), "field 's': wrong type: expected a string, got the number 3");
  EXPECT_TRUE(to_bool(Json(true), kWhere, "b"));
  EXPECT_HAS(error_of([&] { to_bool(Json(1), kWhere, "b"); }), "field 'b': wrong type: expected true or false");
}

}  // namespace
}  // namespace nvrar::json_input
