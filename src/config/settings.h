// Every NVRAR_* environment variable, declared once in one table (settings.cpp) from which the parsing, the
// validation, docs/settings.md and the debug print are all derived. The environment is read once per process, on the
// first call of settings(); a malformed or out-of-range value is an nvrar::Error naming the variable, the value and
// the accepted form, never a silent default or a silently truncated number.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace nvrar::config {

// The values in force. read_settings() fills every member; the defaults live in the table only.
struct Settings {
  int64_t gpus_per_node;                // NVRAR_GPUS_PER_NODE
  int64_t timeout_ms;                   // NVRAR_TIMEOUT_MS
  int64_t host_chunk_units;             // NVRAR_HOST_CHUNK_UNITS
  int64_t max_blocks;                   // NVRAR_MAX_BLOCKS
  int64_t chunk_units;                  // NVRAR_CHUNK_UNITS
  int64_t bulk_min_bytes;               // NVRAR_BULK_MIN_BYTES
  int64_t bulk_sync;                    // NVRAR_BULK_SYNC
  int64_t registered_min_bytes;         // NVRAR_REGISTERED_MIN_BYTES
  int64_t registered_over_ll128_bytes;  // NVRAR_REGISTERED_OVER_LL128_BYTES
  int64_t push_piece_units;             // NVRAR_PUSH_PIECE_UNITS
  int64_t pdl;                          // NVRAR_PDL
  int64_t debug;                        // NVRAR_DEBUG
  int64_t poll_sleep_ns;                // NVRAR_POLL_SLEEP_NS
  int64_t inter_node_stores;            // NVRAR_INTER_NODE_STORES
  std::string algo;                     // NVRAR_ALGO (a name parse_algorithm takes)
  std::string model_preset;             // NVRAR_MODEL_PRESET (checked by the selection module, where it is used)
  std::string tuning_file;              // NVRAR_TUNING_FILE
  std::string tuning_dir;               // NVRAR_TUNING_DIR
  std::string python_library;           // NVRAR_LIBRARY (read by the Python package, python/nvrar/_library.py)
  std::string tune;                     // NVRAR_TUNE (off, auto, force)
  std::string llm_gemm;                 // NVRAR_LLM_GEMM (empty: the engine times its GEMM candidates)
  std::string llm_prefill_attention;    // NVRAR_LLM_PREFILL_ATTENTION (empty or "flash": tensor cores where possible)
  std::string llm_decode_attention;     // NVRAR_LLM_DECODE_ATTENTION (empty, "splitk", "fused" or "mma")
  std::string llm_decode_kernel;        // NVRAR_LLM_DECODE_KERNEL ("layers" or "persistent")
  std::string llm_residual;             // NVRAR_LLM_RESIDUAL ("bf16" or "fp32": the residual stream's type)
  std::string llm_activations;          // NVRAR_LLM_ACTIVATIONS ("bf16" or "fp32": GEMM outputs and residual)
  int64_t llm_fuse_epilogue;            // NVRAR_LLM_FUSE_EPILOGUE
  int64_t llm_fuse_residual;            // NVRAR_LLM_FUSE_RESIDUAL
};

// The process environment's settings, read on the first call (thread-safe) and kept. Throws nvrar::Error on a bad
// value, on this and every later call, so no caller ever runs with a half-read environment.
const Settings& settings();

// The settings that getenv_fn gives (nullptr or "" for an unset variable); no process state, for tests.
Settings read_settings(const std::function<const char*(const char*)>& getenv_fn);

// One variable as the documentation shows it. type: "integer", "size", "flag", "choice", "string" or "path";
// scope: "collectives" (the all-reduce library) or "engine" (nvrar-llm).
struct SettingInfo {
  const char* name;
  const char* type;
  const char* default_text;
  const char* accepted;
  const char* help;
  const char* scope;
};

// One row per variable, in the order of Settings' members.
const std::vector<SettingInfo>& setting_table();

// The full text of docs/settings.md (nvrar-settings --markdown writes it).
std::string settings_markdown();

// One "NVRAR_X=value (default)" or "NVRAR_X=value (environment)" line per variable, in table order: "default"
// where the value equals the table's default, "environment" where it differs. Sizes print with their K/M/G suffix.
std::string describe_settings(const Settings& s);

// With NVRAR_DEBUG=1, prints describe_settings(settings()) to stderr, each line prefixed "nvrar: rank R setting: ";
// once per process (the first caller's rank), however many communicators it sets up.
void print_settings_if_debug(int rank);

// Prints "nvrar: rank R setup: <what>" to stderr when NVRAR_DEBUG=1 (where a hanging launch stopped).
void debug_stage(int rank, const std::string& what);

}  // namespace nvrar::config
