// `nvrar-llm generate`: text in, text out, on the engine (src/engine/gpu) with the tokenizer and chat format of
// src/text/. One process per GPU, launched like `bench` (mpirun / srun / torchrun), --tp and --allreduce as there.
//   generate --model-dir D (--prompt TEXT | --prompt-file F) [--chat] [--system S] [--max-tokens N]
//            [--temperature T] [--top-p P] [--top-k K] [--seed S] [--tp N] [--allreduce nccl|nvrar|auto] [--no-graph]
//            [--json OUT]
// A prompt file holds one prompt per line, or JSONL (each line a JSON string, or an object with "prompt"); all its
// prompts run as one batch. Sampling defaults come from the model's generation_config.json (greedy without one);
// generation stops per sequence at an EOS id (generation_config.json, else config.json) or after --max-tokens.
// Rank 0 streams the text of a single prompt to stdout as it is generated (a batch: each completion when done) and
// prints time to first token and tokens/s to stderr.
#pragma once

#include <optional>
#include <string>

#include <CLI/CLI.hpp>

namespace nvrar::llm {

struct GenerateOptions {
  std::string model_dir;
  std::string prompt;
  std::string prompt_file;
  bool chat = false;
  std::string system;
  int64_t max_tokens = 256;
  std::optional<float> temperature;
  std::optional<float> top_p;
  std::optional<int> top_k;
  uint64_t seed = 0;
  int tp = 1;
  std::string allreduce = "auto";
  bool no_graph = false;
  std::string json;  // rank 0 writes {prompts, completions, tokens} here
};

// Registers the subcommand on `app`; the options land in `options` when it is parsed.
CLI::App* add_generate_command(CLI::App& app, GenerateOptions& options);
// Runs it; exit status 0, or throws nvrar::Error (the caller prints it and exits 2).
int run_generate(const GenerateOptions& options);

}  // namespace nvrar::llm
