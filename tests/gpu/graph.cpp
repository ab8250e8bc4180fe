// The "graph" section (suites.h): random calls captured into one CUDA graph, replayed with fresh inputs, each
// replay verified. run_graph_batches also serves the registered and sanitizer sections.
#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>
#include <exception>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "harness.h"
#include "runners.h"
#include "suites.h"

namespace gpu_allreduce_test {

namespace {

// Owns a captured graph and its executable; like DeviceBuffer, leaves them to process exit while an exception
// unwinds.
class Graph {
 public:
  Graph() = default;
  Graph(const Graph&) = delete;
  Graph& operator=(const Graph&) = delete;
  ~Graph() {
    if (std::uncaught_exceptions() != 0) return;
    if (exec != nullptr) cudaGraphExecDestroy(exec);
    if (graph != nullptr) cudaGraphDestroy(graph);
  }
  cudaGraph_t graph = nullptr;
  cudaGraphExec_t exec = nullptr;
};

}  // namespace

void run_graph_section(const Ctx& ctx, Totals& totals) {
  Section s{"graph"};
  run_graph(ctx, s, random_calls(ctx, 100, /*seed=*/20250502, /*max_count=*/262144), 20, 3'000'000);
  finish_section(ctx, s, totals);
}

void run_graph_batches(const Ctx& ctx, Section& s, const std::vector<Batch*>& batches, int replays,
                       uint64_t seed_base) {
  Graph g;
  CHECK_CUDA(cudaStreamBeginCapture(ctx.stream, cudaStreamCaptureModeGlobal));
  for (Batch* batch : batches) batch->enqueue_calls();
  CHECK_CUDA(cudaStreamEndCapture(ctx.stream, &g.graph));
  CHECK_CUDA(cudaGraphInstantiate(&g.exec, g.graph, 0));
  for (int k = 0; k < replays; ++k) {
    const uint64_t seed = seed_base + 1000 * static_cast<uint64_t>(k);
    for (std::size_t b = 0; b < batches.size(); ++b) batches[b]->upload_inputs(seed + b * kBatchSeedStride);
    CHECK_CUDA(cudaGraphLaunch(g.exec, ctx.stream));
    ctx.comm->synchronize(ctx.stream);
    for (std::size_t b = 0; b < batches.size(); ++b)
      batches[b]->verify(s, seed + b * kBatchSeedStride, fmt::format("replay {} {}", k, batches[b]->placement()));
  }
}

void run_graph(const Ctx& ctx, Section& s, std::vector<Call> calls, int replays, uint64_t seed_base) {
  Batch batch(ctx, std::move(calls));
  run_graph_batches(ctx, s, {&batch}, replays, seed_base);
}

}  // namespace gpu_allreduce_test
