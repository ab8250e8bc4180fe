// nvrar-llm: Llama-3 tensor-parallel inference with a pluggable all-reduce (the engine in src/engine/gpu).
//
//   mpirun -np 4 nvrar-llm bench --model llama3.1-70b --tp 4 --batch-size 8 --input-len 1024 --output-len 256
//       --num-iters-warmup 2 --num-iters 5 --allreduce nvrar [--num-layers 20] [--json out.json]
//   mpirun -np 2 nvrar-llm check --model-dir DIR --reference DIR/reference.json --tp 2 [--allreduce nccl]
//   nvrar-llm tokenize --tokenizer DIR/tokenizer.json (--text T | --file F) [--decode]   (tools/llm/tokenize.h)
//   mpirun -np 2 nvrar-llm generate --model-dir DIR --prompt "Hello" --tp 2 [--temperature 0.7 --seed 1] (llm/generate.h)
//
// Subcommands: bench (tools/llm/bench.cpp), check (tools/llm/check.cpp), generate (tools/llm/generate.cpp),
// tokenize (tools/llm/tokenize.cpp); shared pieces in tools/llm/common.h.
// Inputs are checked before any GPU is touched: the options, config.json, the reference file and the checkpoint
// (every safetensors header or the index, each tensor's dtype and shape against the config), then the
// communicator and the engine are set up. A broken file is reported as such, on a machine with or without a GPU.
// Exit status: 0 ok, 1 check mismatch, 2 usage or runtime error.
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <utility>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "engine/gpu/copy_wait.h"
#include "llm/common.h"
#include "llm/generate.h"
#include "llm/tokenize.h"
#include "nvrar/types.h"

namespace {
using nvrar::Error;
using namespace nvrar::llm;
}  // namespace

