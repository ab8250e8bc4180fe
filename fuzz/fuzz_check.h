// What every fuzz target shares: an invariant check that aborts (so libFuzzer keeps the input as a crash) and the
// rule that a parser of user files reports bad input only as an nvrar::Error naming the file.
//
// Anything else that leaves a parser is a finding: another exception type escaping (nlohmann's out_of_range, a
// std::length_error), a sanitizer report (ASan, UBSan with -fno-sanitize-recover), a stack overflow, a hang
// (libFuzzer's -timeout), or an nvrar::Error whose message does not name the input it was given.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "nvrar/types.h"

namespace nvrar::fuzz {

[[noreturn]] inline void violated(const char* what, const std::string& detail, const char* file, int line) {
  std::fprintf(stderr, "\nnvrar fuzz: invariant violated at %s:%d: %s\n  %s\n", file, line, what, detail.c_str());
  std::abort();
}

// FUZZ_EXPECT(cond, detail): abort with `detail` (a std::string) when `cond` is false.
#define FUZZ_EXPECT(cond, detail)                                                \
  do {                                                                          \
    if (!(cond)) ::nvrar::fuzz::violated(#cond, (detail), __FILE__, __LINE__); \
  } while (0)

// The file name each target hands its parser; every error message must contain it.
inline void expect_names_origin(const Error& error, std::string_view origin) {
  const std::string message = error.what();
  FUZZ_EXPECT(message.find(origin) != std::string::npos,
              "error does not name '" + std::string(origin) + "': " + message);
}

inline std::string_view as_text(const unsigned char* data, std::size_t size) {
  return {reinterpret_cast<const char*>(data), size};
}

}  // namespace nvrar::fuzz
