// Every all-reduce algorithm of the GPU communicator, one entry each, in setup order (the order the symmetric heap
// hands out their areas). NCCL is not an entry: the communicator calls it directly.
#pragma once

#include <memory>
#include <vector>

#include "gpu/algorithms/algorithm.h"

namespace nvrar::gpu {

std::vector<std::unique_ptr<AllreduceAlgorithm>> make_algorithms();

}  // namespace nvrar::gpu
