// nvrar-llm checks its inputs before it touches a GPU: a broken config.json, safetensors file or reference is
// reported as such (non-zero exit, stderr naming the file and the cause) on a machine with or without a GPU. Runs
// the built tool (NVRAR_LLM_PATH) on files written into a per-test directory; CPU only.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <array>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <string>

#include "engine_test_support.h"

namespace {

using nvrar::engine::test_support::TempDirTest;

struct ToolRun {
  int status = -1;     // exit status of the tool
  std::string output;  // its stderr (stdout discarded)
};

ToolRun run_llm(const std::string& args) {
  const std::string command = std::string("'") + NVRAR_LLM_PATH + "' " + args + " 2>&1 >/dev/null";
  ToolRun r;
  FILE* pipe = popen(command.c_str(), "r");
  if (pipe == nullptr) {
    ADD_FAILURE() << "cannot run " << command;
    return r;
  }
  std::array<char, 4096> buffer{};
  std::size_t n = 0;
  while ((n = std::fread(buffer.data(), 1, buffer.size(), pipe)) > 0) r.output.append(buffer.data(), n);
  const int raw = pclose(pipe);
  r.status = WIFEXITED(raw) ? WEXITSTATUS(raw) : -1;
  return r;
}

void write(const std::filesystem::path& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary) << bytes;
}

// The model of scripts/hf_reference.py: hidden 256, 2 layers, 8 query / 4 KV heads, head_dim 32, vocabulary 512.
const char* kTinyConfig = R"({"architectures": ["LlamaForCausalLM"], "hidden_size": 256, "intermediate_size": 512,
  "num_hidden_layers": 2, "num_attention_heads": 8, "num_key_value_heads": 4, "head_dim": 32, "vocab_size": 512,
  "rms_norm_eps": 1e-5, "rope_theta": 500000.0, "max_position_embeddings": 1024, "tie_word_embeddings": false,
  "torch_dtype": "bfloat16"})";

// A safetensors file: 8-byte little-endian header length, the JSON header, then `data_bytes` zero bytes.
std::string safetensors(const std::string& header, std::size_t data_bytes) {
  std::string out;
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((uint64_t(header.size()) >> (8 * i)) & 0xff));
  return out + header + std::string(data_bytes, '\0');
}

// The output names `file` and `cause`, and says nothing of GPUs, CUDA or NCCL (the tool got no further).
void expect_input_error(const ToolRun& r, const std::string& file, const std::string& cause) {
  EXPECT_NE(r.status, 0) << r.output;
  EXPECT_HAS(r.output, file);
  EXPECT_HAS(r.output, cause);
  for (const char* gpu : {"GPU", "CUDA", "cuda", "NCCL", "device"})
    EXPECT_EQ(r.output.find(gpu), std::string::npos) << "mentions '" << gpu << "': " << r.output;
}

class LlmInputs : public TempDirTest {};

TEST_F(LlmInputs, BrokenConfigJson) {
  write(dir_ / "config.json", R"({"hidden_size": 256, )");
  const std::string config = (dir_ / "config.json").string();
  expect_input_error(run_llm("bench --model '" + dir_.string() + "'"), config, "not valid JSON");
  expect_input_error(run_llm("bench --model-dir '" + dir_.string() + "'"), config, "not valid JSON");
  write(dir_ / "reference.json", "{}");
  expect_input_error(
      run_llm("check --model-dir '" + dir_.string() + "' --reference '" + (dir_ / "reference.json").string() + "'"),
      config, "not valid JSON");
}

TEST_F(LlmInputs, ConfigFieldOutOfRange) {
  write(dir_ / "config.json", R"({"hidden_size": 256, "intermediate_size": 512, "num_hidden_layers": 2,
    "num_attention_heads": 8, "num_key_value_heads": 3, "vocab_size": 512})");
  expect_input_error(run_llm("bench --model '" + dir_.string() + "'"), (dir_ / "config.json").string(),
                     "num_key_value_heads");
}

TEST_F(LlmInputs, TruncatedSafetensors) {
  write(dir_ / "config.json", kTinyConfig);
  // embed_tokens [512, 256] bf16 is 262144 bytes; the file holds 100 of them.
  write(dir_ / "model.safetensors",
        safetensors(R"({"model.embed_tokens.weight":{"dtype":"BF16","shape":[512,256],"data_offsets":[0,262144]}})",
                    100));
  const std::string file = (dir_ / "model.safetensors").string();
  expect_input_error(run_llm("bench --model-dir '" + dir_.string() + "'"), file, "truncated");
  // check reads the reference too; a valid one (1 prompt of 2 tokens, 1 step) leaves the checkpoint to blame.
  std::string logits = "[";
  for (int v = 0; v < 512; ++v) logits += (v ? ",0" : "0");
  logits += "]";
  write(dir_ / "reference.json",
        R"({"prompts": [[1, 2]], "tokens": [[3]], "logits": [[)" + logits + "]]}");
  expect_input_error(
      run_llm("check --model-dir '" + dir_.string() + "' --reference '" + (dir_ / "reference.json").string() + "'"),
      file, "truncated");
}

TEST_F(LlmInputs, TensorShapeAgainstConfig) {
  write(dir_ / "config.json", kTinyConfig);
  write(dir_ / "model.safetensors",
        safetensors(R"({"model.embed_tokens.weight":{"dtype":"BF16","shape":[4,4],"data_offsets":[0,32]}})", 32));
  const ToolRun r = run_llm("bench --model-dir '" + dir_.string() + "'");
  expect_input_error(r, (dir_ / "model.safetensors").string(), "model.embed_tokens.weight");
  EXPECT_HAS(r.output, "shape");
}

TEST_F(LlmInputs, MissingShardOfIndex) {
  write(dir_ / "config.json", kTinyConfig);
  write(dir_ / "model.safetensors.index.json",
        R"({"metadata": {}, "weight_map": {"model.embed_tokens.weight": "model-00001-of-00002.safetensors"}})");
  expect_input_error(run_llm("bench --model-dir '" + dir_.string() + "'"),
                     (dir_ / "model.safetensors.index.json").string(), "does not exist");
}

TEST_F(LlmInputs, BrokenReference) {
  write(dir_ / "config.json", kTinyConfig);
  write(dir_ / "reference.json", R"({"prompts": [[1, 2]], "tokens": [[3]]})");
  const std::string reference = (dir_ / "reference.json").string();
  expect_input_error(run_llm("check --model-dir '" + dir_.string() + "' --reference '" + reference + "'"), reference,
                     "logits");
}

}  // namespace
