// The per-phase breakdown of one decode step or prefill: CUDA events recorded on the engine's stream between phases,
// the time from one mark to the next counted for the earlier mark's kind of work. Used only by the instrumented,
// eager step and prefill (LlamaRunner::timed_decode_step, timed_prefill); graph-replayed and ordinary eager steps
// and prefills pass no timer and record nothing.
#pragma once

#include <cuda_runtime_api.h>

#include <utility>
#include <vector>

namespace nvrar::engine::gpu {

// Time of one decode step by kind (microseconds).
struct StepBreakdown {
  double gemm_us = 0;
  double attention_us = 0;  // RoPE, KV append, attention (RoPE + append under gemm where a skinny GEMM does it)
  double allreduce_us = 0;  // the fused all-reduce + residual + RMSNorm calls
  double other_us = 0;      // embedding, first norm, SwiGLU (under gemm where fused), argmax and its all-gather
  double total_us() const { return gemm_us + attention_us + allreduce_us + other_us; }
};

enum class StepPart { kGemm, kAttention, kAllReduce, kOther };

class StepTimer {
 public:
  explicit StepTimer(cudaStream_t stream) : stream_(stream) {}
  ~StepTimer();
  StepTimer(const StepTimer&) = delete;
  StepTimer& operator=(const StepTimer&) = delete;

  // Work enqueued on the stream from here to the next mark counts as `part`.
  void mark(StepPart part);
  // Closes the last phase, waits for it and sums the phases; the marks are consumed.
  StepBreakdown finish();

 private:
  void record(int kind);

  cudaStream_t stream_;
  std::vector<std::pair<int, cudaEvent_t>> marks_;  // (StepPart, or kEnd for the closing mark; event)
};

}  // namespace nvrar::engine::gpu
