// nvrar-tokenize: nvrar-llm's tokenize subcommand as a CPU-only program (nvrar-llm needs CUDA to build), for CI and
// for scripts on machines without a GPU build: `nvrar-tokenize tokenize --tokenizer F --text T` (tools/llm/tokenize.h).
// Exit status: 0 ok, 2 usage, input or runtime error (message on stderr).
#include <cstdio>
#include <exception>

#include <CLI/CLI.hpp>

#include "llm/tokenize.h"

int main(int argc, char** argv) {
  CLI::App app{"nvrar-tokenize: nvrar-llm's tokenizer commands without the GPU engine"};
  app.require_subcommand(1);
  nvrar::llm::TokenizeOptions options;
  nvrar::llm::add_tokenize_command(app, options);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
  try {
    return nvrar::llm::run_tokenize(options);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 2;
  }
}
