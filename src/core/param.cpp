#include "core/param.h"

#include <cstdio>

#include <cerrno>
#include <cstdlib>
#include <string>

#include "nvrar/types.h"

namespace nvrar::core {

int64_t read_env_int(const char* name, int64_t fallback) {
  const char* text = std::getenv(name);
  if (text == nullptr || *text == '\0') return fallback;
  errno = 0;
  char* end = nullptr;
  const long long value = std::strtoll(text, &end, 10);
  if (errno != 0 || end == text || *end != '\0')
    throw Error(std::string("nvrar: environment variable ") + name + "='" + text + "' is not an integer");
  return value;
}

std::string read_env_string(const char* name, const std::string& fallback) {
  const char* text = std::getenv(name);
  if (text == nullptr || *text == '\0') return fallback;
  return text;
}

}  // namespace nvrar::core

namespace nvrar::core {
void debug_stage(int rank, const std::string& what) {
  if (param_Debug() == 0) return;
  std::fprintf(stderr, "nvrar: rank %d setup: %s\n", rank, what.c_str());
  std::fflush(stderr);
}
}  // namespace nvrar::core
