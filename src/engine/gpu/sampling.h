// Temperature / top-k / top-p sampling of full-vocabulary rows of bf16 logits on the GPU, exactly as the CPU
// reference (engine/sampling_reference.h) computes it: the same masks, the same fixed-point weights and, for the
// same seed, sequence and position, the same token. Every rank of a TP group runs it on the same all-gathered rows,
// so every rank draws the same tokens. Stream-ordered, graph-capturable, nothing allocated per call.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

#include "engine/gpu/layers.h"
#include "engine/sampling_reference.h"

namespace nvrar::engine::gpu {

// `rows` rows of logits as an all-gather leaves them: `shards` blocks [shards][rows][shard_cols]; token v of a row is
// column v % shard_cols of shard v / shard_cols (one shard: a plain [rows][vocab] array).
struct GatheredLogits {
  const bf16_t* data = nullptr;
  int64_t rows = 0;
  int64_t shard_cols = 0;
  int shards = 1;
  int64_t vocab() const { return shard_cols * shards; }
};

// What tests read back: per row, the kept mask [rows][vocab] (1: survives top-k and top-p) and the kept total weight.
struct SamplingTrace {
  uint8_t* keep = nullptr;
  uint64_t* total = nullptr;
};

// Device workspace for rows of up to max_rows (a 2^16-bin histogram per concurrently sampled row, at most 256).
std::size_t sampling_workspace_bytes(int64_t max_rows);

// tokens[r] = the token drawn from row r under params (temperature > 0; greedy rows go through Sampler::greedy).
// Row r is sequence r of the batch; the drawn token's position is positions[position_rows ? position_rows[r] : r]
// + 1 (the position of the row's last input token, plus one). workspace: sampling_workspace_bytes(max_rows), with
// logits.rows <= max_rows. trace: optional, for tests.
void sample_rows(const GatheredLogits& logits, const SamplingParams& params, const int32_t* positions,
                 const int32_t* position_rows, int32_t* tokens, void* workspace, int64_t max_rows,
                 cudaStream_t stream, const SamplingTrace* trace = nullptr);

}  // namespace nvrar::engine::gpu
