// nvrar-llm bench: a latency benchmark like `vllm bench latency` (common.h). Dummy weights (or --model-dir), random
// prompts; per iteration a prefill of batch x input-len tokens (in chunks of --prefill-chunk tokens) and
// output-len - 1 decode steps (CUDA graph per batch size). Prints the average and percentile batch latency, prefill
// time, throughput and time to first token, median decode step, tokens/s, and one more (instrumented) prefill and one
// instrumented eager decode step, each split into GEMM, attention, all-reduce and other.
#include <cuda_profiler_api.h>
#include <cuda_runtime_api.h>

#include <algorithm>
#include <chrono>
#include <functional>
#include <cstdio>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "engine/gpu/runner.h"
#include "llm/common.h"

namespace nvrar::llm {

namespace {

// "5.322 ms): GEMM 4.187 ms (79%), attention ... other 0.318 ms (6%)": the total, then each kind and its share.
std::string format_split(const eg::StepBreakdown& b) {
  const double total = b.total_us();
  auto part = [&](const char* name, double us) {
    return fmt::format("{} {:.3f} ms ({:.0f}%)", name, us / 1e3, total > 0 ? 100 * us / total : 0.0);
  };
  return fmt::format("{:.3f} ms): {}, {}, {}, {}", total / 1e3, part("GEMM", b.gemm_us),
                     part("attention", b.attention_us), part("all-reduce", b.allreduce_us), part("other", b.other_us));
}

}  // namespace

int run_bench(const BenchOptions& o) {
  // Inputs first (CPU only), then the GPU.
  if (o.batch < 1 || o.input_len < 1 || o.output_len < 1 || o.iters < 1 || o.warmup < 0)
    throw Error("nvrar-llm: batch size, input and output lengths and iterations must be positive");
  eg::EngineOptions eo;
  eo.max_batch = o.batch;
  // Chunks no larger than the whole prefill (the activations are sized by the chunk).
  eo.prefill_chunk = std::min(o.prefill_chunk > 0 ? o.prefill_chunk : eg::default_prefill_chunk(o.tp),
                              o.batch * o.input_len);
  eo.max_seq = o.input_len + o.output_len + 1;
  eo.allreduce = eg::parse_allreduce_backend(o.allreduce);
  nvrar::engine::ModelConfig config = nvrar::engine::resolve_config(o.model_dir.empty() ? o.model : o.model_dir + "/config.json");
  if (o.num_layers > 0) config = nvrar::engine::truncate(config, o.num_layers);
  eg::check_engine(config, o.tp, eo);
  std::optional<nvrar::engine::Checkpoint> checkpoint = open_checkpoint(o.model_dir, config);

  auto comm = make_comm(o.tp, eo.allreduce);
  const bool root = comm->rank() == 0;
  eg::LlamaRunner model(config, *comm, eo);
  if (checkpoint)
    model.load_checkpoint(*checkpoint);
  else
    model.init_dummy(o.seed);
  std::mt19937_64 rng(o.seed);
  std::vector<std::vector<int32_t>> prompts(static_cast<std::size_t>(o.batch));
  for (auto& p : prompts) {
    p.resize(static_cast<std::size_t>(o.input_len));
    for (auto& t : p) t = static_cast<int32_t>(rng() % static_cast<uint64_t>(config.vocab_size));
  }
  // Long prefills show progress (rank 0, after each chunk; the wait per chunk costs little at these sizes).
  const int64_t prompt_tokens = o.batch * o.input_len;
  std::function<void(int64_t, int64_t)> progress;
  if (root && prompt_tokens >= 32768)
    progress = [](int64_t done, int64_t all) {
      std::fprintf(stderr, "\rprefill: %lld / %lld tokens", static_cast<long long>(done), static_cast<long long>(all));
      if (done == all) std::fprintf(stderr, "\n");
    };

  cudaEvent_t a = nullptr, b = nullptr;
  cudaEventCreate(&a);
  cudaEventCreate(&b);
  std::vector<double> latencies_ms, prefill_ms, ttft_ms, step_ms;
  const int total = o.warmup + o.iters;
  for (int it = 0; it < total; ++it) {
    cudaStreamSynchronize(model.stream());
    const auto t0 = std::chrono::steady_clock::now();
    cudaEventRecord(a, model.stream());
    model.prefill(prompts, progress);  // synchronises (returns the first tokens)
    const double ttft = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    cudaEventRecord(b, model.stream());
    cudaEventSynchronize(b);
    float ms = 0;
    cudaEventElapsedTime(&ms, a, b);
    const double prefill = ms;
    std::vector<cudaEvent_t> ev(static_cast<std::size_t>(o.output_len));
    for (auto& e : ev) cudaEventCreate(&e);
    cudaEventRecord(ev[0], model.stream());
    for (int64_t s = 1; s < o.output_len; ++s) {
      model.decode_step(!o.no_graph);
      cudaEventRecord(ev[static_cast<std::size_t>(s)], model.stream());
    }
    cudaStreamSynchronize(model.stream());
    const auto t1 = std::chrono::steady_clock::now();
    if (it >= o.warmup) {
      latencies_ms.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
      prefill_ms.push_back(prefill);
      ttft_ms.push_back(ttft);
      for (std::size_t s = 1; s < ev.size(); ++s) {
        cudaEventElapsedTime(&ms, ev[s - 1], ev[s]);
        step_ms.push_back(ms);
      }
    }
    for (auto& e : ev) cudaEventDestroy(e);
    if (root) std::fprintf(stderr, "\r[%-30s] %d/%d iterations", std::string(30 * (it + 1) / total, '#').c_str(),
                           it + 1, total);
  }
  if (root) std::fprintf(stderr, "\n");
  // One more prefill, instrumented (events between its phases; kept out of the timed iterations above), and one
  // instrumented eager decode step continuing it (max_seq leaves room for it).
  // --profile-range: a profiler (ncu --profile-from-start off) sees only that part, after every warm-up and GEMM choice.
  const auto profiled = [&](const char* part, const auto& run) {
    if (o.profile_range == part) cudaProfilerStart();
    const eg::StepBreakdown b = run();
    if (o.profile_range == part) cudaProfilerStop();
    return b;
  };
  const eg::StepBreakdown prefill_br = profiled("prefill", [&] { return model.timed_prefill(prompts, progress); });
  const eg::StepBreakdown br = profiled("decode", [&] { return model.timed_decode_step(); });

  double avg = 0;
  for (double l : latencies_ms) avg += l;
  avg /= static_cast<double>(latencies_ms.size());
  const double step_med = step_ms.empty() ? 0.0 : percentile(step_ms, 50);
  const double tokens_per_s = static_cast<double>(o.batch * o.output_len) / (avg / 1e3);
  if (root) {
    int dev = 0;
    cudaGetDevice(&dev);
    cudaDeviceProp prop{};
    cudaGetDeviceProperties(&prop, dev);
    fmt::print("nvrar-llm bench: {} ({} layers), TP {} on {} x {}, all-reduce {} ({}), batch {}, input {}, output {}\n",
               config.source, config.num_layers, o.tp, comm->size(), prop.name, o.allreduce, comm->tuning_source(),
               o.batch, o.input_len, o.output_len);
    fmt::print("Avg latency: {:.4f} seconds\n", avg / 1e3);
    for (double p : {10.0, 25.0, 50.0, 75.0, 90.0, 99.0})
      fmt::print("{:.0f}% percentile latency: {:.4f} seconds\n", p, percentile(latencies_ms, p) / 1e3);
    const double prefill_med = percentile(prefill_ms, 50);
    fmt::print("Prefill (median): {:.2f} ms, {:.0f} tokens/s ({} x {} tokens, chunks of {})\n", prefill_med,
               static_cast<double>(prompt_tokens) / (prefill_med / 1e3), o.batch, o.input_len, eo.prefill_chunk);
    fmt::print("Time to first token (median): {:.2f} ms\n", percentile(ttft_ms, 50));
    fmt::print("Decode step (median over {} steps): {:.3f} ms\n", step_ms.size(), step_med);
    fmt::print("Throughput: {:.1f} output tokens/s\n", tokens_per_s);
    fmt::print("GEMM kernels (m x n x k, rank 0): {}\n", model.gemm_choices());
    fmt::print("GEMM plan (rank 0; NVRAR_LLM_GEMM repeats it): {}\n", model.gemm_plan());
    fmt::print("Attention kernels: {}\n", model.attention_kernels());
    fmt::print("Residual stream: {}{}\n", model.residual_type(),
               model.residual_in_gemm() ? fmt::format(" (added inside {})", model.residual_gemms()) : "");
    fmt::print("GEMM outputs (NVRAR_LLM_ACTIVATIONS): {}\n", model.activations_type());
    fmt::print("Prefill split (one instrumented prefill: {})\n", format_split(prefill_br));
    fmt::print("Decode step split (one eager, instrumented step: {})\n", format_split(br));
    if (!o.json.empty()) {
      nlohmann::json j;
      j["tool"] = "nvrar-llm bench";
      j["model"] = config.source;
      j["num_layers"] = config.num_layers;
      j["tp"] = o.tp;
      j["card"] = prop.name;
      j["allreduce"] = o.allreduce;
      j["batch_size"] = o.batch;
      j["input_len"] = o.input_len;
      j["output_len"] = o.output_len;
      j["graphs"] = !o.no_graph;
      j["gemm_plan"] = model.gemm_plan();
      j["attention_kernels"] = model.attention_kernels();
      j["residual"] = model.residual_type();
      j["residual_in_gemm"] = model.residual_in_gemm();
      j["activations"] = model.activations_type();
      j["latencies_s"] = nlohmann::json::array();
      for (double l : latencies_ms) j["latencies_s"].push_back(l / 1e3);
      j["avg_latency_s"] = avg / 1e3;
      j["prefill_ms_median"] = prefill_med;
      j["prefill_tokens_per_s"] = static_cast<double>(prompt_tokens) / (prefill_med / 1e3);
      j["ttft_ms_median"] = percentile(ttft_ms, 50);
      j["prefill_chunk"] = eo.prefill_chunk;
      j["decode_step_ms_median"] = step_med;
      j["tokens_per_s"] = tokens_per_s;
      auto split_json = [](const eg::StepBreakdown& b) {
        return nlohmann::json{{"gemm", b.gemm_us}, {"attention", b.attention_us}, {"allreduce", b.allreduce_us},
                              {"other", b.other_us}};
      };
      j["breakdown_us"] = split_json(br);
      j["prefill_breakdown_us"] = split_json(prefill_br);
      std::ofstream out(o.json);
      out << j.dump(2) << "\n";
      if (!out) throw Error("nvrar-llm bench: --json: cannot write " + o.json);
    }
  }
  cudaEventDestroy(a);
  cudaEventDestroy(b);
  return 0;
}

}  // namespace nvrar::llm
