// NVRAR_LLM_GEMM's value parsed: the GEMM kernel nvrar-llm runs for every shape, or shape by shape. The engine
// (engine/gpu/gemm.cpp) applies it; the settings table checks it with the same parser, so a bad value is refused when
// the environment is read, with the item and the reason.
//
//   cublaslt | skinny0 .. skinny3                 every shape (a skinny variant where it takes the shape)
//   1x4096x4096=skinny0,8x6144x4096=cublaslt,...  these shapes (m x n x k); any other shape is timed as usual; the
//                                                 engine refuses a listed skinny variant that does not take its shape
//
// nvrar-llm bench prints the chosen kernels in the second form ("GEMM plan", and "gemm_plan" in --json), so a later
// run can repeat one run's choices: an A/B of two builds then differs only in the change, not in the tuner's picks.
#pragma once

#include <cstdint>
#include <compare>
#include <map>
#include <string>
#include <string_view>

namespace nvrar::config {

inline constexpr int kGemmTimed = -2;     // not pinned: the engine times its candidates
inline constexpr int kGemmCublasLt = -1;  // cuBLASLt (its fastest timed algorithm)
inline constexpr int kGemmPinVariants = 4;  // skinny0 .. skinny3 (engine/gpu/skinny_gemm.h: kSkinnyGemmVariants)

struct GemmShape {
  int64_t m = 0, n = 0, k = 0;
  auto operator<=>(const GemmShape&) const = default;
};

struct GemmPin {
  int every_shape = kGemmTimed;       // the single-name form
  std::map<GemmShape, int> by_shape;  // the list form
  // kGemmTimed, kGemmCublasLt or a skinny variant (>= 0) for this shape.
  int kernel_for(const GemmShape& shape) const;
};

// Parses NVRAR_LLM_GEMM's text ("" = nothing pinned). Throws nvrar::Error naming the variable, the item and why.
GemmPin parse_gemm_pin(std::string_view text);

// "" where parse_gemm_pin takes `text`, else what is wrong with it, e.g. "has an item '1x8=skinny0' that does not
// start with a shape MxNxK of three positive integers" (the settings table's refusal).
std::string gemm_pin_problem(std::string_view text);

// The list form as messages and the settings table describe it.
inline constexpr const char* kGemmPinListForm =
    "a comma-separated list of MxNxK=kernel with no spaces, e.g. 1x4096x4096=skinny0,8x6144x4096=cublaslt";

// "cublaslt" or "skinny<variant>": the name the pin takes for a kernel (kernel >= kGemmCublasLt).
std::string gemm_kernel_name(int kernel);

}  // namespace nvrar::config
