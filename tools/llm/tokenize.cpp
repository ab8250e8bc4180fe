// The tokenize subcommand (tokenize.h): reads the input, runs the tokenizer or the chat format, prints JSON or text.
#include "llm/tokenize.h"

#include <time.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <sstream>

#include <fmt/format.h>

#include "core/json_input.h"
#include "nvrar/types.h"
#include "text/chat.h"
#include "text/tokenizer.h"

namespace nvrar::llm {

namespace ji = nvrar::json_input;
using nvrar::text::Tokenizer;

namespace {

std::string read_input(const TokenizeOptions& o) {
  if (o.file.empty()) return o.text;
  std::ifstream in(o.file, std::ios::binary);
  std::ostringstream text;
  if (!in || !(text << in.rdbuf())) {
    if (in && in.peek() == std::ifstream::traits_type::eof()) return "";
    throw Error("nvrar-llm: tokenize: --file '" + o.file + "': cannot read the file");
  }
  return std::move(text).str();
}

std::string where_of(const TokenizeOptions& o) {
  return o.file.empty() ? std::string("nvrar-llm: tokenize: --text") : "nvrar-llm: tokenize: --file " + o.file;
}

std::vector<int32_t> ids_of(const nlohmann::json& value, const std::string& where, const std::string& field) {
  if (!value.is_array()) ji::fail_field(where, field, "expected an array of token ids, got " + ji::describe(value));
  std::vector<int32_t> ids;
  ids.reserve(value.size());
  for (std::size_t i = 0; i < value.size(); ++i)
    ids.push_back(ji::to_integer<int32_t>(value[i], where, field + "[" + std::to_string(i) + "]"));
  return ids;
}

void write_stdout(std::string_view text) {
  if (std::fwrite(text.data(), 1, text.size(), stdout) != text.size() || std::fflush(stdout) != 0)
    throw Error("nvrar-llm: tokenize: cannot write to standard output");
}

// What --chat renders: the model directory's chat format over the input's messages, with the generation prompt.
std::string render_chat(const TokenizeOptions& o, const std::string& input) {
  const std::string where = where_of(o);
  const nlohmann::json messages = ji::parse(input, where);
  if (!messages.is_array()) throw Error(where + ": expected a JSON array of {\"role\", \"content\"} messages");
  std::vector<text::ChatMessage> list;
  for (std::size_t i = 0; i < messages.size(); ++i) {
    const std::string field = "[" + std::to_string(i) + "]";
    if (!messages[i].is_object()) ji::fail_field(where, field, "expected an object, got " + ji::describe(messages[i]));
    list.push_back({ji::to_string(messages[i].value("role", nlohmann::json()), where, field + ".role"),
                    ji::to_string(messages[i].value("content", nlohmann::json()), where, field + ".content")});
  }
  return text::ChatFormat::from_model_dir(o.chat_dir).render(list, true);
}

double thread_cpu_seconds() {
  timespec t{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) + 1e-9 * static_cast<double>(t.tv_nsec);
}

// Encodes the input repeatedly on this thread for at least --bench-seconds. Speed is reported against wall time and
// against the thread's CPU time (the honest one-core figure on a shared machine, where the wall clock also counts
// time the thread waited for a core).
int run_bench(const Tokenizer& tok, const TokenizeOptions& o, const std::string& input) {
  if (input.empty()) throw Error("nvrar-llm: tokenize: --bench needs a non-empty input");
  using Clock = std::chrono::steady_clock;
  std::size_t tokens = tok.encode(input, false).size();  // warm-up (and the merge cache, as in real use)
  const auto start = Clock::now();
  const double cpu_start = thread_cpu_seconds();
  std::size_t rounds = 0;
  double seconds = 0;
  do {
    tokens = tok.encode(input, false).size();
    ++rounds;
    seconds = std::chrono::duration<double>(Clock::now() - start).count();
  } while (seconds < o.bench_seconds);
  const double cpu_seconds = thread_cpu_seconds() - cpu_start;
  const double megabytes = static_cast<double>(input.size()) * static_cast<double>(rounds) / 1e6;
  write_stdout(fmt::format("{{\"bytes\": {}, \"tokens\": {}, \"rounds\": {}, \"seconds\": {:.3f}, "
                           "\"cpu_seconds\": {:.3f}, \"mb_per_s\": {:.2f}, \"mb_per_cpu_s\": {:.2f}, "
                           "\"tokens_per_s\": {:.0f}}}\n",
                           input.size(), tokens, rounds, seconds, cpu_seconds, megabytes / seconds,
                           megabytes / cpu_seconds, static_cast<double>(tokens * rounds) / seconds));
  return 0;
}

}  // namespace

CLI::App* add_tokenize_command(CLI::App& app, TokenizeOptions& o) {
  CLI::App* cmd = app.add_subcommand("tokenize", "text to token ids as a JSON array, or --decode ids to text");
  cmd->add_option("--tokenizer", o.tokenizer, "tokenizer.json (byte-level BPE: Llama-3.x, GPT-2 style)")
      ->required();
  CLI::Option* text = cmd->add_option("--text", o.text, "the input");
  CLI::Option* file = cmd->add_option("--file", o.file, "read the input from this file (bytes as they are)");
  text->excludes(file);
  file->excludes(text);
  cmd->add_flag("--decode", o.decode, "the input is a JSON array of ids: print their text (no newline added)");
  cmd->add_flag("--batch", o.batch, "the input is a JSON array of texts (or id arrays): print an array of results");
  cmd->add_flag("--no-special", o.no_special, "no BOS or other post-processor tokens around the ids");
  cmd->add_flag("--skip-special", o.skip_special, "--decode: leave special tokens out of the text");
  cmd->add_option("--chat", o.chat_dir, "model directory: the input is a JSON array of messages to render");
  cmd->add_flag("--show-text", o.show_text, "--chat: print the rendered prompt, not its ids");
  cmd->add_flag("--bench", o.bench, "measure encoding speed on one thread (MB/s)");
  cmd->add_option("--bench-seconds", o.bench_seconds, "--bench: measure at least this long")
      ->check(CLI::Range(0.0, 3600.0));
  return cmd;
}

int run_tokenize(const TokenizeOptions& o) {
  if (o.text.empty() && o.file.empty() && !o.bench)
    throw Error("nvrar-llm: tokenize: give the input with --text or --file");
  const std::string input = read_input(o);
  if (!o.chat_dir.empty() && o.show_text) {
    write_stdout(render_chat(o, input));
    return 0;
  }
  const Tokenizer tok = Tokenizer::from_file(o.tokenizer);
  if (o.bench) return run_bench(tok, o, input);
  const std::string where = where_of(o);
  if (!o.chat_dir.empty()) {
    write_stdout(nlohmann::json(tok.encode(render_chat(o, input), false)).dump() + "\n");
    return 0;
  }
  if (o.decode) {
    const nlohmann::json value = ji::parse(input, where);
    if (!o.batch) {
      write_stdout(tok.decode(ids_of(value, where, "ids"), o.skip_special));
      return 0;
    }
    if (!value.is_array()) throw Error(where + ": expected a JSON array of id arrays");
    nlohmann::json texts = nlohmann::json::array();
    for (std::size_t i = 0; i < value.size(); ++i)
      texts.push_back(tok.decode(ids_of(value[i], where, "[" + std::to_string(i) + "]"), o.skip_special));
    // Decoded text is valid UTF-8 (repaired as HF repairs it), so dump() cannot fail on it.
    write_stdout(texts.dump() + "\n");
    return 0;
  }
  if (!o.batch) {
    write_stdout(nlohmann::json(tok.encode(input, !o.no_special)).dump() + "\n");
    return 0;
  }
  const nlohmann::json value = ji::parse(input, where);
  if (!value.is_array()) throw Error(where + ": expected a JSON array of texts");
  std::string out = "[";
  for (std::size_t i = 0; i < value.size(); ++i) {
    if (i) out += ",\n";
    out += nlohmann::json(tok.encode(ji::to_string(value[i], where, "[" + std::to_string(i) + "]"), !o.no_special))
               .dump();
  }
  write_stdout(out + "]\n");
  return 0;
}

}  // namespace nvrar::llm
