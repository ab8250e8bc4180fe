// Shape helpers (shape.h).
#include "engine/shape.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

namespace nvrar::engine {

std::int64_t shape_numel(const Shape& shape) {
  std::int64_t n = 1;
  for (const std::int64_t d : shape)
    if (d < 0 || __builtin_mul_overflow(n, d, &n)) return -1;
  return n;
}

const char* axis_name(Axis axis) { return axis == Axis::kRows ? "rows" : "columns"; }

std::string shape_string(const Shape& shape) { return fmt::format("[{}]", fmt::join(shape, ", ")); }

}  // namespace nvrar::engine
