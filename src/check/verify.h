// Verification helpers shared by the tests and nvrar-bench: reproducible random inputs, a float64 reference,
// and the error bound an all-reduce result must meet.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "nvrar/types.h"

namespace nvrar::check {

// Fills `out` (count elements of dtype) with values uniform in [-1, 1), rounded to dtype; the stream depends
// only on (seed, rank), so every process can regenerate any rank's input.
void fill_random(void* out, std::size_t count, DataType dtype, uint64_t seed, int rank);

// splitmix64 finaliser: turns (base seed, size, stage, ...) into well-spread seeds, so that no two points or
// rounds share an input stream.
inline uint64_t mix_seed(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

// Element i of a typed buffer as double.
double element_as_double(const void* data, std::size_t i, DataType dtype);

// Float64 reference of a sum all-reduce: ref[i] = sum over ranks of inputs[r][i]; abs_sum[i] = sum of |inputs|.
struct Reference {
  std::vector<double> sum;
  std::vector<double> abs_sum;
};
Reference reference_sum(const std::vector<const void*>& inputs, std::size_t count, DataType dtype);

// Largest error allowed for one element. Each rounding of a partial sum to dtype costs at most one unit
// roundoff of a value bounded by abs_sum; the hierarchical schedule rounds at most (roundings) times on any
// element's path (1 intra-node, 1 fold, log2 N doubling). A flat fp32 accumulation adds (nranks x 2^-24).
double tolerance(double abs_sum, DataType dtype, int roundings, int nranks);

// Number of elements of `out` outside tolerance of `ref` (NaN counts as wrong).
std::size_t count_wrong(const void* out, const Reference& ref, std::size_t count, DataType dtype, int roundings,
                        int nranks);

// Roundings on the longest path of the hierarchical schedule for N nodes.
int hierarchical_roundings(int nodes);

}  // namespace nvrar::check
