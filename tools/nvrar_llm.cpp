// nvrar-llm: Llama-3 tensor-parallel inference with a pluggable all-reduce (the engine in src/engine/gpu).
//
//   mpirun -np 4 nvrar-llm bench --model llama3.1-70b --tp 4 --batch-size 8 --input-len 1024 --output-len 256
//       --num-iters-warmup 2 --num-iters 5 --allreduce nvrar [--num-layers 20] [--json out.json]
//   mpirun -np 2 nvrar-llm check --model-dir DIR --reference DIR/reference.json --tp 2 [--allreduce nccl]
//   nvrar-llm tokenize --tokenizer DIR/tokenizer.json (--text T | --file F) [--decode]   (tools/llm/tokenize.h)
//
// bench: dummy weights (or --model-dir), random prompts; per iteration a prefill of batch x input-len tokens and
// output-len - 1 decode steps (CUDA graph per batch size), like `vllm bench latency`. Prints the average and
// percentile batch latency, prefill time, median decode step, tokens/s, and one instrumented eager decode step split
// into GEMM, attention, all-reduce and other.
// check: loads an HF checkpoint, runs the prompts of a reference file written by scripts/hf_reference.py, and
// compares logits (prefill's last position and every decode step, teacher-forced with the reference's tokens) and
// greedy tokens with transformers'.
// Inputs are checked before any GPU is touched: the options, config.json, the reference file and the checkpoint
// (every safetensors header or the index, each tensor's dtype and shape against the config), then the
// communicator and the engine are set up. A broken file is reported as such, on a machine with or without a GPU.
// Exit status: 0 ok, 1 check mismatch, 2 usage or runtime error.
#include <cuda_runtime_api.h>

#include <algorithm>
#include <chrono>
#include <cfloat>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "core/json_input.h"
#include "engine/checkpoint.h"
#include "engine/gpu/runner.h"
#include "engine/llama_weights.h"
#include "engine/model_config.h"
#include "llm/tokenize.h"
#include "nvrar/nvrar.h"

namespace {

namespace eg = nvrar::engine::gpu;
using nvrar::Error;

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
};

struct CheckOptions {
  std::string model_dir;
  std::string reference;
  int tp = 1;
  std::string allreduce = "auto";
  double atol = 0.05;
  double rtol = 0.05;
  bool no_graph = false;
  std::string tokens_out;  // our greedy tokens [step][batch] as JSON, to compare runs of other TP sizes / backends
};

double percentile(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  const double pos = p / 100.0 * static_cast<double>(v.size() - 1);
  const std::size_t lo = static_cast<std::size_t>(pos);
  const std::size_t hi = std::min(lo + 1, v.size() - 1);
  return v[lo] + (v[hi] - v[lo]) * (pos - static_cast<double>(lo));
}

// The checkpoint of `dir`, checked against `config` on the CPU (check_checkpoint); nothing when dir is empty.
std::optional<nvrar::engine::Checkpoint> open_checkpoint(const std::string& dir,
                                                         const nvrar::engine::ModelConfig& config) {
  if (dir.empty()) return std::nullopt;
  std::optional<nvrar::engine::Checkpoint> checkpoint(std::in_place, dir);
  nvrar::engine::check_checkpoint(config, *checkpoint);
  return checkpoint;
}

// The tensor-parallel group, with the communicator options the all-reduce backend needs (comm_adapter.h).
std::unique_ptr<nvrar::Communicator> make_comm(int tp, eg::AllReduceBackend backend) {
  auto comm = nvrar::Communicator::create(eg::communicator_options(backend));
  if (comm->size() != tp)
    throw Error(fmt::format("nvrar-llm: rank {}: --tp {} but the launcher started {} processes (one per GPU)",
                            comm->rank(), tp, comm->size()));
  return comm;
}

