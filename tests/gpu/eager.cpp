// The "eager" section (suites.h): random calls back to back on one stream, no synchronisation in between, each
// with its own buffers (Batch); verified after one final synchronize. run_eager_batches also serves the registered
// and sanitizer sections.
#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

#include "harness.h"
#include "runners.h"
#include "suites.h"

namespace gpu_allreduce_test {

void run_eager_section(const Ctx& ctx, Totals& totals) {
  Section s{"eager"};
  run_eager(ctx, s, random_calls(ctx, 2000, /*seed=*/20250501, /*max_count=*/262144), 2'000'000);
  finish_section(ctx, s, totals);
}

void run_eager_batches(const Ctx& ctx, Section& s, const std::vector<Batch*>& batches, uint64_t seed_base) {
  for (std::size_t b = 0; b < batches.size(); ++b) batches[b]->upload_inputs(seed_base + b * kBatchSeedStride);
  for (Batch* batch : batches) batch->enqueue_calls();
  ctx.comm->synchronize(ctx.stream);
  for (std::size_t b = 0; b < batches.size(); ++b)
    batches[b]->verify(s, seed_base + b * kBatchSeedStride, batches[b]->placement());
}

void run_eager(const Ctx& ctx, Section& s, std::vector<Call> calls, uint64_t seed_base) {
  Batch batch(ctx, std::move(calls));
  run_eager_batches(ctx, s, {&batch}, seed_base);
}

}  // namespace gpu_allreduce_test
