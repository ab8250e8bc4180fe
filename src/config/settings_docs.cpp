// The settings table rendered (settings.h): SettingInfo rows, docs/settings.md, the values in force, the NVRAR_DEBUG
// prints. The table itself and the reading of the environment are settings.cpp's.
#include <cstdio>
#include <mutex>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "config/settings.h"
#include "config/settings_rows.h"

namespace nvrar::config {

using detail::defaults;
using detail::format_size;
using detail::kCollectives;
using detail::kEngine;
using detail::Row;
using detail::rows;
using detail::Type;
using detail::type_name;

namespace {

std::string value_text(const Row& r, const Settings& s) {
  switch (r.type) {
    case Type::kSize:
      return format_size(s.*r.number);
    case Type::kInteger:
    case Type::kFlag:
      return fmt::format("{}", s.*r.number);
    case Type::kChoice:
    case Type::kString:
    case Type::kPath:
      return s.*r.text;
  }
  return "";
}

bool is_default(const Row& r, const Settings& s) {
  return r.number != nullptr ? s.*r.number == defaults().*r.number : s.*r.text == defaults().*r.text;
}

}  // namespace

const std::vector<SettingInfo>& setting_table() {
  static const std::vector<SettingInfo> table = [] {
    std::vector<SettingInfo> t;
    for (const Row& r : rows())
      t.push_back(SettingInfo{r.name, type_name(r.type), r.default_text, r.accepted.c_str(), r.help, r.scope});
    return t;
  }();
  return table;
}

std::string settings_markdown() {
  std::string md =
      "# NVRAR settings\n"
      "\n"
      "<!-- Generated from the table in src/config/settings.cpp by `nvrar-settings --markdown > docs/settings.md`;\n"
      "     edit the table, not this file (tests/test_settings.cpp checks that the two agree). -->\n"
      "\n"
      "Every environment variable NVRAR reads. Each is read once per process, when NVRAR first needs a setting;\n"
      "an empty value counts as unset (the default). A value that does not parse or lies outside its range is an\n"
      "error naming the variable, the value and the accepted form: NVRAR never falls back to a default in silence.\n"
      "`nvrar-settings` prints the values in force; with `NVRAR_DEBUG=1` every process prints them at setup.\n"
      "\n"
      "Types: *integer* (decimal digits), *size* (a byte count: digits, optionally followed by K, M or G for KiB,\n"
      "MiB, GiB, e.g. `64K`, `1M`), *flag* (`0` or `1`), *choice* (one of a list), *string*, *path*.\n";
  const struct {
    const char* scope;
    const char* title;
  } sections[] = {{kCollectives, "All-reduce library"}, {kEngine, "Inference engine (nvrar-llm)"}};
  for (const auto& section : sections) {
    md += fmt::format("\n## {}\n\n", section.title);
    md += "| variable | type | default | accepted | meaning |\n";
    md += "|---|---|---|---|---|\n";
    for (const Row& r : rows()) {
      if (std::string(r.scope) != section.scope) continue;
      const std::string default_text = *r.default_text == '\0' ? "unset" : fmt::format("`{}`", r.default_text);
      md += fmt::format("| `{}` | {} | {} | {} | {} |\n", r.name, type_name(r.type), default_text, r.accepted, r.help);
    }
  }
  return md;
}

std::string describe_settings(const Settings& s) {
  std::string out;
  for (const Row& r : rows())
    out += fmt::format("{}={} ({})\n", r.name, value_text(r, s), is_default(r, s) ? "default" : "environment");
  return out;
}

void print_settings_if_debug(int rank) {
  static std::once_flag printed;
  if (settings().debug == 0) return;
  std::call_once(printed, [&] {
    std::string prefixed;
    const std::string lines = describe_settings(settings());
    for (std::size_t begin = 0, end; begin < lines.size(); begin = end + 1) {
      end = lines.find('\n', begin);
      if (end == std::string::npos) end = lines.size();
      prefixed += fmt::format("nvrar: rank {} setting: {}\n", rank, lines.substr(begin, end - begin));
    }
    // One write, so the lines of concurrent processes sharing a terminal do not interleave within a block.
    std::fputs(prefixed.c_str(), stderr);
    std::fflush(stderr);
  });
}

void debug_stage(int rank, const std::string& what) {
  if (settings().debug == 0) return;
  std::fprintf(stderr, "nvrar: rank %d setup: %s\n", rank, what.c_str());
  std::fflush(stderr);
}

}  // namespace nvrar::config
