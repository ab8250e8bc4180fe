// Fuzz target: an HF tokenizer.json (text/tokenizer.h, Tokenizer::from_json_text) as text.
//
// A file the loader accepts is one nvrar-llm encodes and decodes with, so that must hold too: encoding a few texts
// (ASCII, multi-byte UTF-8, special-token strings, whitespace runs) gives ids below vocab_size() or an nvrar::Error,
// decoding them never fails, and the stream decoder's pieces joined equal decode().
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "fuzz_check.h"
#include "text/tokenizer.h"

namespace {
constexpr const char* kOrigin = "fuzz/tokenizer.json";
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::optional<nvrar::text::Tokenizer> tokenizer;
  try {
    tokenizer.emplace(nvrar::text::Tokenizer::from_json_text(nvrar::fuzz::as_text(data, size), kOrigin));
  } catch (const nvrar::Error& e) {
    nvrar::fuzz::expect_names_origin(e, kOrigin);
    return 0;
  }
  const char* texts[] = {"hello world", "Hello, World! 12345 it's", "\xE4\xBD\xA0\xE5\xA5\xBD \xF0\x9F\x98\x80",
                         "<|begin_of_text|>x<|eot_id|>", "  \n\n\t  a", ""};
  for (const char* text : texts) {
    for (const bool special : {true, false}) {
      std::vector<int32_t> ids;
      try {
        ids = tokenizer->encode(text, special);
      } catch (const nvrar::Error& e) {
        nvrar::fuzz::expect_names_origin(e, kOrigin);
        continue;
      }
      for (const int32_t id : ids)
        FUZZ_EXPECT(id >= 0 && id < tokenizer->vocab_size(),
                    "encode gave id " + std::to_string(id) + " of a vocabulary of " +
                        std::to_string(tokenizer->vocab_size()));
      std::string whole;
      try {
        whole = tokenizer->decode(ids);
      } catch (const nvrar::Error& e) {
        FUZZ_EXPECT(false, std::string("decode of encode's ids failed: ") + e.what());
      }
      nvrar::text::StreamDecoder stream(*tokenizer);
      std::string pieces;
      for (const int32_t id : ids) pieces += stream.push(id);
      pieces += stream.finish();
      FUZZ_EXPECT(pieces == whole, "the stream decoder's pieces differ from decode()");
    }
  }
  return 0;
}
