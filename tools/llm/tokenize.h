// `tokenize`: the tokenizer of src/text/ on the command line, for scripts and checks. A subcommand of nvrar-llm
// (tools/nvrar_llm.cpp) and of the CPU-only nvrar-tokenize (tools/llm/tokenize_main.cpp), which CI can run.
//   tokenize --tokenizer tokenizer.json (--text T | --file F) [--no-special]      ids as a JSON array
//   tokenize --tokenizer tokenizer.json --decode (--text '[1,2]' | --file F) [--skip-special]     the text
//   tokenize ... --batch            input: a JSON array of texts (or with --decode, of id arrays); output: one array
//   tokenize ... --chat MODEL_DIR   input: a JSON array of {"role", "content"}: the rendered chat prompt's ids (with
//                                   the assistant header); --show-text prints the rendered prompt instead
//   tokenize ... --bench [--bench-seconds S]    encoding speed of the input on one thread, in MB/s
#pragma once

#include <string>

#include <CLI/CLI.hpp>

namespace nvrar::llm {

struct TokenizeOptions {
  std::string tokenizer;
  std::string text;
  std::string file;
  bool decode = false;
  bool batch = false;
  bool no_special = false;
  bool skip_special = false;
  std::string chat_dir;
  bool show_text = false;
  bool bench = false;
  double bench_seconds = 2.0;
};

// Registers the subcommand on `app`; the options land in `options` when it is parsed.
CLI::App* add_tokenize_command(CLI::App& app, TokenizeOptions& options);
// Runs it; exit status 0, or throws nvrar::Error (the caller prints it and exits 2).
int run_tokenize(const TokenizeOptions& options);

}  // namespace nvrar::llm
