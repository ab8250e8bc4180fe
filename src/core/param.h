// Environment knobs. Every tunable is declared once with NVRAR_PARAM(name, "ENV_VAR", default) and read
// through param_<name>(), which parses the variable on first use and caches it. A malformed value is an
// nvrar::Error naming the variable, never a silent default.
#pragma once

#include <cstdint>
#include <string>

namespace nvrar::core {

// Parses an integer environment variable; `fallback` when unset or empty. Throws nvrar::Error when malformed.
int64_t read_env_int(const char* name, int64_t fallback);
// The variable's text, or `fallback` when unset or empty.
std::string read_env_string(const char* name, const std::string& fallback);

// Prints "nvrar: rank R setup: <what>" to stderr when NVRAR_DEBUG=1.
void debug_stage(int rank, const std::string& what);
}  // namespace nvrar::core

#define NVRAR_PARAM(name, env, default_value)                                            \
  inline int64_t param_##name() {                                                        \
    static const int64_t value = ::nvrar::core::read_env_int(env, default_value);        \
    return value;                                                                        \
  }

namespace nvrar::core {
// Ranks per (virtual) node; 0 means "take it from the launcher" (or all ranks, for the CPU executor).
NVRAR_PARAM(GpusPerNode, "NVRAR_GPUS_PER_NODE", 0)
// How long any wait for a peer may spin before the call fails with a message naming the peer.
NVRAR_PARAM(TimeoutMs, "NVRAR_TIMEOUT_MS", 30000)
// Units (16 bytes) per chunk in the CPU executor; the GPU kernels pick theirs from the launch shape.
NVRAR_PARAM(HostChunkUnits, "NVRAR_HOST_CHUNK_UNITS", 64)
// GPU: most thread blocks a hierarchical call may use (0: the SM count, capped at gpu::kMaxBlocks).
NVRAR_PARAM(MaxBlocks, "NVRAR_MAX_BLOCKS", 0)
// GPU: 16-byte units per chunk (= threads per block, 32..512); 0 picks by size (hierarchical_chunk_units).
NVRAR_PARAM(ChunkUnits, "NVRAR_CHUNK_UNITS", 0)
// Calls of at least this many bytes move their intra-node phases in bulk form: plain 16-byte units plus a flag
// per chunk (half the bytes of flagged cells, one more flag round trip). Both executors. 1 MiB: where the two forms
// cross on 4 x H100 as 1 x 4 (docs/perf-notes.md, v4); a tuning table's "bulk" field overrides it per size.
NVRAR_PARAM(BulkMinBytes, "NVRAR_BULK_MIN_BYTES", int64_t{1} << 20)
// GPU, bulk form: 0 release store per flag and acquire polls; 1 one system-scope fence then relaxed flag stores,
// relaxed polls and one fence after (see gpu/device/device_units.cuh, BulkSync).
NVRAR_PARAM(BulkSync, "NVRAR_BULK_SYNC", 0)
// GPU, auto with a registered input (allocate_buffer) on one node: the registered two-shot from this size up, over
// the tuning table's choice (copy-in two-shot or NCCL) unless that is the LL128 two-shot. 1 MiB: below it, its two
// handshakes (~10 us fixed) lose to the copy-in forms; from it, it measured at or below both and NCCL up to 64 MiB
// (4 x H100, docs/perf-notes.md); the LL128 two-shot beats it where the tables pick LL128.
NVRAR_PARAM(RegisteredMinBytes, "NVRAR_REGISTERED_MIN_BYTES", int64_t{1} << 20)
// GPU, auto with a registered input: from this size the registered two-shot also replaces the table's LL128 choice.
// Both are bound by NVLink there and LL128 also carries its flag words (8 of every 128 bytes): 2 x H100, 32 MB
// 108.3 vs 109.5 us, 64 MB 206.8 vs 219.4; 16 MB 57.9 vs 57.6 (bench/results/2026-11-27-h100-v6).
NVRAR_PARAM(RegisteredOverLl128Bytes, "NVRAR_REGISTERED_OVER_LL128_BYTES", int64_t{32} << 20)
// GPU, push two-shot: 16-byte units per piece (a multiple of 128): the data behind one flag. Larger pieces mean fewer
// release stores and waits, smaller ones more pieces per warp to pipeline. Part of the setup agreement (every rank
// the same).
NVRAR_PARAM(PushPieceUnits, "NVRAR_PUSH_PIECE_UNITS", 512)
// GPU: 1 launches NVRAR's kernels with programmatic dependent launch (Hopper and later: the next kernel is scheduled
// while the previous one drains), 0 plain launches.
NVRAR_PARAM(Pdl, "NVRAR_PDL", 1)
// 1: every rank prints each setup stage to stderr (where a hanging launch stops).
NVRAR_PARAM(Debug, "NVRAR_DEBUG", 0)
// GPU: nanoseconds a waiting thread sleeps between failed polls of a cell (0: spin).
NVRAR_PARAM(PollSleepNs, "NVRAR_POLL_SLEEP_NS", 0)
// GPU: 1 stores inter-node cells straight through an NVLink peer pointer when the partner has one (virtual
// nodes on one host); 0 (default) always uses NVSHMEM puts, the path a real multi-node job takes.
NVRAR_PARAM(InterNodeStores, "NVRAR_INTER_NODE_STORES", 0)
// Prints "nvrar: rank R setup: <what>" to stderr when NVRAR_DEBUG=1.
void debug_stage(int rank, const std::string& what);
}  // namespace nvrar::core
