// The pieces the nvrar-llm subcommands share (tools/nvrar_llm.cpp registers them): their options, the
// tensor-parallel group from the launcher, the checkpoint opened and checked on the CPU, percentiles.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "engine/checkpoint.h"
#include "engine/llama_weights.h"
#include "engine/gpu/comm_adapter.h"
#include "engine/model_config.h"
#include "nvrar/nvrar.h"

namespace nvrar::llm {

namespace eg = nvrar::engine::gpu;

struct BenchOptions {
  std::string model = "llama3.1-8b";
  std::string model_dir;
  int tp = 1;
  int64_t num_layers = 0;
  int64_t batch = 1;
  int64_t input_len = 128;
  int64_t output_len = 128;
  int warmup = 2;
  int iters = 5;
  std::string allreduce = "auto";
  std::string json;
  uint64_t seed = 1234;
  bool no_graph = false;
  int64_t prefill_chunk = 0;  // tokens per prefill forward; 0: the engine's default
  std::string profile_range = "none";  // prefill / decode: cudaProfilerStart/Stop around that instrumented part
};

struct CheckOptions {
  std::string model_dir;
  std::string reference;
  int tp = 1;
  std::string allreduce = "auto";
  double atol = 0.05;
  double rtol = 0.05;
  bool no_graph = false;
  int64_t prefill_chunk = 0;
  std::string tokens_out;  // our greedy tokens [step][batch] as JSON, to compare runs of other TP sizes / backends
  std::string logits_out;  // our logits [step][batch][vocab] as JSON (e.g. chunked against unchunked prefill)
};

// The p-th percentile (0-100) of v, interpolated.
double percentile(std::vector<double> v, double p);
// The checkpoint of `dir`, checked against `config` on the CPU (check_checkpoint); nothing when dir is empty.
std::optional<engine::Checkpoint> open_checkpoint(const std::string& dir, const engine::ModelConfig& config);
// The tensor-parallel group, with the communicator options the all-reduce backend needs (comm_adapter.h).
std::unique_ptr<Communicator> make_comm(int tp, eg::AllReduceBackend backend);

int run_bench(const BenchOptions& o);  // tools/llm/bench.cpp
int run_check(const CheckOptions& o);  // tools/llm/check.cpp

}  // namespace nvrar::llm
