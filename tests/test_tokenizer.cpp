// Unit tests of the tokenizer and chat format (src/text/) on small tokenizer.json files built here, where the
// expected ids follow from the merge ranks by hand; UTF-8 repair against the Unicode Standard's own example of
// maximal-subpart substitution; the byte-level alphabet against GPT-2's published spellings; errors naming the file
// and field. The comparison with the real Llama-3.1 tokenizer is test_tokenizer_reference.cpp.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "engine_test_support.h"
#include "text/chat.h"
#include "text/tokenizer.h"
#include "text/utf8.h"

namespace {

using nvrar::text::ChatFormat;
using nvrar::text::ChatMessage;
using nvrar::text::StreamDecoder;
using nvrar::text::Tokenizer;
namespace utf8 = nvrar::text::utf8;
using nvrar::engine::test_support::error_of;
using Ids = std::vector<int32_t>;

constexpr std::string_view kLlama3Pattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

// Bytes are ids 0-255 (id = byte value); then ab=256, bc=257, abc=258, aa=259, aaaa=260, xyz=261; added tokens
// 300 <|x|> (special), 301 <|x|>y (not special), 302 <s>, 303 </s> (special, put around the text by the template).
nlohmann::json tiny_file(bool ignore_merges = false) {
  nlohmann::json vocab = nlohmann::json::object();
  for (int b = 0; b < 256; ++b) vocab[utf8::bytes_to_spelling(std::string(1, static_cast<char>(b)))] = b;
  const std::pair<const char*, int> words[] = {{"ab", 256}, {"bc", 257}, {"abc", 258}, {"aa", 259}, {"aaaa", 260},
                                               {"xyz", 261}};
  for (const auto& [w, id] : words) vocab[w] = id;
  nlohmann::json file;
  file["normalizer"] = nullptr;
  file["pre_tokenizer"] = {{"type", "Sequence"},
                           {"pretokenizers",
                            {{{"type", "Split"}, {"pattern", {{"Regex", kLlama3Pattern}}}, {"behavior", "Isolated"},
                              {"invert", false}},
                             {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", false}}}}};
  file["model"] = {{"type", "BPE"}, {"ignore_merges", ignore_merges}, {"vocab", vocab},
                   {"merges", {"b c", "a b", "a bc", "a a", {"aa", "aa"}}}};
  auto added = [](int id, const char* content, bool special) {
    return nlohmann::json{{"id", id}, {"content", content}, {"special", special}, {"single_word", false},
                          {"lstrip", false}, {"rstrip", false}, {"normalized", false}};
  };
  file["added_tokens"] = {added(300, "<|x|>", true), added(301, "<|x|>y", false), added(302, "<s>", true),
                          added(303, "</s>", true)};
  file["post_processor"] = {
      {"type", "TemplateProcessing"},
      {"single", {{{"SpecialToken", {{"id", "<s>"}, {"type_id", 0}}}}, {{"Sequence", {{"id", "A"}, {"type_id", 0}}}},
                  {{"SpecialToken", {{"id", "</s>"}, {"type_id", 0}}}}}},
      {"special_tokens", {{"<s>", {{"id", "<s>"}, {"ids", {302}}}}, {"</s>", {{"id", "</s>"}, {"ids", {303}}}}}}};
  file["decoder"] = {{"type", "ByteLevel"}};
  return file;
}

Tokenizer load(const nlohmann::json& file) { return Tokenizer::from_json_text(file.dump(), "nvrar-llm: tokenizer t.json"); }

TEST(ByteLevelAlphabet, MatchesGpt2Spellings) {
  EXPECT_EQ(utf8::bytes_to_spelling(" "), "\xC4\xA0");     // U+0120 'Ġ'
  EXPECT_EQ(utf8::bytes_to_spelling("\n"), "\xC4\x8A");    // U+010A 'Ċ'
  EXPECT_EQ(utf8::bytes_to_spelling(std::string(1, '\0')), "\xC4\x80");  // U+0100 'Ā'
  EXPECT_EQ(utf8::bytes_to_spelling("\xAD"), "\xC5\x83");  // U+0143 'Ń' (soft hyphen, the last remapped byte)
  EXPECT_EQ(utf8::bytes_to_spelling("a~\xA1\xFF"), "a~\xC2\xA1\xC3\xBF");  // printable Latin-1 stays itself
  for (int b = 0; b < 256; ++b) {
    const std::string byte(1, static_cast<char>(b));
    EXPECT_EQ(utf8::spelling_to_bytes(utf8::bytes_to_spelling(byte)), byte) << b;
  }
}

TEST(Utf8Repair, UnicodeStandardMaximalSubpartExample) {
  // The Unicode Standard, chapter 3 (U+FFFD substitution of maximal subparts): the recommended conversion of
  // 61 F1 80 80 E1 80 C2 62 80 63 80 BF 64 is 0061 FFFD FFFD FFFD 0062 FFFD 0063 FFFD FFFD 0064.
  std::string out;
  utf8::append_lossy(out, "\x61\xF1\x80\x80\xE1\x80\xC2\x62\x80\x63\x80\xBF\x64");
  EXPECT_EQ(out, "a\uFFFD\uFFFD\uFFFDb\uFFFDc\uFFFD\uFFFDd");
  out.clear();
  utf8::append_lossy(out, "\xED\xA0\x80|\xC0\xAF|\xF4\x90\x80\x80|\xF0\x9F\x98");  // surrogate, overlong, > U+10FFFF
  EXPECT_EQ(out, "\uFFFD\uFFFD\uFFFD|\uFFFD\uFFFD|\uFFFD\uFFFD\uFFFD\uFFFD|\uFFFD");
  EXPECT_EQ(utf8::first_invalid("ok \xE2\x82\xAC \xE2\x82"), 7u);
  EXPECT_FALSE(utf8::first_invalid("\xF0\x9F\x98\x80 \xE2\x82\xAC").has_value());
}

TEST(Utf8Repair, PythonWhitespaceTrim) {
  EXPECT_EQ(utf8::trim_python_whitespace(" \t\u3000\x1c hi there \u2029\n\u00a0"), "hi there");
  EXPECT_EQ(utf8::trim_python_whitespace("\u200bx\u200b"), "\u200bx\u200b");  // ZWSP is not whitespace to Python
  EXPECT_EQ(utf8::trim_python_whitespace("   "), "");
}

TEST(Tokenizer, MergesByRank) {
  const Tokenizer tok = load(tiny_file());
  EXPECT_EQ(tok.encode("abc", false), (Ids{258}));        // b c (rank 0) first, then a bc
  EXPECT_EQ(tok.encode("ab", false), (Ids{256}));
  EXPECT_EQ(tok.encode("aaa", false), (Ids{259, 'a'}));   // equal ranks: the leftmost pair first
  EXPECT_EQ(tok.encode("aaaaa", false), (Ids{260, 'a'}));
  EXPECT_EQ(tok.encode("xyz", false), (Ids{'x', 'y', 'z'}));  // no merge reaches xyz
  EXPECT_EQ(tok.encode("ab cab", false), (Ids{256, ' ', 'c', 256}));  // pieces: "ab", " cab" (space then letters)
  EXPECT_EQ(tok.vocab_size(), 304);
}

TEST(Tokenizer, LongPiecesTakeTheHeapPathWithTheSameResult) {
  const Tokenizer tok = load(tiny_file());
  std::string text;
  Ids expected;
  for (int i = 0; i < 40; ++i) {
    text += "abc";
    expected.push_back(258);
  }
  text += "aaa";
  expected.insert(expected.end(), {259, 'a'});
  EXPECT_EQ(tok.encode(text, false), expected);
  EXPECT_EQ(tok.encode(text, false), expected);  // again, from the cache
}

TEST(Tokenizer, IgnoreMergesTakesWholeVocabularyPieces) {
  const Tokenizer tok = load(tiny_file(true));
  EXPECT_EQ(tok.encode("xyz", false), (Ids{261}));
  EXPECT_EQ(tok.encode("xyzz", false), (Ids{'x', 'y', 'z', 'z'}));
}

TEST(Tokenizer, AddedTokensLeftmostLongestAndTemplate) {
  const Tokenizer tok = load(tiny_file());
  EXPECT_EQ(tok.encode("a<|x|>yb<|x|>", false), (Ids{'a', 301, 'b', 300}));
  EXPECT_EQ(tok.encode("ab", true), (Ids{302, 256, 303}));
  EXPECT_EQ(tok.encode("", true), (Ids{302, 303}));
  const Ids ids{302, 'a', 301, 300, 303};
  EXPECT_EQ(tok.decode(ids), "<s>a<|x|>y<|x|></s>");
  EXPECT_EQ(tok.decode(ids, true), "a<|x|>y");  // 301 is not special
  EXPECT_EQ(tok.token_id("<|x|>y"), 301);
  EXPECT_EQ(tok.token_id("\xC4\xA0"), ' ');  // the vocabulary's spelling of a space
  EXPECT_FALSE(tok.token_id(" ").has_value());
}

TEST(Tokenizer, StreamDecoderNeverSplitsACharacter) {
  const Tokenizer tok = load(tiny_file());
  StreamDecoder stream(tok);
  EXPECT_EQ(stream.push(0xC3), "");
  EXPECT_EQ(stream.push(0xA9), "\u00e9");
  EXPECT_EQ(stream.push(0xF0), "");
  EXPECT_EQ(stream.push(0x9F), "");
  EXPECT_EQ(stream.push(0x98), "");
  EXPECT_EQ(stream.push(0x80), "\U0001F600");
  EXPECT_EQ(stream.push(0xFF), "\uFFFD");  // never valid: replaced at once
  EXPECT_EQ(stream.push(0xE2), "");
  EXPECT_EQ(stream.push('a'), "\uFFFDa");  // E2 cannot be completed by 'a'
  EXPECT_EQ(stream.push(0xF0), "");
  EXPECT_EQ(stream.push(0x9F), "");
  EXPECT_EQ(stream.finish(), "\uFFFD");     // incomplete at the end: as decode() repairs it
  EXPECT_EQ(stream.finish(), "");
  StreamDecoder skipping(tok, true);
  EXPECT_EQ(skipping.push(302), "");
  EXPECT_EQ(skipping.push(258), "abc");
}

TEST(Tokenizer, ErrorsNameTheFileAndTheField) {
  nlohmann::json no_byte = tiny_file();
  no_byte["model"]["vocab"].erase("A");
  EXPECT_HAS(error_of([&] { load(no_byte); }), "nvrar-llm: tokenizer t.json: field 'model.vocab': no token for byte 65");
  nlohmann::json normalizer = tiny_file();
  normalizer["normalizer"] = {{"type", "NFC"}};
  EXPECT_HAS(error_of([&] { load(normalizer); }), "field 'normalizer': is set; only null is supported");
  nlohmann::json bad_merge = tiny_file();
  bad_merge["model"]["merges"][2] = "a q";
  EXPECT_HAS(error_of([&] { load(bad_merge); }), "field 'model.merges[2]'");
  nlohmann::json wordpiece = tiny_file();
  wordpiece["model"]["type"] = "WordPiece";
  EXPECT_HAS(error_of([&] { load(wordpiece); }), "'WordPiece' is not supported (byte-level BPE only)");
  nlohmann::json bad_regex = tiny_file();
  bad_regex["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"] = "(unclosed";
  EXPECT_HAS(error_of([&] { load(bad_regex); }), "PCRE2 cannot compile the pattern");
  nlohmann::json lstrip = tiny_file();
  lstrip["added_tokens"][1]["lstrip"] = true;
  EXPECT_HAS(error_of([&] { load(lstrip); }), "field 'added_tokens[1].lstrip': true is not supported");
  EXPECT_HAS(error_of([] { Tokenizer::from_file("/nonexistent/tokenizer.json"); }),
             "nvrar-llm: tokenizer /nonexistent/tokenizer.json: cannot read the file");
  const Tokenizer tok = load(tiny_file());
  EXPECT_HAS(error_of([&] { tok.encode("ok\xC3("); }), "the text is not valid UTF-8 (byte 2 of 4)");
  const Ids hole{270};
  EXPECT_HAS(error_of([&] { tok.decode(hole); }), "decode: id 270 is no token of t.json (ids 0 to 303)");
}

// A template with the Llama-3.1 Instruct template's defining pieces (its system preamble and per-message line).
const std::string kLlama31Like =
    "{{- bos_token }}{%- if not date_string is defined %}{%- set date_string = \"26 Jul 2024\" %}{%- endif %}"
    "{{- \"<|start_header_id|>system<|end_header_id|>\\n\\n\" }}{{- \"Cutting Knowledge Date: December 2023\\n\" }}"
    "{%- for message in messages %}{{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'+ "
    "message['content'] | trim + '<|eot_id|>' }}{%- endfor %}";

TEST(ChatFormat, Llama31FamilyPutsTheSystemTurnFirst) {
  const ChatFormat chat = ChatFormat::from_template(kLlama31Like, "<|begin_of_text|>", "test");
  EXPECT_EQ(chat.family(), ChatFormat::Family::llama3_1);
  EXPECT_EQ(chat.date_string(), "26 Jul 2024");
  const std::string preamble =
      "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: December 2023\n"
      "Today Date: 26 Jul 2024\n\n";
  EXPECT_EQ(chat.render({{"user", " Hi \n"}}, true),
            preamble + "<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
                       "<|start_header_id|>assistant<|end_header_id|>\n\n");
  EXPECT_EQ(chat.render({{"system", "Be brief."}, {"user", "Hi"}}, false),
            preamble + "Be brief.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>");
  EXPECT_HAS(error_of([&] { chat.render({{"tool", "{}"}}, true); }), "tool messages are not supported");
}

TEST(ChatFormat, OtherTemplatesAreRefused) {
  const std::string chatml =
      "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>'}}"
      "{% endfor %}";
  EXPECT_HAS(error_of([&] { ChatFormat::from_template(chatml, "", "nvrar-llm: m/tokenizer_config.json"); }),
             "nvrar-llm: m/tokenizer_config.json: field 'chat_template': not a Llama-3 template");
  EXPECT_HAS(error_of([] { ChatFormat::from_model_dir("/nonexistent"); }),
             "nvrar-llm: /nonexistent/tokenizer_config.json: cannot read the file");
}

}  // namespace
