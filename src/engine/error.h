// How the engine's CPU-side code reports a failure: an nvrar::Error whose message starts "nvrar-llm: " and then
// names where it happened (the config or safetensors file, the field or tensor) and the cause. Internal to the
// engine's .cpp files; callers only see nvrar::Error (include/nvrar/types.h).
#pragma once

#include <fmt/format.h>

#include <utility>

#include "nvrar/types.h"

namespace nvrar::engine {

template <typename... Args>
[[noreturn]] void fail(fmt::format_string<Args...> format, Args&&... args) {
  throw Error("nvrar-llm: " + fmt::format(format, std::forward<Args>(args)...));
}

}  // namespace nvrar::engine