int run_bench(const BenchOptions& o) {
  // Inputs first (CPU only), then the GPU.
  if (o.batch < 1 || o.input_len < 1 || o.output_len < 1 || o.iters < 1 || o.warmup < 0)
    throw Error("nvrar-llm: batch size, input and output lengths and iterations must be positive");
  eg::EngineOptions eo;
  eo.max_batch = o.batch;
  eo.max_prefill = o.input_len;
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
  std::vector<int32_t> prompts(static_cast<std::size_t>(o.batch * o.input_len));
  for (auto& t : prompts) t = static_cast<int32_t>(rng() % static_cast<uint64_t>(config.vocab_size));

  cudaEvent_t a = nullptr, b = nullptr;
  cudaEventCreate(&a);
  cudaEventCreate(&b);
  std::vector<double> latencies_ms, prefill_ms, step_ms;
  const int total = o.warmup + o.iters;
  for (int it = 0; it < total; ++it) {
    cudaStreamSynchronize(model.stream());
    const auto t0 = std::chrono::steady_clock::now();
    cudaEventRecord(a, model.stream());
    model.prefill(prompts, o.batch, o.input_len);  // synchronises (returns the first tokens)
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
  // One instrumented eager decode step after a fresh prefill.
  model.prefill(prompts, o.batch, o.input_len);
  const eg::StepBreakdown br = model.timed_decode_step();

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
    fmt::print("Prefill (median): {:.2f} ms\n", percentile(prefill_ms, 50));
    fmt::print("Decode step (median over {} steps): {:.3f} ms\n", step_ms.size(), step_med);
    fmt::print("Throughput: {:.1f} output tokens/s\n", tokens_per_s);
    fmt::print("GEMM kernels (m x n x k, rank 0): {}\n", model.gemm_choices());
    fmt::print("Decode step split (one eager, instrumented step: {:.3f} ms): GEMM {:.3f} ms ({:.0f}%), attention {:.3f} "
               "ms ({:.0f}%), all-reduce {:.3f} ms ({:.0f}%), other {:.3f} ms ({:.0f}%)\n",
               br.total_us() / 1e3, br.gemm_us / 1e3, 100 * br.gemm_us / br.total_us(), br.attention_us / 1e3,
               100 * br.attention_us / br.total_us(), br.allreduce_us / 1e3, 100 * br.allreduce_us / br.total_us(),
               br.other_us / 1e3, 100 * br.other_us / br.total_us());
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
      j["latencies_s"] = nlohmann::json::array();
      for (double l : latencies_ms) j["latencies_s"].push_back(l / 1e3);
      j["avg_latency_s"] = avg / 1e3;
      j["prefill_ms_median"] = percentile(prefill_ms, 50);
      j["decode_step_ms_median"] = step_med;
      j["tokens_per_s"] = tokens_per_s;
      j["breakdown_us"] = {{"gemm", br.gemm_us}, {"attention", br.attention_us}, {"allreduce", br.allreduce_us},
                           {"other", br.other_us}};
      std::ofstream(o.json) << j.dump(2) << "\n";
    }
  }
  cudaEventDestroy(a);
  cudaEventDestroy(b);
  return 0;
}

// A reference file of scripts/hf_reference.py: prompts [batch][len], greedy tokens [step][batch] and logits
// [step][batch][vocab] of transformers.
struct Reference {
  std::vector<int32_t> prompts;  // [batch][len], row-major
  int64_t batch = 0, len = 0, steps = 0;
  std::vector<std::vector<int32_t>> tokens;
  std::vector<std::vector<std::vector<float>>> logits;
};

