// The registered sections (suites.h): buffers from Communicator::allocate_buffer and the zero-copy two-shot.
#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <exception>
#include <random>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "check/verify.h"
#include "harness.h"
#include "runners.h"
#include "suites.h"

namespace gpu_allreduce_test {

// ---- registered buffers (Communicator::allocate_buffer, the zero-copy two-shot) ----
// Only where supports(kRegistered). The input arena is registered; the output arena either registered too
// (the "direct" form: sums stored straight into the peers' outputs) or plain (the "copy-out" form: through NVRAR's
// exchange area and a local copy). In-place calls take their input from the output arena.

namespace {

// Calls of random_calls with algorithms drawn from the registered two-shot, auto, the hierarchical two-shot and the
// one-shot (where it fits; auto otherwise). A call whose input is plain (in-place with a plain output arena) takes
// auto instead of the forced registered two-shot, which would refuse it.
std::vector<Call> random_registered_calls(const Ctx& ctx, int n, uint64_t seed, std::size_t max_count,
                                          Memory out_memory) {
  std::vector<Call> calls = random_calls(ctx, n, seed, max_count);
  std::mt19937_64 rng(nvrar::check::mix_seed(seed));  // its own stream: the sizes stay those of random_calls
  for (Call& c : calls) {
    const bool registered_input = !c.in_place || out_memory == Memory::kRegistered;
    switch (rng() % 4) {
      case 0:
        c.algorithm = registered_input ? Algorithm::kRegistered : Algorithm::kAuto;
        break;
      case 1:
        c.algorithm = Algorithm::kAuto;
        break;
      case 2:
        c.algorithm = Algorithm::kHierarchical;
        break;
      default: {
        const bool fits =
            ctx.comm->supports(Algorithm::kOneShot) && c.count <= capacity_of(ctx, Algorithm::kOneShot, c.dtype);
        c.algorithm = fits ? Algorithm::kOneShot : Algorithm::kAuto;
        break;
      }
    }
  }
  return calls;
}

// Forcing the registered two-shot on an input outside allocate_buffer's buffers must throw nvrar::Error that
// points at allocate_buffer, before anything is enqueued: each rank decides alone (no collective), the buffers are
// left as they were, and the communicator stays usable (the sections after this one use it).
void run_registered_error_case(const Ctx& ctx, Section& s, Memory out_memory, bool in_place) {
  Call c;
  c.count = 4096;
  c.dtype = DataType::kFloat32;
  c.algorithm = Algorithm::kRegistered;
  c.in_place = in_place;
  const std::size_t bytes = c.bytes();
  DeviceBuffer d_in(bytes);
  DeviceBuffer d_out(bytes, out_memory, ctx.comm);
  std::vector<unsigned char> mine(bytes);
  nvrar::check::fill_random(mine.data(), c.count, c.dtype, 7'500'000, ctx.rank);
  unsigned char* in = in_place ? d_out.get() : d_in.get();
  CHECK_CUDA(cudaMemcpyAsync(in, mine.data(), bytes, cudaMemcpyHostToDevice, ctx.stream));
  if (!in_place) CHECK_CUDA(cudaMemsetAsync(d_out.get(), kPoison, bytes, ctx.stream));

  CaseRecord rec;
  rec.label = in_place ? std::string("error: in-place on a cudaMalloc buffer")
                       : fmt::format("error: cudaMalloc input, {} output", memory_name(out_memory));
  try {
    ctx.comm->allreduce(in, d_out.get(), c.count, c.dtype, ctx.stream, c.algorithm);
    rec.problems.push_back("no error: the registered two-shot accepted an input outside allocate_buffer's buffers");
  } catch (const nvrar::Error& e) {
    if (std::string(e.what()).find("allocate_buffer") == std::string::npos)
      rec.problems.push_back(fmt::format("the message does not mention allocate_buffer: {}", e.what()));
  } catch (const std::exception& e) {
    rec.problems.push_back(fmt::format("not an nvrar::Error: {}", e.what()));
  }
  ctx.comm->synchronize(ctx.stream);
  std::vector<unsigned char> h_in(bytes), h_out(bytes);
  CHECK_CUDA(cudaMemcpyAsync(h_in.data(), in, bytes, cudaMemcpyDeviceToHost, ctx.stream));
  CHECK_CUDA(cudaMemcpyAsync(h_out.data(), d_out.get(), bytes, cudaMemcpyDeviceToHost, ctx.stream));
  CHECK_CUDA(cudaStreamSynchronize(ctx.stream));
  if (std::memcmp(h_in.data(), mine.data(), bytes) != 0) rec.problems.push_back("the input was modified");
  if (!in_place && !all_bytes_are(h_out.data(), bytes, kPoison)) rec.problems.push_back("the output was written");
  s.cases.push_back(std::move(rec));  // hash 0 on every rank: nothing to compare
}

constexpr int kRegisteredEagerCalls = 1000;  // per batch; two batches
constexpr int kRegisteredGraphCalls = 100;   // per batch; two batches
constexpr std::size_t kRegisteredMaxCount = 262144;

}  // namespace

std::size_t correctness_buffer_bytes(std::size_t max_bytes) {
  constexpr std::size_t kMiB = std::size_t{1} << 20;
  return 2 * align_up(SingleCaseRunner::arena_bytes(max_bytes), kMiB) + 160 * kMiB;
}

void run_registered(const Ctx& ctx, Totals& totals) {
  // 5a. Unregistered inputs refused.
  {
    Section s{"registered errors"};
    run_registered_error_case(ctx, s, Memory::kPlain, /*in_place=*/false);
    run_registered_error_case(ctx, s, Memory::kRegistered, /*in_place=*/false);
    run_registered_error_case(ctx, s, Memory::kPlain, /*in_place=*/true);
    finish_section(ctx, s, totals);
  }
  // 5b. The matrix on a registered input, with the output registered (direct) and plain (copy-out).
  {
    Section s{"registered matrix"};
    uint64_t seed = 7'000'000;
    for (Memory out_memory : {Memory::kRegistered, Memory::kPlain}) {
      SingleCaseRunner runner(ctx, ctx.comm->max_bytes(), Memory::kRegistered, out_memory);
      for (Algorithm a : {Algorithm::kRegistered, Algorithm::kAuto})
        for (DataType dt : kTypes) run_matrix(ctx, s, runner, a, dt, seed);
    }
    finish_section(ctx, s, totals);
  }
  // 5c. Back-to-back calls: a batch with both arenas registered, then one with only the input arena registered,
  // no synchronisation in between.
  {
    Section s{"registered eager"};
    Batch direct(ctx,
                 random_registered_calls(ctx, kRegisteredEagerCalls, /*seed=*/20250503, kRegisteredMaxCount,
                                         Memory::kRegistered),
                 Memory::kRegistered, Memory::kRegistered);
    Batch copy_out(ctx,
                   random_registered_calls(ctx, kRegisteredEagerCalls, /*seed=*/20250504, kRegisteredMaxCount,
                                           Memory::kPlain),
                   Memory::kRegistered, Memory::kPlain);
    run_eager_batches(ctx, s, {&direct, &copy_out}, 8'000'000);
    finish_section(ctx, s, totals);
  }
  // 5d. The same two kinds of batch captured into one CUDA graph, replayed with fresh inputs.
  {
    Section s{"registered graph"};
    Batch direct(ctx,
                 random_registered_calls(ctx, kRegisteredGraphCalls, /*seed=*/20250505, kRegisteredMaxCount,
                                         Memory::kRegistered),
                 Memory::kRegistered, Memory::kRegistered);
    Batch copy_out(ctx,
                   random_registered_calls(ctx, kRegisteredGraphCalls, /*seed=*/20250506, kRegisteredMaxCount,
                                           Memory::kPlain),
                   Memory::kRegistered, Memory::kPlain);
    run_graph_batches(ctx, s, {&direct, &copy_out}, /*replays=*/20, 9'000'000);
    finish_section(ctx, s, totals);
  }
}
}  // namespace gpu_allreduce_test
