// docs/reliability.md's table of bad inputs, checked: every row's command is run against the built tools, and its
// exit status and a piece of its stderr must be what the row says. The table is the specification; this file only
// knows how to read it and how to write the input files a row describes.
//
// A row is `| bad input | `command` | `stderr contains` | exit status |`. The command is a shell command line whose
// tool (nvrar-bench, nvrar-model, nvrar-llm, nvrar-settings) is replaced by the built one (paths from CMake); it runs
// in a fresh directory, under `timeout`. Placeholders in the command (and {path:...} in the expected text):
//   {file:NAME=TEXT}   writes TEXT into NAME (folders created), stands for its path
//   {write:NAME=TEXT}  writes TEXT into NAME, stands for nothing
//   {dir:NAME}         creates the folder NAME, stands for its path
//   {path:NAME}        the path of NAME (unquoted: for the expected text)
//   {repeat:N:TEXT}    TEXT N times
//   {safetensors:TEXT} a safetensors file whose JSON header is TEXT: its 8-byte little-endian length, then TEXT
//   {config}           a small valid config.json (kSmallConfig below)
// Placeholders nest; a placeholder's braces must balance, which JSON's do.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cctype>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <ostream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

namespace fs = std::filesystem;

// A Llama of 64 hidden units, 1 layer, 2 heads of 32, vocabulary 64: valid, and small enough to read in a table.
constexpr const char* kSmallConfig =
    R"({"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 1, "num_attention_heads": 2, )"
    R"("num_key_value_heads": 2, "vocab_size": 64})";

struct Tool {
  const char* name;
  const char* path;  // empty: not in this build
};

constexpr Tool kTools[] = {
    {"nvrar-bench", NVRAR_BENCH_PATH},
    {"nvrar-model", NVRAR_MODEL_PATH},
    {"nvrar-settings", NVRAR_SETTINGS_PATH},
    {"nvrar-llm", NVRAR_LLM_PATH},
};

struct Row {
  int line = 0;  // in docs/reliability.md
  std::string input;
  std::string command;
  std::string expected;
  int exit_status = -1;
};

// The cells of a Markdown table line, trimmed, `\|` unescaped, surrounding backticks removed.
std::vector<std::string> cells(const std::string& line) {
  std::vector<std::string> out;
  std::string cell;
  for (std::size_t i = 1; i < line.size(); ++i) {
    if (line[i] == '\\' && i + 1 < line.size() && line[i + 1] == '|') {
      cell += '|';
      ++i;
    } else if (line[i] == '|') {
      out.push_back(cell);
      cell.clear();
    } else {
      cell += line[i];
    }
  }
  for (std::string& c : out) {
    const std::size_t b = c.find_first_not_of(' ');
    const std::size_t e = c.find_last_not_of(' ');
    c = b == std::string::npos ? std::string() : c.substr(b, e - b + 1);
    if (c.size() >= 2 && c.front() == '`' && c.back() == '`') c = c.substr(1, c.size() - 2);
  }
  return out;
}

// The rows of the table whose header starts "| Bad input | Command |". Throws on a malformed row.
std::vector<Row> read_table() {
  std::ifstream doc(NVRAR_RELIABILITY_DOC);
  if (!doc) throw std::runtime_error(std::string("cannot open ") + NVRAR_RELIABILITY_DOC);
  std::vector<Row> rows;
  std::string line;
  bool in_table = false;
  for (int n = 1; std::getline(doc, line); ++n) {
    if (!in_table) {
      in_table = line.rfind("| Bad input | Command |", 0) == 0;
      continue;
    }
    if (line.rfind("|---", 0) == 0 || line.rfind("| ---", 0) == 0) continue;  // the header's separator
    if (line.empty() || line[0] != '|') break;
    const std::vector<std::string> c = cells(line);
    if (c.size() != 4)
      throw std::runtime_error("docs/reliability.md line " + std::to_string(n) + ": expected 4 cells");
    Row r;
    r.line = n;
    r.input = c[0];
    r.command = c[1];
    r.expected = c[2];
    r.exit_status = std::stoi(c[3]);
    rows.push_back(r);
  }
  return rows;
}

// How gtest names a row in its output (instead of the struct's bytes).
void PrintTo(const Row& row, std::ostream* os) { *os << "docs/reliability.md line " << row.line << ": " << row.input; }

const std::vector<Row>& table() {
  static const std::vector<Row> rows = [] {
    try {
      return read_table();
    } catch (const std::exception& e) {
      std::fprintf(stderr, "test_bad_inputs: %s\n", e.what());
      return std::vector<Row>{};
    }
  }();
  return rows;
}

std::string quoted(const std::string& s) { return "'" + s + "'"; }

// Expands the placeholders of `text`, writing files under `dir`.
class Expander {
 public:
  explicit Expander(fs::path dir) : dir_(std::move(dir)) {}

  std::string expand(const std::string& text) {
    std::string out;
    for (std::size_t i = 0; i < text.size();) {
      const std::size_t end = text[i] == '{' ? placeholder_end(text, i) : std::string::npos;
      if (end == std::string::npos) {
        out += text[i++];
        continue;
      }
      out += apply(text.substr(i + 1, end - i - 1));
      i = end + 1;
    }
    return out;
  }

 private:
  static bool is_placeholder(const std::string& text, std::size_t at) {
    for (const char* k : {"file:", "write:", "dir:", "path:", "repeat:", "safetensors:", "config}"})
      if (text.compare(at + 1, std::string(k).size(), k) == 0) return true;
    return false;
  }

