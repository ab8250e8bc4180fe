// The "matrix" section (suites.h): counts from 1 to the capacity, in place and out of place, aligned and one
// element off, x fp32/bf16/fp16 x every algorithm this communicator has; each call checked against the float64
// reference and ncclAllReduce (SingleCaseRunner). run_matrix also serves the registered matrix.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "harness.h"
#include "runners.h"
#include "suites.h"

namespace gpu_allreduce_test {

namespace {

std::vector<Algorithm> algorithms(const Ctx& ctx) {
  std::vector<Algorithm> a;
  if (ctx.hierarchical) a.push_back(Algorithm::kHierarchical);
  if (ctx.comm->supports(Algorithm::kOneShot)) a.push_back(Algorithm::kOneShot);
  if (ctx.comm->supports(Algorithm::kLl128)) a.push_back(Algorithm::kLl128);
  if (ctx.comm->supports(Algorithm::kPush)) a.push_back(Algorithm::kPush);
  a.push_back(Algorithm::kAuto);
  return a;
}

// Counts of the matrix for one type: tiny ones, G +- 1 (uneven slices), primes, and the largest of 64 MiB and of
// the communicator's capacity (and 3 below them: a ragged last chunk). Over capacity or 0: left out.
std::vector<std::size_t> matrix_counts(const Ctx& ctx, DataType dtype) {
  const std::size_t G = static_cast<std::size_t>(ctx.comm->gpus_per_node());
  const std::size_t big = k64MiB / esize(dtype);
  const std::size_t capacity = ctx.comm->max_bytes() / esize(dtype);
  std::vector<std::size_t> counts = {1, 2, 3, 5, 7, G - 1, G + 1, 31, 97, 1000, 4097, 65537, 1048579, big - 3, big};
  counts.push_back(capacity);
  if (capacity > 3) counts.push_back(capacity - 3);
  std::erase_if(counts, [&](std::size_t n) { return n == 0 || n > capacity; });
  std::sort(counts.begin(), counts.end());
  counts.erase(std::unique(counts.begin(), counts.end()), counts.end());
  return counts;
}

}  // namespace

void run_matrix_section(const Ctx& ctx, Totals& totals) {
  Section s{"matrix"};
  SingleCaseRunner runner(ctx, ctx.comm->max_bytes());
  uint64_t seed = 1'000'000;
  for (Algorithm a : algorithms(ctx))
    for (DataType dt : kTypes) run_matrix(ctx, s, runner, a, dt, seed);
  finish_section(ctx, s, totals);
}

// The matrix for one algorithm and type: every count of matrix_counts within capacity, in-place for every other one,
// then misaligned input and output: a tiny count, primes, and the largest that still fits with the shift.
// A forced registered two-shot needs a registered input: where the runner's in-place input (its output arena) is
// plain, those calls run out-of-place instead.
void run_matrix(const Ctx& ctx, Section& s, SingleCaseRunner& runner, Algorithm a, DataType dt, uint64_t& seed) {
  const std::size_t capacity = capacity_of(ctx, a, dt);
  auto run = [&](std::size_t count, bool in_place, bool misaligned) {
    Call c;
    c.count = count;
    c.dtype = dt;
    c.algorithm = a;
    c.in_place = in_place;
    c.misaligned = misaligned;
    if (a == Algorithm::kRegistered && !runner.registered_input(c)) c.in_place = false;
    runner.run(s, c, seed++, /*compare_nccl=*/true);
  };
  const std::vector<std::size_t> counts = matrix_counts(ctx, dt);
  for (std::size_t i = 0; i < counts.size(); ++i)
    if (counts[i] <= capacity) run(counts[i], i % 2 == 1, false);
  const std::size_t misaligned_counts[] = {3, 97, 4097, 1048579, std::min(k64MiB / esize(dt), capacity) - 3};
  int j = 0;
  for (std::size_t n : misaligned_counts)
    if (n != 0 && n <= capacity) run(n, j++ % 2 == 1, true);
}

}  // namespace gpu_allreduce_test
