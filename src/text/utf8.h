// UTF-8 helpers of the tokenizer: validation, the repair HF's decoder applies (Rust's String::from_utf8_lossy: each
// maximal subpart of an ill-formed sequence, in the sense of the Unicode Standard's chapter 3 "U+FFFD substitution
// of maximal subparts", becomes one U+FFFD), a streaming variant that keeps an incomplete tail for later, Python's
// str.strip() whitespace (Jinja's `trim`), and the GPT-2 byte-level alphabet (each byte shown as a printable
// character: the vocabulary's spelling of bytes).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace nvrar::text::utf8 {

// Offset of the first byte of `s` that does not begin or continue a well-formed UTF-8 sequence; nullopt if none.
std::optional<std::size_t> first_invalid(std::string_view s);

// Appends `bytes` to `out` as UTF-8, each maximal ill-formed subpart replaced by U+FFFD (an incomplete sequence at
// the end included).
void append_lossy(std::string& out, std::string_view bytes);

// The same, but stops before a sequence at the end of `bytes` that is incomplete yet could still become well-formed
// with more bytes; returns the number of bytes consumed (the rest, at most 3 bytes, is for the next call).
std::size_t append_lossy_complete(std::string& out, std::string_view bytes);

// `s` without leading and trailing characters Python's str.isspace() accepts (what Jinja's trim filter removes).
std::string_view trim_python_whitespace(std::string_view s);

// Appends code point cp as UTF-8.
void append_code_point(std::string& out, char32_t cp);

// The GPT-2 byte-level alphabet: byte b is spelled as code point byte_to_code_point()[b] in vocabularies.
const std::array<char32_t, 256>& byte_to_code_point();
// The byte code point cp spells, or -1 when cp is not in the alphabet.
int code_point_to_byte(char32_t cp);

// Decodes the vocabulary spelling `token` (UTF-8) into bytes. When a character is outside the alphabet, HF's
// ByteLevel decoder takes the token's own UTF-8 bytes; so do we (and report it through `all_mapped`).
std::string spelling_to_bytes(std::string_view token, bool* all_mapped = nullptr);
// The inverse: the vocabulary spelling of raw bytes.
std::string bytes_to_spelling(std::string_view bytes);

}  // namespace nvrar::text::utf8