  // The index of the '}' closing the placeholder that opens at `at`, npos when none opens there.
  static std::size_t placeholder_end(const std::string& text, std::size_t at) {
    if (!is_placeholder(text, at)) return std::string::npos;
    int depth = 0;
    for (std::size_t i = at; i < text.size(); ++i) {
      if (text[i] == '{') ++depth;
      if (text[i] == '}' && --depth == 0) return i;
    }
    throw std::runtime_error("unbalanced braces in placeholder: " + text.substr(at, 60));
  }

  std::string apply(const std::string& body) {
    const std::size_t colon = body.find(':');
    const std::string kind = body.substr(0, colon);
    const std::string rest = colon == std::string::npos ? std::string() : body.substr(colon + 1);
    if (kind == "config") return kSmallConfig;
    if (kind == "path") return (dir_ / rest).string();
    if (kind == "dir") {
      fs::create_directories(dir_ / rest);
      return quoted((dir_ / rest).string());
    }
    if (kind == "repeat") {
      const std::size_t sep = rest.find(':');
      const long n = std::stol(rest.substr(0, sep));
      const std::string unit = expand(rest.substr(sep + 1));
      std::string out;
      out.reserve(unit.size() * static_cast<std::size_t>(n));
      for (long k = 0; k < n; ++k) out += unit;
      return out;
    }
    if (kind == "safetensors") {
      const std::string header = expand(rest);
      std::string out;
      for (int b = 0; b < 8; ++b) out.push_back(static_cast<char>((uint64_t{header.size()} >> (8 * b)) & 0xff));
      return out + header;
    }
    // file, write
    const std::size_t eq = rest.find('=');
    const fs::path path = dir_ / rest.substr(0, eq);
    fs::create_directories(path.parent_path());
    std::ofstream(path, std::ios::binary) << expand(rest.substr(eq + 1));
    return kind == "file" ? quoted(path.string()) : std::string();
  }

  fs::path dir_;
};

// The command with each tool name replaced by its built path (under `timeout`); empty when a tool is not built.
std::string with_tools(const std::string& command, std::string* missing) {
  std::string out = command;
  for (const Tool& t : kTools) {
    const std::string name = t.name;
    for (std::size_t at = out.find(name); at != std::string::npos; at = out.find(name, at + 1)) {
      const bool starts = at == 0 || out[at - 1] == ' ';
      const bool ends = at + name.size() == out.size() || out[at + name.size()] == ' ';
      if (!starts || !ends) continue;
      if (std::string(t.path).empty()) {
        *missing = name;
        return {};
      }
      const std::string run = "timeout 120 " + quoted(t.path);
      out.replace(at, name.size(), run);
      at += run.size() - 1;
    }
  }
  return out;
}

struct Outcome {
  int status = -1;  // exit status; -1: killed by a signal
  std::string err;
};

Outcome run_shell(const std::string& command) {
  Outcome o;
  FILE* pipe = popen((command + " 2>&1 >/dev/null").c_str(), "r");
  if (pipe == nullptr) return o;
  std::array<char, 4096> buffer{};
  for (std::size_t n; (n = std::fread(buffer.data(), 1, buffer.size(), pipe)) > 0;) o.err.append(buffer.data(), n);
  const int raw = pclose(pipe);
  o.status = WIFEXITED(raw) ? WEXITSTATUS(raw) : -1;
  return o;
}

class BadInput : public ::testing::TestWithParam<Row> {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("nvrar_bad_inputs_" + std::to_string(::getpid()) + "_" + std::to_string(GetParam().line));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path dir_;
};

TEST_P(BadInput, ExitStatusAndMessage) {
  const Row& row = GetParam();
  Expander expander(dir_);
  std::string missing;
  const std::string command = with_tools(expander.expand(row.command), &missing);
  if (command.empty()) GTEST_SKIP() << missing << " is not in this build";
  const std::string expected = expander.expand(row.expected);
  const Outcome o = run_shell("cd " + quoted(dir_.string()) + " && " + command);
  SCOPED_TRACE("docs/reliability.md line " + std::to_string(row.line) + ": " + row.input);
  EXPECT_EQ(o.status, row.exit_status) << "command: " << row.command << "\nstderr: " << o.err;
  EXPECT_NE(o.err.find(expected), std::string::npos)
      << "command: " << row.command << "\nstderr lacks: " << expected << "\nstderr: " << o.err;
  for (const char* crash : {"terminate called", "Segmentation fault", "AddressSanitizer", "runtime error:"})
    EXPECT_EQ(o.err.find(crash), std::string::npos) << "stderr: " << o.err;
}

std::string row_name(const ::testing::TestParamInfo<Row>& info) {
  std::string tool = "other";
  for (const Tool& t : kTools)
    if (info.param.command.find(t.name) != std::string::npos) tool = t.name;
  std::string name = "line" + std::to_string(info.param.line) + "_" + tool;
  for (char& ch : name)
    if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
  return name;
}

INSTANTIATE_TEST_SUITE_P(Reliability, BadInput, ::testing::ValuesIn(table()), row_name);

// The table exists and covers every tool (a broken header would otherwise leave nothing to check).
TEST(ReliabilityTable, HasRowsForEveryTool) {
  ASSERT_GE(table().size(), 20u) << "docs/reliability.md: table '| Bad input | Command |' not found or short";
  for (const Tool& t : kTools) {
    bool found = false;
    for (const Row& r : table()) found = found || r.command.find(t.name) != std::string::npos;
    EXPECT_TRUE(found) << "no row runs " << t.name;
  }
}

}  // namespace
