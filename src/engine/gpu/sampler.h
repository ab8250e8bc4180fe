// Sampling over the vocabulary-parallel lm_head: each rank holds the logits of its vocabulary shard
// [vocab_begin, vocab_begin + vocab_cols) for the rows of a step.
//  - Greedy (temperature 0, the default): argmax_rows picks each row's best of the shard, an NCCL all-gather of the
//    per-rank (value, index) winners follows (two all-gathers of `rows` elements, skipped at one rank), and
//    argmax_merge keeps the best (largest value, then smallest index), identical on every rank.
//  - Temperature / top-k / top-p (set_params): an NCCL all-gather of the rows' shards (rows x vocab x 2 bytes; none
//    at one rank), then every rank runs the same kernel on the same full rows (sampling.h), so all draw the same
//    tokens; the draw is keyed by seed, sequence and position, not by rank or TP size.
// Also the slow path that gathers the full-vocabulary logits to the host (`nvrar-llm check`).
#pragma once

#include <cuda_runtime_api.h>
#include <nccl.h>

#include <cstdint>
#include <vector>

#include "engine/gpu/device_memory.h"
#include "engine/gpu/layers.h"
#include "engine/sampling_reference.h"

namespace nvrar::engine::gpu {

class Sampler {
 public:
  // nccl: the tensor-parallel group of `ranks` ranks (this one `rank`); at most max_rows rows per call.
  Sampler(ncclComm_t nccl, int rank, int ranks, int64_t max_rows, int64_t vocab_begin, int64_t vocab_cols,
          int64_t vocab_size);

  // tokens[r] = the argmax over the whole vocabulary of row r of the logits [rows][vocab_cols] (this rank's shard).
  // Stream-ordered and graph-capturable; nothing allocated.
  void greedy(const bf16_t* logits, int64_t rows, int32_t* tokens, cudaStream_t stream);

  // The parameters of sample() from now on (checked; the first non-greedy ones allocate the gather buffer and the
  // kernel's workspace, max_rows x vocab x 2 bytes and up to 16 MiB).
  void set_params(const SamplingParams& params);
  const SamplingParams& params() const { return params_; }
  // tokens[r] for each of `rows` rows: greedy() at temperature 0, else the sampling kernel, row r being sequence r
  // and its new token at position positions[position_rows ? position_rows[r] : r] + 1. Graph-capturable.
  void sample(const bf16_t* logits, int64_t rows, const int32_t* positions, const int32_t* position_rows,
              int32_t* tokens, cudaStream_t stream);

  // The full-vocabulary logits [rows][vocab_size] of every rank's shard as fp32, on the host (allocates, synchronises).
  std::vector<float> gather_logits(const bf16_t* logits, int64_t rows, cudaStream_t stream);

 private:
  ncclComm_t nccl_;
  int rank_;
  int ranks_;
  int64_t max_rows_;
  int64_t vocab_begin_;
  int64_t vocab_cols_;
  int64_t vocab_size_;
  DeviceMemory memory_;
  // [ranks + 1][max_rows]: the all-gathered winners of every rank, then this rank's own (the all-gather's input)
  float* best_value_ = nullptr;
  int32_t* best_index_ = nullptr;
  SamplingParams params_;
  bf16_t* gathered_ = nullptr;  // [ranks][max_rows][vocab_cols] (ranks > 1)
  void* workspace_ = nullptr;   // sampling_workspace_bytes(max_rows)
};

}  // namespace nvrar::engine::gpu
