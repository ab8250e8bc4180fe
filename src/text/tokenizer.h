// Byte-level BPE tokenizer of Hugging Face tokenizer.json files (Llama-3, 3.1, 3.2, 3.3; GPT-2-style byte-level BPE
// in general), with the semantics of HF `tokenizers`:
//  - encode: added tokens (special or not) found in the text first (leftmost, longest), each becoming its id; the
//    rest pre-tokenized as the file says (Split with a regex run by PCRE2 with Unicode properties, then ByteLevel),
//    each piece's bytes merged by rank (a piece that is itself in the vocabulary is taken whole when the model says
//    ignore_merges); add_special_tokens adds what the TemplateProcessing post-processor adds (Llama-3: BOS).
//  - decode: each id's bytes (the ByteLevel decoder's byte mapping undone), joined, then turned into UTF-8 the way
//    Rust's String::from_utf8_lossy does (each maximal invalid subsequence becomes U+FFFD), as HF decodes.
//  - StreamDecoder: the same text in pieces as ids arrive, a multi-byte character never split.
// Files of other kinds (normalizers, WordPiece/Unigram models, byte fallback, other decoders) are refused at load
// with an error naming the file and the field. Encode refuses text that is not valid UTF-8 (HF takes only valid
// strings). Design and measurements: docs/text.md.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace nvrar::text {

struct TokenizerData;  // the loaded file (tokenizer.cpp)

class Tokenizer {
 public:
  // Errors (nvrar::Error) name the file and the field: "nvrar-llm: tokenizer /m/tokenizer.json: field
  // 'model.type': 'WordPiece' is not supported (byte-level BPE only)".
  static Tokenizer from_file(const std::filesystem::path& tokenizer_json);
  // The same from the file's text; `where` names it in errors.
  static Tokenizer from_json_text(std::string_view json_text, const std::string& where);

  // HF semantics: add_special_tokens = the post_processor's BOS etc.; special/added token strings in the text are
  // recognised as their ids. Error for text that is not valid UTF-8 (naming the byte offset).
  std::vector<int32_t> encode(std::string_view text, bool add_special_tokens = true) const;
  // Error for an id outside [0, vocab_size()) or a hole in the id space (HF silently drops those; we refuse).
  std::string decode(std::span<const int32_t> ids, bool skip_special_tokens = false) const;
  std::optional<int32_t> token_id(std::string_view token) const;  // vocab (file's spelling, e.g. "Ġthe") or added
  int64_t vocab_size() const;                                      // largest id + 1
  bool is_special(int32_t id) const;                               // an added token marked special
  // The bytes id stands for (before UTF-8 repair); Error for an id that is no token.
  std::string_view token_bytes(int32_t id) const;

  Tokenizer(Tokenizer&&) noexcept;
  Tokenizer& operator=(Tokenizer&&) noexcept;
  ~Tokenizer();

 private:
  explicit Tokenizer(std::unique_ptr<TokenizerData> data);
  std::unique_ptr<TokenizerData> data_;
};

// Text as tokens arrive; never splits a UTF-8 character. The concatenation of every push() and finish() equals
// decode(all ids, skip_special_tokens). An invalid byte sequence is replaced (U+FFFD) as soon as no later byte can
// complete it; an incomplete one waits for the next id, or for finish().
class StreamDecoder {
 public:
  explicit StreamDecoder(const Tokenizer& tok, bool skip_special_tokens = false);
  std::string push(int32_t id);  // text that became complete
  std::string finish();          // the rest (incomplete bytes as HF decodes them); the decoder is then empty again

 private:
  const Tokenizer* tok_;
  bool skip_special_;
  std::string pending_;  // bytes of a character not yet complete (at most 3)
};

}  // namespace nvrar::text
