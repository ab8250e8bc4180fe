// --suite sanitizer (suites.h): three small bf16 calls of each NVRAR algorithm, eager and in a graph, the fused
// RMSNorm and the registered two-shot: quick under compute-sanitizer.
#include <cstddef>
#include <cstdint>
#include <vector>

#include <fmt/format.h>

#include "harness.h"
#include "runners.h"
#include "suites.h"

namespace gpu_allreduce_test {

int run_sanitizer(const Ctx& ctx, Totals& totals) {
  if (!ctx.hierarchical) {
    if (ctx.rank == 0) fmt::print("test_gpu_allreduce: SKIPPED (no NVSHMEM in this build: no NVRAR kernel to check)\n");
    return 77;
  }
  std::vector<Call> calls;
  for (std::size_t n : {std::size_t{1}, std::size_t{1000}, std::size_t{65537}}) {
    Call c;
    c.count = n;
    c.dtype = DataType::kBFloat16;
    c.algorithm = Algorithm::kHierarchical;
    c.in_place = n == 1000;
    calls.push_back(c);
    if (ctx.comm->supports(Algorithm::kOneShot)) {
      c.algorithm = Algorithm::kOneShot;
      calls.push_back(c);
    }
    if (ctx.comm->supports(Algorithm::kLl128)) {
      c.algorithm = Algorithm::kLl128;
      calls.push_back(c);
    }
    if (ctx.comm->supports(Algorithm::kPush)) {
      c.algorithm = Algorithm::kPush;
      calls.push_back(c);
    }
  }
  {
    Section s{"sanitizer eager"};
    SingleCaseRunner runner(ctx, ctx.comm->max_bytes());
    uint64_t seed = 4'000'000;
    // No ncclAllReduce comparison: the sanitizer run is about NVRAR's kernels.
    for (const Call& c : calls) runner.run(s, c, seed++, /*compare_nccl=*/false);
    finish_section(ctx, s, totals);
  }
  if (ctx.comm->supports(Algorithm::kOneShot)) {
    Section s{"sanitizer rmsnorm"};
    run_rmsnorm_case(ctx, s, RmsnormCase{3, 1000, DataType::kBFloat16, Algorithm::kOneShot, true}, 4'500'000);
    run_rmsnorm_case(ctx, s, RmsnormCase{2, 512, DataType::kFloat32, Algorithm::kHierarchical, false}, 4'500'100);
    finish_section(ctx, s, totals);
  }
  {
    Section s{"sanitizer graph"};
    run_graph(ctx, s, calls, /*replays=*/2, 5'000'000);
    finish_section(ctx, s, totals);
  }
  if (ctx.comm->supports(Algorithm::kRegistered)) {
    // The registered two-shot, direct (both arenas registered) and copy-out (input only), odd sizes, one in place.
    std::vector<Call> direct_calls, copy_out_calls;
    for (std::size_t n : {std::size_t{1}, std::size_t{1000}, std::size_t{65537}}) {
      Call c;
      c.count = n;
      c.dtype = DataType::kBFloat16;
      c.algorithm = Algorithm::kRegistered;
      c.in_place = n == 1000;
      direct_calls.push_back(c);
      c.in_place = false;
      copy_out_calls.push_back(c);
    }
    Section s{"sanitizer registered"};
    Batch direct(ctx, direct_calls, Memory::kRegistered, Memory::kRegistered);
    Batch copy_out(ctx, copy_out_calls, Memory::kRegistered, Memory::kPlain);
    run_eager_batches(ctx, s, {&direct, &copy_out}, 5'500'000);
    finish_section(ctx, s, totals);
  }
  return 0;
}
}  // namespace gpu_allreduce_test