// Reads and checks a reference against the model's vocabulary; Error naming the file and the cause. The JSON goes
// through json_input: a depth limit while parsing, and every token and logit through a checked conversion (a token
// an int32, a logit finite and within a float), the field named, e.g. "logits[0][1][7]".
Reference load_reference(const std::string& path, int64_t vocab) {
  namespace ji = nvrar::json_input;
  std::ifstream f(path, std::ios::binary);
  if (!f) throw Error("nvrar-llm check: " + path + ": cannot open the reference");
  std::ostringstream text;
  text << f.rdbuf();
  if (f.bad()) throw Error("nvrar-llm check: " + path + ": error reading the reference");
  const std::string where = "nvrar-llm check: " + path;
  const ji::Json ref = ji::parse(text.str(), where);
  const auto not_reference = [&](const std::string& why) {
    throw Error(fmt::format("{}: not a reference file of scripts/hf_reference.py ({})", where, why));
  };
  if (!ref.is_object()) not_reference("the top level is " + ji::describe(ref));
  const auto array = [&](const ji::Json& v, const std::string& field) -> const ji::Json& {
    if (!v.is_array()) ji::fail_field(where, field, "wrong type: expected an array, got " + ji::describe(v));
    return v;
  };
  const auto member = [&](const char* key) -> const ji::Json& {
    const auto it = ref.find(key);
    if (it == ref.end()) not_reference(fmt::format("no field '{}'", key));
    return array(*it, key);
  };
  const auto token_rows = [&](const char* key) {
    const ji::Json& rows = member(key);
    std::vector<std::vector<int32_t>> out(rows.size());
    for (std::size_t i = 0; i < rows.size(); ++i) {
      const ji::Json& row = array(rows[i], fmt::format("{}[{}]", key, i));
      for (std::size_t j = 0; j < row.size(); ++j)
        out[i].push_back(ji::to_integer<int32_t>(row[j], where, fmt::format("{}[{}][{}]", key, i, j)));
    }
    return out;
  };
  Reference r;
  const std::vector<std::vector<int32_t>> prompts2d = token_rows("prompts");
  r.tokens = token_rows("tokens");
  const ji::Json& logits = member("logits");
  r.logits.resize(logits.size());
  for (std::size_t s = 0; s < logits.size(); ++s) {
    const ji::Json& step = array(logits[s], fmt::format("logits[{}]", s));
    for (std::size_t b = 0; b < step.size(); ++b) {
      const ji::Json& row = array(step[b], fmt::format("logits[{}][{}]", s, b));
      std::vector<float>& out = r.logits[s].emplace_back(row.size());
      for (std::size_t i = 0; i < row.size(); ++i) {
        // The common case without formatting a field name; anything else gets the checked conversion's error.
        const ji::Json& x = row[i];
        if (x.is_number() && std::abs(x.get<double>()) <= double(FLT_MAX))
          out[i] = static_cast<float>(x.get<double>());
        else
          out[i] = ji::to_float(x, where, fmt::format("logits[{}][{}][{}]", s, b, i));
      }
    }
  }
  auto bad = [&](const std::string& why) { throw Error(fmt::format("nvrar-llm check: {}: {}", path, why)); };
  r.batch = static_cast<int64_t>(prompts2d.size());
  r.steps = static_cast<int64_t>(r.tokens.size());
  if (r.batch == 0 || prompts2d[0].empty()) bad("no prompts");
  if (r.steps == 0) bad("no steps");
  r.len = static_cast<int64_t>(prompts2d[0].size());
  for (const auto& p : prompts2d) {
    if (static_cast<int64_t>(p.size()) != r.len) bad("prompts of different lengths");
    r.prompts.insert(r.prompts.end(), p.begin(), p.end());
  }
  auto in_vocab = [&](int32_t t) { return t >= 0 && t < vocab; };
  if (!std::all_of(r.prompts.begin(), r.prompts.end(), in_vocab))
    bad(fmt::format("a prompt token outside the model's vocabulary [0, {})", vocab));
  if (static_cast<int64_t>(r.logits.size()) != r.steps) bad("'logits' and 'tokens' have different step counts");
  for (int64_t s = 0; s < r.steps; ++s) {
    if (static_cast<int64_t>(r.tokens[s].size()) != r.batch || static_cast<int64_t>(r.logits[s].size()) != r.batch)
      bad(fmt::format("step {}: not one entry per prompt ({})", s, r.batch));
    if (!std::all_of(r.tokens[s].begin(), r.tokens[s].end(), in_vocab))
      bad(fmt::format("step {}: a token outside the model's vocabulary [0, {})", s, vocab));
    for (const auto& row : r.logits[s])
      if (static_cast<int64_t>(row.size()) != vocab)
        bad(fmt::format("step {}: {} logits, the model's vocabulary has {}", s, row.size(), vocab));
  }
  return r;
}