int main(int argc, char** argv) {
  constexpr int kExitOk = 0;
  constexpr int kExitError = 2;
  CLI::App app{"nvrar-llm: Llama-3 tensor-parallel inference with NVRAR or NCCL all-reduce"};
  app.footer("Exit status: 0 ok, 1 check mismatch, 2 usage, input or runtime error (message on stderr).");
  app.require_subcommand(1);
  // Ranges of the options: every one is checked here, before any file is read or any GPU touched; the engine sizes
  // are further checked by check_engine, and the KV cache against the GPU's memory.
  const auto backends = CLI::IsMember({"nccl", "nvrar", "auto"});
  BenchOptions b;
  CLI::App* bench = app.add_subcommand("bench", "latency benchmark (like vllm bench latency)");
  CLI::Option* model =
      bench->add_option("--model", b.model, "preset (llama3.1-8b, llama3.1-70b, llama3.1-405b) or config.json");
  bench->add_option("--model-dir", b.model_dir, "HF checkpoint directory (real weights) instead of dummy weights")
      ->excludes(model);
  bench->add_option("--tp", b.tp, "tensor-parallel degree (= processes of the launch)")->check(CLI::Range(1, 4096));
  bench->add_option("--num-layers", b.num_layers, "truncate the model to this many layers (0: all)")
      ->check(CLI::Range(int64_t{0}, int64_t{1} << 20));
  bench->add_option("--batch-size", b.batch)->check(CLI::Range(int64_t{1}, int64_t{65535}));
  bench->add_option("--input-len", b.input_len)->check(CLI::Range(int64_t{1}, int64_t{1} << 24));
  bench->add_option("--output-len", b.output_len)->check(CLI::Range(int64_t{1}, int64_t{1} << 20));
  bench->add_option("--num-iters-warmup", b.warmup)->check(CLI::Range(0, 1000000));
  bench->add_option("--num-iters", b.iters)->check(CLI::Range(1, 1000000));
  bench->add_option("--allreduce", b.allreduce, "nccl, nvrar (NVRAR's kernels only) or auto (NVRAR's tuner)")
      ->check(backends);
  bench->add_option("--json", b.json, "write the results as JSON");
  bench->add_option("--seed", b.seed);
  bench->add_flag("--no-graph", b.no_graph, "decode steps eagerly instead of CUDA graph replays");
  const char* chunk_help = "prompt tokens per prefill forward (longer prefills run in chunks; 0: the engine's default)";
  bench->add_option("--prefill-chunk", b.prefill_chunk, chunk_help)->check(CLI::Range(int64_t{0}, int64_t{1} << 24));
  bench->add_option("--profile-range", b.profile_range,
                    "prefill or decode: the instrumented prefill or decode step (after all timed iterations) is the "
                    "profiler range (cudaProfilerStart/Stop; e.g. ncu --profile-from-start off); none (default)")
      ->check(CLI::IsMember({"none", "prefill", "decode"}));
  CheckOptions c;
  CLI::App* check = app.add_subcommand("check", "compare logits and greedy tokens with a transformers reference");
  check->add_option("--model-dir", c.model_dir, "HF checkpoint directory")->required();
  check->add_option("--reference", c.reference, "reference.json from scripts/hf_reference.py")->required();
  check->add_option("--tp", c.tp)->check(CLI::Range(1, 4096));
  check->add_option("--allreduce", c.allreduce)->check(backends);
  check->add_option("--atol", c.atol, "absolute tolerance, for references without fp32 logits")
      ->check(CLI::Range(0.0, 1e30));
  check->add_option("--rtol", c.rtol, "relative to the largest reference logit of the step (no fp32 logits)")
      ->check(CLI::Range(0.0, 1e30));
  check->add_flag("--no-graph", c.no_graph);
  check->add_option("--prefill-chunk", c.prefill_chunk, chunk_help)->check(CLI::Range(int64_t{0}, int64_t{1} << 24));
  check->add_option("--tokens-out", c.tokens_out, "write our greedy tokens [step][batch] as JSON (rank 0)");
  check->add_option("--logits-out", c.logits_out, "write our logits [step][batch][vocab] as JSON (rank 0)");
  nvrar::llm::GenerateOptions g;
  CLI::App* generate = nvrar::llm::add_generate_command(app, g);  // tools/llm/generate.h
  nvrar::llm::TokenizeOptions t;
  CLI::App* tokenize = nvrar::llm::add_tokenize_command(app, t);  // tools/llm/tokenize.h
  // A usage error exits 2 like every other error (CLI11's own codes, 100 and up, are not ours).
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? kExitOk : kExitError;
  }
  try {
    // Output files that cannot be written fail now, not after the run (append mode: nothing is truncated yet).
    for (const auto& [flag, out] : {std::pair{"--json", &b.json}, std::pair{"--tokens-out", &c.tokens_out},
                                     std::pair{"--logits-out", &c.logits_out}})
      if (!out->empty() && !std::ofstream(*out, std::ios::app))
        throw Error(fmt::format("nvrar-llm: {}: cannot open '{}' for writing", flag, *out));
    if (*bench) return run_bench(b);
    if (*generate) return nvrar::llm::run_generate(g);
    if (*tokenize) return nvrar::llm::run_tokenize(t);
    return run_check(c);
  } catch (const std::exception& e) {
    std::fflush(stdout);  // what a subcommand printed before the error (check's step lines) is kept
    // A prefill kernel whose wait gave up trapped; the CUDA error may have surfaced anywhere, not only in cuda_check.
    const std::string timed_out = nvrar::engine::gpu::copy_wait_failure();
    if (!timed_out.empty() && std::string(e.what()).find(timed_out) == std::string::npos)
      std::fprintf(stderr, "%s; %s\n", e.what(), timed_out.c_str());
    else
      std::fprintf(stderr, "%s\n", e.what());
    std::fflush(stderr);
    std::_Exit(2);  // peers may be waiting in a collective: do not run NVSHMEM's collective teardown
  }
}
