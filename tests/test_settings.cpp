// The settings table (src/config/settings.h): defaults, each type's accepted and refused forms, ranges and overflow,
// and that docs/settings.md is the table's current rendering.
#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <sstream>
#include <string>

#include "config/settings.h"
#include "nvrar/types.h"

namespace nvrar::config {
namespace {

// read_settings() over a fixed environment instead of the process's.
Settings read(const std::map<std::string, std::string>& env) {
  return read_settings([&](const char* name) -> const char* {
    const auto it = env.find(name);
    return it == env.end() ? nullptr : it->second.c_str();
  });
}

// The message of the nvrar::Error that reading `name`=`value` throws ("" when it does not throw).
std::string refusal(const std::string& name, const std::string& value) {
  try {
    read({{name, value}});
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

void expect_refused(const std::string& name, const std::string& value, const std::string& problem) {
  const std::string message = refusal(name, value);
  EXPECT_NE(message.find("nvrar: environment variable " + name + "='" + value + "' " + problem), std::string::npos)
      << "message: '" << message << "'";
}

TEST(Settings, Defaults) {
  const Settings s = read({});
  EXPECT_EQ(s.gpus_per_node, 0);
  EXPECT_EQ(s.timeout_ms, 30000);
  EXPECT_EQ(s.host_chunk_units, 64);
  EXPECT_EQ(s.max_blocks, 0);
  EXPECT_EQ(s.chunk_units, 0);
  EXPECT_EQ(s.bulk_min_bytes, int64_t{1} << 20);
  EXPECT_EQ(s.bulk_sync, 0);
  EXPECT_EQ(s.registered_min_bytes, int64_t{1} << 20);
  EXPECT_EQ(s.registered_over_ll128_bytes, int64_t{32} << 20);
  EXPECT_EQ(s.push_piece_units, 512);
  EXPECT_EQ(s.pdl, 1);
  EXPECT_EQ(s.debug, 0);
  EXPECT_EQ(s.poll_sleep_ns, 0);
  EXPECT_EQ(s.inter_node_stores, 0);
  EXPECT_EQ(s.algo, "auto");
  EXPECT_EQ(s.model_preset, "h100-ndr400");
  EXPECT_EQ(s.tuning_file, "");
  EXPECT_EQ(s.tuning_dir, "");
  EXPECT_EQ(s.llm_gemm, "");
  EXPECT_EQ(s.llm_decode_attention, "");
  EXPECT_EQ(s.llm_residual, "bf16");
  EXPECT_EQ(s.llm_activations, "bf16");
  EXPECT_EQ(s.llm_fuse_epilogue, 1);
  EXPECT_EQ(s.llm_fuse_residual, 1);
}

TEST(Settings, EmptyMeansUnset) {
  const Settings s = read({{"NVRAR_TIMEOUT_MS", ""}, {"NVRAR_ALGO", ""}, {"NVRAR_PDL", ""}});
  EXPECT_EQ(s.timeout_ms, 30000);
  EXPECT_EQ(s.algo, "auto");
  EXPECT_EQ(s.pdl, 1);
}

TEST(Settings, Integer) {
  EXPECT_EQ(read({{"NVRAR_TIMEOUT_MS", "1"}}).timeout_ms, 1);
  EXPECT_EQ(read({{"NVRAR_TIMEOUT_MS", "86400000"}}).timeout_ms, 86400000);
  EXPECT_EQ(read({{"NVRAR_GPUS_PER_NODE", "4"}}).gpus_per_node, 4);
  for (const char* bad : {"abc", "12ms", " 5", "5 ", "+5", "0x10", "1.5", "-"})
    expect_refused("NVRAR_TIMEOUT_MS", bad, "is not an integer");
  EXPECT_EQ(refusal("NVRAR_TIMEOUT_MS", "abc"),
            "nvrar: environment variable NVRAR_TIMEOUT_MS='abc' is not an integer (an integer from 1 to 86400000 "
            "milliseconds)");
}

TEST(Settings, IntegerRangeAndOverflow) {
  // 2^32 + 1: the old int cast made this 1 ms.
  EXPECT_EQ(refusal("NVRAR_TIMEOUT_MS", "4294967297"),
            "nvrar: environment variable NVRAR_TIMEOUT_MS='4294967297' is out of range (an integer from 1 to "
            "86400000 milliseconds)");
  expect_refused("NVRAR_TIMEOUT_MS", "99999999999999999999", "is out of range");
  expect_refused("NVRAR_TIMEOUT_MS", "-99999999999999999999", "is out of range");
  expect_refused("NVRAR_TIMEOUT_MS", "0", "is out of range");
  expect_refused("NVRAR_TIMEOUT_MS", "86400001", "is out of range");
  expect_refused("NVRAR_GPUS_PER_NODE", "-1", "is out of range");
  expect_refused("NVRAR_GPUS_PER_NODE", "4097", "is out of range");
  expect_refused("NVRAR_HOST_CHUNK_UNITS", "0", "is out of range");
  expect_refused("NVRAR_MAX_BLOCKS", "1025", "is out of range");
  expect_refused("NVRAR_POLL_SLEEP_NS", "1000001", "is out of range");
}

TEST(Settings, Multiples) {
  EXPECT_EQ(read({{"NVRAR_CHUNK_UNITS", "0"}}).chunk_units, 0);  // 0: picked by size
  EXPECT_EQ(read({{"NVRAR_CHUNK_UNITS", "32"}}).chunk_units, 32);
  EXPECT_EQ(read({{"NVRAR_CHUNK_UNITS", "512"}}).chunk_units, 512);
  expect_refused("NVRAR_CHUNK_UNITS", "48", "is not a multiple of 32");
  expect_refused("NVRAR_CHUNK_UNITS", "16", "is out of range");
  expect_refused("NVRAR_CHUNK_UNITS", "544", "is out of range");
  EXPECT_EQ(read({{"NVRAR_PUSH_PIECE_UNITS", "128"}}).push_piece_units, 128);
  EXPECT_EQ(read({{"NVRAR_PUSH_PIECE_UNITS", "1048576"}}).push_piece_units, 1048576);
  expect_refused("NVRAR_PUSH_PIECE_UNITS", "0", "is out of range");
  expect_refused("NVRAR_PUSH_PIECE_UNITS", "200", "is not a multiple of 128");
  EXPECT_EQ(refusal("NVRAR_PUSH_PIECE_UNITS", "200"),
            "nvrar: environment variable NVRAR_PUSH_PIECE_UNITS='200' is not a multiple of 128 (a multiple of 128 "
            "from 128 to 1048576 units of 16 bytes)");
}

TEST(Settings, Size) {
  EXPECT_EQ(read({{"NVRAR_BULK_MIN_BYTES", "0"}}).bulk_min_bytes, 0);
  EXPECT_EQ(read({{"NVRAR_BULK_MIN_BYTES", "4096"}}).bulk_min_bytes, 4096);
  EXPECT_EQ(read({{"NVRAR_BULK_MIN_BYTES", "64K"}}).bulk_min_bytes, 64 * 1024);
  EXPECT_EQ(read({{"NVRAR_BULK_MIN_BYTES", "1M"}}).bulk_min_bytes, 1 << 20);
  EXPECT_EQ(read({{"NVRAR_REGISTERED_MIN_BYTES", "3G"}}).registered_min_bytes, int64_t{3} << 30);
  EXPECT_EQ(read({{"NVRAR_REGISTERED_OVER_LL128_BYTES", "1024G"}}).registered_over_ll128_bytes, int64_t{1} << 40);
  for (const char* bad : {"K", "1KB", "1k", "1T", "1.5M", "M1", "1 M", "abc"})
    expect_refused("NVRAR_BULK_MIN_BYTES", bad, "is not a byte count");
  expect_refused("NVRAR_BULK_MIN_BYTES", "1025G", "is out of range");
  expect_refused("NVRAR_BULK_MIN_BYTES", "-1K", "is out of range");
  expect_refused("NVRAR_BULK_MIN_BYTES", "99999999999999999999", "is out of range");
  expect_refused("NVRAR_BULK_MIN_BYTES", "9223372036854775807G", "is out of range");  // overflows int64 when scaled
}

TEST(Settings, Flag) {
  EXPECT_EQ(read({{"NVRAR_PDL", "0"}}).pdl, 0);
  EXPECT_EQ(read({{"NVRAR_DEBUG", "1"}}).debug, 1);
  EXPECT_EQ(read({{"NVRAR_BULK_SYNC", "1"}}).bulk_sync, 1);
  EXPECT_EQ(read({{"NVRAR_INTER_NODE_STORES", "1"}}).inter_node_stores, 1);
  for (const char* bad : {"2", "-1", "yes", "true", "01"}) expect_refused("NVRAR_PDL", bad, "is not a flag");
  EXPECT_EQ(refusal("NVRAR_PDL", "yes"), "nvrar: environment variable NVRAR_PDL='yes' is not a flag (0 or 1)");
}

TEST(Settings, Algorithm) {
  EXPECT_EQ(read({{"NVRAR_ALGO", "ll128"}}).algo, "ll128");
  EXPECT_EQ(read({{"NVRAR_ALGO", "twoshot"}}).algo, "twoshot");  // an older spelling parse_algorithm still takes
  for (int a = static_cast<int>(Algorithm::kAuto); a <= static_cast<int>(Algorithm::kPush); ++a) {
    const std::string name = algorithm_name(static_cast<Algorithm>(a));
    EXPECT_EQ(read({{"NVRAR_ALGO", name}}).algo, name);
  }
  expect_refused("NVRAR_ALGO", "fastest", "is not one of the accepted values");
  EXPECT_NE(refusal("NVRAR_ALGO", "fastest").find("auto, hierarchical, nccl, oneshot, registered, ll128, push"),
            std::string::npos);
}

TEST(Settings, ChoiceAndText) {
  EXPECT_EQ(read({{"NVRAR_LLM_GEMM", "cublaslt"}}).llm_gemm, "cublaslt");
  EXPECT_EQ(read({{"NVRAR_LLM_GEMM", "skinny3"}}).llm_gemm, "skinny3");
  expect_refused("NVRAR_LLM_GEMM", "skinny4", "is not a kernel name");
  expect_refused("NVRAR_LLM_GEMM", "CUBLASLT", "is not a kernel name");
  const std::string plan = "1x4096x4096=skinny0,8x6144x4096=cublaslt";
  EXPECT_EQ(read({{"NVRAR_LLM_GEMM", plan}}).llm_gemm, plan);
  expect_refused("NVRAR_LLM_GEMM", "1x4096=skinny0", "has an item '1x4096=skinny0' that does not start with a shape");
  EXPECT_NE(refusal("NVRAR_LLM_GEMM", "skinny9").find("comma-separated list of MxNxK=kernel"), std::string::npos);
  EXPECT_EQ(read({{"NVRAR_LLM_PREFILL_ATTENTION", "splitk"}}).llm_prefill_attention, "splitk");
  expect_refused("NVRAR_LLM_PREFILL_ATTENTION", "cudnn", "is not one of the accepted values");
  EXPECT_EQ(read({{"NVRAR_LLM_PREFILL_ATTENTION", "wgmma"}}).llm_prefill_attention, "wgmma");
  EXPECT_EQ(read({{"NVRAR_LLM_PREFILL_ATTENTION", "wgmma2"}}).llm_prefill_attention, "wgmma2");
  expect_refused("NVRAR_LLM_PREFILL_ATTENTION", "wgmma3", "is not one of the accepted values");
  EXPECT_EQ(read({{"NVRAR_LLM_PREFILL_ATTENTION", "flash128"}}).llm_prefill_attention, "flash128");
  EXPECT_EQ(read({{"NVRAR_LLM_DECODE_ATTENTION", "fused"}}).llm_decode_attention, "fused");
  expect_refused("NVRAR_LLM_DECODE_ATTENTION", "flash", "is not one of the accepted values");
  EXPECT_EQ(read({{"NVRAR_LLM_FUSE_EPILOGUE", "0"}}).llm_fuse_epilogue, 0);
  expect_refused("NVRAR_LLM_FUSE_EPILOGUE", "yes", "is not a flag");
  EXPECT_EQ(read({{"NVRAR_LLM_FUSE_RESIDUAL", "0"}}).llm_fuse_residual, 0);
  expect_refused("NVRAR_LLM_FUSE_RESIDUAL", "on", "is not a flag");
  EXPECT_EQ(read({{"NVRAR_LLM_ACTIVATIONS", "fp32"}}).llm_activations, "fp32");
  expect_refused("NVRAR_LLM_ACTIVATIONS", "float", "is not one of the accepted values");
  EXPECT_EQ(read({{"NVRAR_LLM_RESIDUAL", "fp32"}}).llm_residual, "fp32");
  EXPECT_EQ(read({{"NVRAR_LLM_RESIDUAL", "bf16"}}).llm_residual, "bf16");
  expect_refused("NVRAR_LLM_RESIDUAL", "FP32", "is not one of the accepted values");
  EXPECT_EQ(refusal("NVRAR_LLM_RESIDUAL", "fp16"),
            "nvrar: environment variable NVRAR_LLM_RESIDUAL='fp16' is not one of the accepted values (one of bf16, "
            "fp32)");
  EXPECT_EQ(read({{"NVRAR_MODEL_PRESET", "b200-xdr800"}}).model_preset, "b200-xdr800");
  EXPECT_EQ(read({{"NVRAR_TUNING_FILE", "/tmp/t.json"}}).tuning_file, "/tmp/t.json");
  EXPECT_EQ(read({{"NVRAR_TUNING_DIR", "tuning dir/x"}}).tuning_dir, "tuning dir/x");
  EXPECT_EQ(read({{"NVRAR_LIBRARY", "/opt/nvrar/lib/libnvrar_c.so"}}).python_library, "/opt/nvrar/lib/libnvrar_c.so");
  EXPECT_EQ(read({}).tune, "auto");
  EXPECT_EQ(read({{"NVRAR_TUNE", "force"}}).tune, "force");
  expect_refused("NVRAR_TUNE", "on", "is not one of the accepted values");
}

TEST(Settings, EveryRowIsDocumented) {
  const std::vector<SettingInfo>& table = setting_table();
  ASSERT_EQ(table.size(), 28u);  // one per member of Settings
  EXPECT_STREQ(table.front().name, "NVRAR_GPUS_PER_NODE");
  EXPECT_STREQ(table.back().name, "NVRAR_LLM_FUSE_RESIDUAL");
  for (const SettingInfo& row : table) {
    EXPECT_EQ(std::string(row.name).rfind("NVRAR_", 0), 0u) << row.name;
    EXPECT_GT(std::string(row.help).size(), 20u) << row.name << " has no help line";
    EXPECT_GT(std::string(row.accepted).size(), 0u) << row.name;
    EXPECT_TRUE(std::string(row.scope) == "collectives" || std::string(row.scope) == "engine") << row.name;
    EXPECT_EQ(std::string(row.help).find('|'), std::string::npos) << row.name << ": '|' breaks the markdown table";
  }
}

TEST(Settings, DescribeMarksTheSource) {
  const std::string text = describe_settings(read({{"NVRAR_TIMEOUT_MS", "500"}, {"NVRAR_BULK_MIN_BYTES", "64K"}}));
  EXPECT_NE(text.find("NVRAR_TIMEOUT_MS=500 (environment)\n"), std::string::npos) << text;
  EXPECT_NE(text.find("NVRAR_BULK_MIN_BYTES=64K (environment)\n"), std::string::npos) << text;
  EXPECT_NE(text.find("NVRAR_REGISTERED_OVER_LL128_BYTES=32M (default)\n"), std::string::npos) << text;
  EXPECT_NE(text.find("NVRAR_ALGO=auto (default)\n"), std::string::npos) << text;
  int lines = 0;
  for (char c : text) lines += c == '\n';
  EXPECT_EQ(lines, static_cast<int>(setting_table().size()));
}

TEST(Settings, DocsAreCurrent) {
  const std::string path = std::string(NVRAR_SOURCE_DIR) + "/docs/settings.md";
  std::ifstream file(path);
  ASSERT_TRUE(file) << "cannot open " << path;
  std::stringstream text;
  text << file.rdbuf();
  EXPECT_TRUE(text.str() == settings_markdown())
      << path << " differs from the settings table in src/config/settings.cpp; regenerate it with\n"
      << "  nvrar-settings --markdown > docs/settings.md";
}

}  // namespace
}  // namespace nvrar::config