int run_check(const CheckOptions& o) {
  // Inputs first (CPU only), then the GPU.
  const eg::AllReduceBackend backend = eg::parse_allreduce_backend(o.allreduce);
  const nvrar::engine::ModelConfig config = nvrar::engine::load_config(o.model_dir + "/config.json");
  const Reference reference = load_reference(o.reference, config.vocab_size);
  const std::vector<int32_t>& prompts = reference.prompts;
  const auto& ref_tokens = reference.tokens;  // [step][batch]
  const auto& ref_logits = reference.logits;  // [step][batch][V]
  const int64_t batch = reference.batch, len = reference.len, steps = reference.steps;
  eg::EngineOptions eo;
  eo.max_batch = batch;
  eo.max_prefill = len;
  eo.max_seq = len + steps + 1;
  eo.allreduce = backend;
  eg::check_engine(config, o.tp, eo);
  std::optional<nvrar::engine::Checkpoint> checkpoint = open_checkpoint(o.model_dir, config);

  auto comm = make_comm(o.tp, backend);
  const bool root = comm->rank() == 0;
  eg::LlamaRunner model(config, *comm, eo);
  model.load_checkpoint(*checkpoint);
  // Teacher forcing: every decode step consumes the reference's token, so each step compares logits of the same
  // context even where a near tie made our greedy choice differ from transformers'. Per step and sequence:
  //  - every logit within atol + rtol x (largest |reference logit| of the step);
  //  - our sampled token (the device argmax over the vocabulary shards, merged across ranks) is the argmax of our
  //    own gathered logits (exact; equal values count as ties);
  //  - it equals the reference's token, or the reference ranks both within 2 x tolerance (a near tie the allowed
  //    logit error can flip), which is counted and printed. Given the logit bound this holds whenever the first
  //    two do, so it is a report of where and by how much greedy choices differ, not an extra condition.
  int bad = 0, near_ties = 0;
  std::vector<std::vector<int32_t>> ours;
  std::vector<int32_t> got = model.prefill(prompts, batch, len);
  for (int64_t s = 0; s < steps; ++s) {
    if (s > 0) {
      model.set_tokens(ref_tokens.at(s - 1));
      model.decode_step(!o.no_graph);
      got = model.tokens();
    }
    ours.push_back(got);
    const std::vector<float> logits = model.logits();
    const int64_t V = config.vocab_size;
    double max_diff = 0, max_ref = 0;
    int64_t worst = -1;
    for (int64_t b = 0; b < batch; ++b)
      for (int64_t v = 0; v < V; ++v) {
        const double r = ref_logits.at(s).at(b).at(v);
        const double d = std::fabs(logits[b * V + v] - r);
        max_ref = std::max(max_ref, std::fabs(r));
        if (d > max_diff) {
          max_diff = d;
          worst = b * V + v;
        }
      }
    const double tol = o.atol + o.rtol * max_ref;
    bool ok = max_diff <= tol;
    std::string notes;
    for (int64_t b = 0; b < batch; ++b) {
      const float* row = logits.data() + b * V;
      const float our_max = *std::max_element(row, row + V);
      if (got[b] < 0 || got[b] >= V || row[got[b]] != our_max) {
        ok = false;
        notes += fmt::format(" [seq {}: sampled {} is not the argmax of our logits]", b, got[b]);
        continue;
      }
      const int32_t want = ref_tokens.at(s).at(b);
      if (got[b] == want) continue;
      const double gap = ref_logits.at(s).at(b).at(want) - ref_logits.at(s).at(b).at(got[b]);
      if (gap <= 2 * tol) {
        ++near_ties;
        notes += fmt::format(" [seq {}: {} vs HF {}, near tie: HF gap {:.4f}]", b, got[b], want, gap);
      } else {
        ok = false;
        notes += fmt::format(" [seq {}: {} vs HF {}, HF gap {:.4f} > 2 x tolerance]", b, got[b], want, gap);
      }
    }
    if (!ok) ++bad;
    const std::string where =
        worst < 0 ? std::string("all equal") : fmt::format("worst at seq {} token {}", worst / V, worst % V);
    if (root && (!ok || !notes.empty() || s == 0 || s + 1 == steps))
      fmt::print("step {:>3}: max |logit - HF| = {:.4f} (tolerance {:.4f}, {}) {}{}\n", s, max_diff, tol, where,
                 ok ? "ok" : "MISMATCH", notes);
  }
  if (root && !o.tokens_out.empty()) {
    std::ofstream out(o.tokens_out);
    out << nlohmann::json(ours).dump() << "\n";
    if (!out) throw Error("nvrar-llm check: cannot write --tokens-out " + o.tokens_out);
  }
  if (root) fmt::print("GEMM kernels (m x n x k, rank 0): {}\n", model.gemm_choices());
  if (root)
    fmt::print("nvrar-llm check: TP {}, all-reduce {}, {} prompts x {} tokens, {} steps (teacher-forced): {}; "
               "greedy tokens equal HF's except {} near tie(s)\n",
               o.tp, o.allreduce, batch, len, steps, bad == 0 ? "PASSED" : "FAILED", near_ties);
  return bad == 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  constexpr int kExitOk = 0;
  constexpr int kExitError = 2;
  CLI::App app{"nvrar-llm: Llama-3 tensor-parallel inference with NVRAR or NCCL all-reduce"};
  app.footer("Exit status: 0 ok, 1 check mismatch, 2 usage, input or runtime error (message on stderr).");
  app.require_subcommand(1);
  // Ranges of the options: every one is checked here, before any file is read or any GPU touched. Batch and prompt
  // length are further bounded by check_engine (batch x input-len query rows in one prefill, at most 65535).
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
  bench->add_option("--input-len", b.input_len)->check(CLI::Range(int64_t{1}, int64_t{65535}));
  bench->add_option("--output-len", b.output_len)->check(CLI::Range(int64_t{1}, int64_t{1} << 20));
  bench->add_option("--num-iters-warmup", b.warmup)->check(CLI::Range(0, 1000000));
  bench->add_option("--num-iters", b.iters)->check(CLI::Range(1, 1000000));
  bench->add_option("--allreduce", b.allreduce, "nccl, nvrar (NVRAR's kernels only) or auto (NVRAR's tuner)")
      ->check(backends);
  bench->add_option("--json", b.json, "write the results as JSON");
  bench->add_option("--seed", b.seed);
  bench->add_flag("--no-graph", b.no_graph, "decode steps eagerly instead of CUDA graph replays");
  CheckOptions c;
  CLI::App* check = app.add_subcommand("check", "compare logits and greedy tokens with a transformers reference");
  check->add_option("--model-dir", c.model_dir, "HF checkpoint directory")->required();
  check->add_option("--reference", c.reference, "reference.json from scripts/hf_reference.py")->required();
  check->add_option("--tp", c.tp)->check(CLI::Range(1, 4096));
  check->add_option("--allreduce", c.allreduce)->check(backends);
  check->add_option("--atol", c.atol)->check(CLI::Range(0.0, 1e30));
  check->add_option("--rtol", c.rtol, "relative to the largest reference logit of the step")
      ->check(CLI::Range(0.0, 1e30));
  check->add_flag("--no-graph", c.no_graph);
  check->add_option("--tokens-out", c.tokens_out, "write our greedy tokens [step][batch] as JSON (rank 0)");
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
    for (const std::string* out : {&b.json, &c.tokens_out})
      if (!out->empty() && !std::ofstream(*out, std::ios::app))
        throw Error(fmt::format("nvrar-llm: {}: cannot open '{}' for writing",
                                out == &b.json ? "--json" : "--tokens-out", *out));
    if (*tokenize) return nvrar::llm::run_tokenize(t);
    if (*bench) return run_bench(b);
    return run_check(c);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s\n", e.what());
    std::fflush(stderr);
    std::_Exit(2);  // peers may be waiting in a collective: do not run NVSHMEM's collective teardown
  }
}
