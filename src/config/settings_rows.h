// The settings table's rows as the two files that walk them see them (internal to src/config): settings.cpp declares
// the table and reads the environment against it, settings_docs.cpp renders it (docs/settings.md, nvrar-settings,
// the NVRAR_DEBUG print).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <fmt/format.h>

#include "config/settings.h"

namespace nvrar::config::detail {

enum class Type { kInteger, kSize, kFlag, kChoice, kString, kPath };

inline const char* type_name(Type t) {
  switch (t) {
    case Type::kInteger:
      return "integer";
    case Type::kSize:
      return "size";
    case Type::kFlag:
      return "flag";
    case Type::kChoice:
      return "choice";
    case Type::kString:
      return "string";
    case Type::kPath:
      return "path";
  }
  return "?";
}

inline constexpr const char* kCollectives = "collectives";
inline constexpr const char* kEngine = "engine";

struct Row {
  const char* name;
  Type type;
  const char* default_text;  // "" for an unset string, path or choice
  // kInteger and kSize: the accepted range, and a step the value must be a multiple of (1: any). zero_too: 0 is
  // also taken, outside [min, max] (it means "pick for me").
  int64_t min = 0;
  int64_t max = 0;
  int64_t multiple = 1;
  bool zero_too = false;
  const char* unit = "";  // kInteger: what the number counts, for the accepted text
  // kChoice: the documented values; `problem`, where set, decides instead of membership and says why a value is
  // refused ("" = accepted; e.g. older spellings, or NVRAR_LLM_GEMM's list form).
  std::vector<std::string> choices = {};
  std::string (*problem)(std::string_view) = nullptr;
  const char* choice_note = "";  // appended to the list of choices in the accepted text
  const char* help = "";
  const char* scope = kCollectives;
  int64_t Settings::*number = nullptr;  // kInteger, kSize, kFlag
  std::string Settings::*text = nullptr;  // kChoice, kString, kPath
  std::string accepted = {};  // filled by rows() from the fields above
};

inline constexpr int64_t kKiB = int64_t{1} << 10;
inline constexpr int64_t kMiB = int64_t{1} << 20;
inline constexpr int64_t kGiB = int64_t{1} << 30;

// A byte count in the form a user writes it: the largest of G, M, K that divides it exactly, else plain bytes.
inline std::string format_size(int64_t bytes) {
  if (bytes != 0 && bytes % kGiB == 0) return fmt::format("{}G", bytes / kGiB);
  if (bytes != 0 && bytes % kMiB == 0) return fmt::format("{}M", bytes / kMiB);
  if (bytes != 0 && bytes % kKiB == 0) return fmt::format("{}K", bytes / kKiB);
  return fmt::format("{}", bytes);
}

// Every variable, in documentation order (settings.cpp).
const std::vector<Row>& rows();
// Every member at its default (settings.cpp).
const Settings& defaults();

}  // namespace nvrar::config::detail
