// `nvrar-llm generate` (generate.h): prompts -> token ids (src/text/), prefill and decode steps on the engine with
// the chosen sampling, EOS / token-limit stops per sequence, streamed text. Inputs (options, prompts, config.json,
// generation_config.json, tokenizer.json, the checkpoint's headers) are checked before any GPU is touched.
#include "llm/generate.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <memory>
#include <sstream>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "core/json_input.h"
#include "engine/checkpoint.h"
#include "engine/generation_config.h"
#include "engine/gpu/runner.h"
#include "llm/common.h"
#include "engine/llama_weights.h"
#include "engine/model_config.h"
#include "nvrar/nvrar.h"
#include "text/chat.h"
#include "text/tokenizer.h"

namespace nvrar::llm {

namespace {

using Clock = std::chrono::steady_clock;

// The prompts of --prompt or --prompt-file: one per non-empty line; a line that starts with '"' or '{' is JSON (a
// string, or an object whose "prompt" is one).
std::vector<std::string> read_prompts(const GenerateOptions& o) {
  if (o.prompt_file.empty()) return {o.prompt};
  std::ifstream f(o.prompt_file, std::ios::binary);
  if (!f) throw Error("nvrar-llm generate: --prompt-file " + o.prompt_file + ": cannot open");
  std::vector<std::string> prompts;
  std::string line;
  for (int number = 1; std::getline(f, line); ++number) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    const std::size_t start = line.find_first_not_of(" \t");
    if (start == std::string::npos) continue;
    if (line[start] != '"' && line[start] != '{') {
      prompts.push_back(line);
      continue;
    }
    const std::string where = fmt::format("nvrar-llm generate: {} line {}", o.prompt_file, number);
    const json_input::Json j = json_input::parse(line, where);
    if (j.is_string()) {
      prompts.push_back(j.get<std::string>());
    } else {
      const auto it = j.find("prompt");
      if (!j.is_object() || it == j.end())
        throw Error(where + ": a JSON line must be a string or an object with a \"prompt\" string");
      prompts.push_back(json_input::to_string(*it, where, "prompt"));
    }
  }
  if (prompts.empty()) throw Error("nvrar-llm generate: --prompt-file " + o.prompt_file + ": no prompts");
  return prompts;
}

void write_stdout(const std::string& text) {
  std::fwrite(text.data(), 1, text.size(), stdout);
  std::fflush(stdout);
}

}  // namespace

CLI::App* add_generate_command(CLI::App& app, GenerateOptions& o) {
  CLI::App* cmd = app.add_subcommand("generate", "generate text from prompts (streamed to stdout)");
  cmd->add_option("--model-dir", o.model_dir, "HF model directory (config.json, safetensors, tokenizer.json)")
      ->required();
  CLI::Option* prompt = cmd->add_option("--prompt", o.prompt, "the prompt");
  CLI::Option* file = cmd->add_option("--prompt-file", o.prompt_file, "prompts, one per line or JSONL: one batch");
  prompt->excludes(file);
  file->excludes(prompt);
  cmd->add_flag("--chat", o.chat, "wrap each prompt as a user turn in the model's chat template");
  cmd->add_option("--system", o.system, "--chat: a system message before each prompt");
  cmd->add_option("--max-tokens", o.max_tokens, "new tokens per sequence at most")
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 20));
  cmd->add_option("--temperature", o.temperature, "0: greedy (default: generation_config.json, else 0)");
  cmd->add_option("--top-p", o.top_p, "nucleus mass in (0, 1] (default: generation_config.json, else 1)");
  cmd->add_option("--top-k", o.top_k, "0: no top-k cut (default: generation_config.json, else 0)");
  cmd->add_option("--seed", o.seed, "seed of the draws (the same seed gives the same text at every TP size)");
  cmd->add_option("--tp", o.tp, "tensor-parallel degree (= processes of the launch)")->check(CLI::Range(1, 4096));
  cmd->add_option("--allreduce", o.allreduce, "nccl, nvrar or auto")->check(CLI::IsMember({"nccl", "nvrar", "auto"}));
  cmd->add_flag("--no-graph", o.no_graph, "decode steps eagerly instead of CUDA graph replays");
  cmd->add_option("--json", o.json, "rank 0 also writes {prompts, completions, tokens} as JSON to this file");
  return cmd;
}

