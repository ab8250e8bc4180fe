// The one switch from a run-time element type to the kernels' compile-time one. Every algorithm's launch goes
// through it: with_element_type(dtype, invalid, [&](auto t) { using T = typename decltype(t)::type; ... }) calls the
// lambda with ElementType<float>, <core::Bf16> or <core::Fp16>, and returns `invalid` for a value outside the enum
// (e.g. from the C API).
#pragma once

#include "core/numeric.h"
#include "nvrar/types.h"

namespace nvrar::gpu::dev {

template <typename T>
struct ElementType {
  using type = T;
};

template <typename R, typename F>
R with_element_type(DataType dtype, R invalid, F&& f) {
  switch (dtype) {
    case DataType::kFloat32:
      return f(ElementType<float>{});
    case DataType::kBFloat16:
      return f(ElementType<core::Bf16>{});
    case DataType::kFloat16:
      return f(ElementType<core::Fp16>{});
  }
  return invalid;
}

}  // namespace nvrar::gpu::dev
