// Transitional: the old accessors of the environment knobs, now answered by the settings table
// (config/settings.h), so code not yet converted keeps compiling. New code uses config::settings() directly; this
// header and param.cpp go once src/gpu/ is converted.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <string>

#include "config/settings.h"

namespace nvrar::core {

using config::debug_stage;

// The variable's text, or `fallback` when unset or empty (NVRAR_ALGO, NVRAR_MODEL_PRESET, NVRAR_TUNING_FILE,
// NVRAR_TUNING_DIR; config::settings() holds the same values, NVRAR_ALGO checked).
inline std::string read_env_string(const char* name, const std::string& fallback) {
  const char* text = std::getenv(name);
  return text == nullptr || *text == '\0' ? fallback : std::string(text);
}

inline int64_t param_GpusPerNode() { return config::settings().gpus_per_node; }
inline int64_t param_TimeoutMs() { return config::settings().timeout_ms; }
inline int64_t param_HostChunkUnits() { return config::settings().host_chunk_units; }
inline int64_t param_MaxBlocks() { return config::settings().max_blocks; }
inline int64_t param_ChunkUnits() { return config::settings().chunk_units; }
inline int64_t param_BulkMinBytes() { return config::settings().bulk_min_bytes; }
inline int64_t param_BulkSync() { return config::settings().bulk_sync; }
inline int64_t param_RegisteredMinBytes() { return config::settings().registered_min_bytes; }
inline int64_t param_RegisteredOverLl128Bytes() { return config::settings().registered_over_ll128_bytes; }
inline int64_t param_PushPieceUnits() { return config::settings().push_piece_units; }
inline int64_t param_Pdl() { return config::settings().pdl; }
inline int64_t param_Debug() { return config::settings().debug; }
inline int64_t param_PollSleepNs() { return config::settings().poll_sleep_ns; }
inline int64_t param_InterNodeStores() { return config::settings().inter_node_stores; }

}  // namespace nvrar::core