int run_generate(const GenerateOptions& o) {
  // Inputs first (CPU only), then the GPU.
  if (o.prompt.empty() && o.prompt_file.empty())
    throw Error("nvrar-llm generate: give the prompt with --prompt or --prompt-file");
  if (!o.json.empty() && !std::ofstream(o.json, std::ios::app))
    throw Error("nvrar-llm generate: --json: cannot open '" + o.json + "' for writing");
  const std::filesystem::path dir = o.model_dir;
  const eg::AllReduceBackend backend = eg::parse_allreduce_backend(o.allreduce);
  const engine::ModelConfig config = engine::load_config(dir / "config.json");
  const engine::GenerationConfig generation = engine::load_generation_config(dir, config.vocab_size);
  engine::SamplingParams sampling = generation.sampling;
  if (o.temperature) sampling.temperature = *o.temperature;
  if (o.top_p) sampling.top_p = *o.top_p;
  if (o.top_k) sampling.top_k = *o.top_k;
  sampling.seed = o.seed;
  engine::check_sampling_params(sampling, "nvrar-llm generate");
  const text::Tokenizer tokenizer = text::Tokenizer::from_file(dir / "tokenizer.json");
  const std::vector<std::string> prompts = read_prompts(o);
  std::vector<std::vector<int32_t>> ids;
  if (o.chat) {
    const text::ChatFormat chat = text::ChatFormat::from_model_dir(dir);
    for (const std::string& p : prompts) {
      std::vector<text::ChatMessage> messages;
      if (!o.system.empty()) messages.push_back({"system", o.system});
      messages.push_back({"user", p});
      ids.push_back(tokenizer.encode(chat.render(messages, /*add_generation_prompt=*/true), false));
    }
  } else {
    for (const std::string& p : prompts) ids.push_back(tokenizer.encode(p, true));
  }
  const int64_t batch = static_cast<int64_t>(ids.size());
  int64_t len = 0, total = 0;  // the longest prompt, all prompt tokens (prompts of any lengths form one batch)
  for (int64_t b = 0; b < batch; ++b) {
    if (ids[b].empty()) throw Error(fmt::format("nvrar-llm generate: prompt {} has no tokens", b));
    len = std::max<int64_t>(len, static_cast<int64_t>(ids[b].size()));
    total += static_cast<int64_t>(ids[b].size());
    for (const int32_t t : ids[b])
      if (t < 0 || t >= config.vocab_size)
        throw Error(fmt::format("nvrar-llm generate: prompt {}: token {} outside the model's vocabulary [0, {}) "
                                "(tokenizer.json and config.json disagree)",
                                b, t, config.vocab_size));
  }
  eg::EngineOptions eo;
  eo.max_batch = batch;
  eo.prefill_chunk = std::min(eg::default_prefill_chunk(o.tp), total);
  eo.max_seq = len + o.max_tokens + 1;
  eo.allreduce = backend;
  eg::check_engine(config, o.tp, eo);
  engine::Checkpoint checkpoint(dir);
  engine::check_checkpoint(config, checkpoint);

  auto comm = make_comm(o.tp, backend);
  const bool root = comm->rank() == 0;
  eg::LlamaRunner model(config, *comm, eo);
  model.load_checkpoint(checkpoint);
  model.set_sampling(sampling);
  if (root)
    std::fprintf(stderr, "nvrar-llm generate: %lld prompt(s), up to %lld tokens, TP %d, all-reduce %s, %s\n",
                 static_cast<long long>(batch), static_cast<long long>(len), o.tp, o.allreduce.c_str(),
                 sampling.temperature == 0 ? "greedy"
                                           : fmt::format("temperature {} top-k {} top-p {} seed {}", sampling.temperature,
                                                         sampling.top_k, sampling.top_p, sampling.seed)
                                                 .c_str());

  const auto is_eos = [&](int32_t t) {
    return std::find(generation.eos_token_ids.begin(), generation.eos_token_ids.end(), t) !=
           generation.eos_token_ids.end();
  };
  std::vector<std::vector<int32_t>> generated(batch);
  std::vector<bool> finished(batch, false);
  std::vector<text::StreamDecoder> decoders(batch, text::StreamDecoder(tokenizer));
  std::vector<std::string> completions(batch);
  int64_t live = batch, new_tokens = 0;
  const auto take = [&](const std::vector<int32_t>& tokens) {  // one step's tokens: record, stream, stop
    for (int64_t b = 0; b < batch; ++b) {
      if (finished[b]) continue;
      ++new_tokens;
      if (is_eos(tokens[b])) {
        finished[b] = true;
        --live;
        continue;
      }
      generated[b].push_back(tokens[b]);
      const std::string piece = decoders[b].push(tokens[b]);
      completions[b] += piece;
      if (root && batch == 1) write_stdout(piece);
      if (static_cast<int64_t>(generated[b].size()) >= o.max_tokens) {
        finished[b] = true;
        --live;
      }
    }
  };
  const Clock::time_point start = Clock::now();
  take(model.prefill(ids));
  const Clock::time_point first = Clock::now();
  int64_t steps = 0;
  while (live > 0) {
    model.decode_step(!o.no_graph);
    ++steps;
    take(model.tokens());
  }
  const Clock::time_point end = Clock::now();
  for (int64_t b = 0; b < batch; ++b) {
    const std::string rest = decoders[b].finish();
    completions[b] += rest;
    if (root && batch == 1) write_stdout(rest + "\n");
    if (root && batch > 1) write_stdout(fmt::format("### completion {}\n{}\n", b, completions[b]));
  }
  if (root) {
    const double ttft_ms = std::chrono::duration<double, std::milli>(first - start).count();
    const double decode_s = std::chrono::duration<double>(end - first).count();
    const double total_s = std::chrono::duration<double>(end - start).count();
    std::fprintf(stderr,
                 "time to first token: %.2f ms; %lld new tokens in %.3f s (%.1f tokens/s overall, %.1f tokens/s over "
                 "%lld decode steps)\n",
                 ttft_ms, static_cast<long long>(new_tokens), total_s, static_cast<double>(new_tokens) / total_s,
                 decode_s > 0 ? static_cast<double>(new_tokens - batch) / decode_s : 0.0,
                 static_cast<long long>(steps));
    if (!o.json.empty()) {
      std::ofstream out(o.json);
      out << nlohmann::json{{"prompts", prompts}, {"completions", completions}, {"tokens", generated}}.dump(2) << "\n";
      if (!out) throw Error("nvrar-llm generate: --json: cannot write " + o.json);
    }
  }
  return 0;
}

}  // namespace nvrar::llm
