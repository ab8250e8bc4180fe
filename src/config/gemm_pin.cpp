// NVRAR_LLM_GEMM's parser (gemm_pin.h).
#include "config/gemm_pin.h"

#include <charconv>
#include <vector>

#include <fmt/format.h>

#include "nvrar/types.h"

namespace nvrar::config {

namespace {

// "cublaslt" or "skinny<v>" -> kGemmCublasLt or v; kGemmTimed for anything else.
int kernel_of(std::string_view name) {
  if (name == "cublaslt") return kGemmCublasLt;
  for (int v = 0; v < kGemmPinVariants; ++v)
    if (name == gemm_kernel_name(v)) return v;
  return kGemmTimed;
}

// A positive decimal dimension, digits only.
bool dimension(std::string_view s, int64_t& out) {
  if (s.empty() || s.front() < '0' || s.front() > '9') return false;
  const auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), out, 10);
  return ec == std::errc() && ptr == s.data() + s.size() && out > 0;
}

std::vector<std::string_view> split(std::string_view s, char sep) {
  std::vector<std::string_view> parts;
  for (std::size_t at = 0;;) {
    const std::size_t next = s.find(sep, at);
    parts.push_back(s.substr(at, next == std::string_view::npos ? std::string_view::npos : next - at));
    if (next == std::string_view::npos) return parts;
    at = next + 1;
  }
}

// Fills `pin` from `text`; returns "" or what is wrong ("is not a kernel name", "has an item '...' that ...").
std::string parse(std::string_view text, GemmPin& pin) {
  const auto bad = [](std::string_view item, std::string_view why) {
    return fmt::format("has an item '{}' that {}", item, why);
  };
  if (text.empty()) return "";
  if (text.find('=') == std::string_view::npos) {
    pin.every_shape = kernel_of(text);
    return pin.every_shape == kGemmTimed ? "is not a kernel name" : "";
  }
  for (std::string_view item : split(text, ',')) {
    if (item.empty()) return "has an empty item (a stray comma?)";
    const std::size_t eq = item.find('=');
    if (eq == std::string_view::npos) return bad(item, "is not of the form MxNxK=kernel");
    const std::vector<std::string_view> dims = split(item.substr(0, eq), 'x');
    GemmShape shape;
    if (dims.size() != 3 || !dimension(dims[0], shape.m) || !dimension(dims[1], shape.n) ||
        !dimension(dims[2], shape.k))
      return bad(item, "does not start with a shape MxNxK of three positive integers");
    const int kernel = kernel_of(item.substr(eq + 1));
    if (kernel == kGemmTimed) return bad(item, "does not end in a kernel name");
    if (!pin.by_shape.emplace(shape, kernel).second) return bad(item, "names a shape a second time");
  }
  return "";
}

}  // namespace

std::string gemm_kernel_name(int kernel) {
  return kernel == kGemmCublasLt ? std::string("cublaslt") : fmt::format("skinny{}", kernel);
}

int GemmPin::kernel_for(const GemmShape& shape) const {
  if (every_shape != kGemmTimed) return every_shape;
  const auto it = by_shape.find(shape);
  return it == by_shape.end() ? kGemmTimed : it->second;
}

std::string gemm_pin_problem(std::string_view text) {
  GemmPin pin;
  return parse(text, pin);
}

GemmPin parse_gemm_pin(std::string_view text) {
  GemmPin pin;
  const std::string problem = parse(text, pin);
  if (!problem.empty())
    throw Error(fmt::format("nvrar-llm: NVRAR_LLM_GEMM='{}' {} (takes cublaslt, skinny0 .. skinny{}, or {})", text,
                            problem, kGemmPinVariants - 1, kGemmPinListForm));
  return pin;
}

}  // namespace nvrar::config
