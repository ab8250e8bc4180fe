// UTF-8 validation and repair, Python whitespace, and the GPT-2 byte-level alphabet (utf8.h).
//
// Well-formed sequences (Unicode Standard, table 3-7): 00-7F; C2-DF 80-BF; E0 A0-BF 80-BF; E1-EC 80-BF 80-BF;
// ED 80-9F 80-BF; EE-EF 80-BF 80-BF; F0 90-BF 80-BF 80-BF; F1-F3 80-BF 80-BF 80-BF; F4 80-8F 80-BF 80-BF.
// A lead byte fixes the length and the range of the second byte; later bytes are always 80-BF.
#include "text/utf8.h"

namespace nvrar::text::utf8 {
namespace {

constexpr std::string_view kReplacement = "\xEF\xBF\xBD";  // U+FFFD

struct Lead {
  int length = 0;  // 0: not a lead byte
  unsigned char second_min = 0x80, second_max = 0xBF;
};

Lead lead_of(unsigned char b) {
  if (b < 0x80) return {1};
  if (b >= 0xC2 && b <= 0xDF) return {2};
  if (b == 0xE0) return {3, 0xA0, 0xBF};
  if (b == 0xED) return {3, 0x80, 0x9F};
  if (b >= 0xE1 && b <= 0xEF) return {3};
  if (b == 0xF0) return {4, 0x90, 0xBF};
  if (b >= 0xF1 && b <= 0xF3) return {4};
  if (b == 0xF4) return {4, 0x80, 0x8F};
  return {0};
}

enum class Step { valid, invalid, incomplete };

// The sequence at s[i]: how many bytes it spans (valid), or the maximal subpart to replace (invalid), or that the
// input ends inside a sequence that is well-formed so far (incomplete; `length` = bytes left).
Step step_at(std::string_view s, std::size_t i, std::size_t& length) {
  const Lead lead = lead_of(static_cast<unsigned char>(s[i]));
  if (lead.length == 0) {
    length = 1;
    return Step::invalid;
  }
  for (int k = 1; k < lead.length; ++k) {
    if (i + k >= s.size()) {
      length = s.size() - i;
      return Step::incomplete;
    }
    const auto c = static_cast<unsigned char>(s[i + k]);
    const unsigned char lo = k == 1 ? lead.second_min : 0x80, hi = k == 1 ? lead.second_max : 0xBF;
    if (c < lo || c > hi) {
      length = k;
      return Step::invalid;
    }
  }
  length = lead.length;
  return Step::valid;
}

std::size_t append_lossy_impl(std::string& out, std::string_view s, bool keep_incomplete_tail) {
  std::size_t i = 0;
  while (i < s.size()) {
    // ASCII runs first: most text is ASCII.
    std::size_t j = i;
    while (j < s.size() && static_cast<unsigned char>(s[j]) < 0x80) ++j;
    out.append(s.data() + i, j - i);
    i = j;
    if (i == s.size()) break;
    std::size_t length = 0;
    switch (step_at(s, i, length)) {
      case Step::valid: out.append(s.data() + i, length); break;
      case Step::invalid: out.append(kReplacement); break;
      case Step::incomplete:
        if (keep_incomplete_tail) return i;
        out.append(kReplacement);
        break;
    }
    i += length;
  }
  return i;
}

}  // namespace

std::optional<std::size_t> first_invalid(std::string_view s) {
  std::size_t i = 0;
  while (i < s.size()) {
    if (static_cast<unsigned char>(s[i]) < 0x80) {
      ++i;
      continue;
    }
    std::size_t length = 0;
    if (step_at(s, i, length) != Step::valid) return i;
    i += length;
  }
  return std::nullopt;
}

void append_lossy(std::string& out, std::string_view bytes) { append_lossy_impl(out, bytes, false); }

std::size_t append_lossy_complete(std::string& out, std::string_view bytes) {
  return append_lossy_impl(out, bytes, true);
}

void append_code_point(std::string& out, char32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

namespace {

// Decodes one code point of well-formed UTF-8 at s[i], advancing i; U+FFFD (one byte consumed) where ill-formed.
char32_t next_code_point(std::string_view s, std::size_t& i) {
  std::size_t length = 0;
  if (step_at(s, i, length) != Step::valid) {
    i += length;
    return 0xFFFD;
  }
  const auto b0 = static_cast<unsigned char>(s[i]);
  char32_t cp = length == 1 ? b0 : length == 2 ? (b0 & 0x1F) : length == 3 ? (b0 & 0x0F) : (b0 & 0x07);
  for (std::size_t k = 1; k < length; ++k) cp = (cp << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3F);
  i += length;
  return cp;
}

// Python's str.isspace(): Unicode White_Space plus the information separators 1C-1F (bidi classes B, S, WS).
bool is_python_space(char32_t cp) {
  return (cp >= 0x09 && cp <= 0x0D) || (cp >= 0x1C && cp <= 0x20) || cp == 0x85 || cp == 0xA0 || cp == 0x1680 ||
         (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F || cp == 0x205F ||
         cp == 0x3000;
}

}  // namespace

std::string_view trim_python_whitespace(std::string_view s) {
  std::size_t begin = 0;
  while (begin < s.size()) {
    std::size_t next = begin;
    if (!is_python_space(next_code_point(s, next))) break;
    begin = next;
  }
  std::size_t end = s.size();
  while (end > begin) {
    std::size_t start = end - 1;  // back to the lead byte of the last character
    while (start > begin && (static_cast<unsigned char>(s[start]) & 0xC0) == 0x80 && end - start < 4) --start;
    std::size_t probe = start;
    const char32_t cp = next_code_point(s, probe);
    if (probe != end || !is_python_space(cp)) break;
    end = start;
  }
  return s.substr(begin, end - begin);
}

const std::array<char32_t, 256>& byte_to_code_point() {
  // GPT-2's alphabet: printable Latin-1 bytes (! to ~, ¡ to ¬, ® to ÿ) stand for themselves; the other 68 bytes, in
  // increasing order, take the code points 256, 257, ... so that no byte is spelled as whitespace or a control.
  static const std::array<char32_t, 256> table = [] {
    std::array<char32_t, 256> t{};
    char32_t next_extra = 256;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
      t[b] = printable ? static_cast<char32_t>(b) : next_extra++;
    }
    return t;
  }();
  return table;
}

int code_point_to_byte(char32_t cp) {
  static const std::array<int16_t, 512> inverse = [] {
    std::array<int16_t, 512> inv{};
    inv.fill(-1);
    const auto& forward = byte_to_code_point();
    for (int b = 0; b < 256; ++b) inv[forward[b]] = static_cast<int16_t>(b);
    return inv;
  }();
  return cp < inverse.size() ? inverse[cp] : -1;
}

std::string spelling_to_bytes(std::string_view token, bool* all_mapped) {
  std::string bytes;
  bytes.reserve(token.size());
  std::size_t i = 0;
  while (i < token.size()) {
    const int b = code_point_to_byte(next_code_point(token, i));
    if (b < 0) {
      if (all_mapped) *all_mapped = false;
      return std::string(token);
    }
    bytes += static_cast<char>(b);
  }
  if (all_mapped) *all_mapped = true;
  return bytes;
}

std::string bytes_to_spelling(std::string_view bytes) {
  std::string spelling;
  spelling.reserve(bytes.size() * 2);
  for (const char c : bytes) append_code_point(spelling, byte_to_code_point()[static_cast<unsigned char>(c)]);
  return spelling;
}

}  // namespace nvrar::text::utf8
