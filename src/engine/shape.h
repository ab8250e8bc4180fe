// Tensor shapes as the checkpoint and the model config both spell them: a list of dimension sizes, outermost
// first (a linear layer's weight is [out_features, in_features], as in PyTorch and HF checkpoints).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace nvrar::engine {

using Shape = std::vector<std::int64_t>;

// One of the two dimensions of a 2-D weight [out_features, in_features]: kRows = dim 0, kColumns = dim 1. A
// tensor-parallel shard splits one of them (sharding.h); a loader copies that slice (safetensors.h).
enum class Axis { kRows, kColumns };
const char* axis_name(Axis axis);  // "rows", "columns"

// Product of the dimensions (1 for a scalar []); -1 when a dimension is negative or the product overflows int64.
std::int64_t shape_numel(const Shape& shape);
// "[4096, 128256]", for error messages.
std::string shape_string(const Shape& shape);

}  // namespace nvrar::engine
