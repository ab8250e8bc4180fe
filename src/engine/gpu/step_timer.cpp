// The per-phase breakdown of one decode step (step_timer.h).
#include "engine/gpu/step_timer.h"

#include <cuda_runtime.h>

namespace nvrar::engine::gpu {

namespace {
constexpr int kEnd = -1;  // the closing mark of finish(): no phase starts there
}  // namespace

StepTimer::~StepTimer() {
  for (auto& [kind, e] : marks_) cudaEventDestroy(e);
}

void StepTimer::record(int kind) {
  cudaEvent_t e = nullptr;
  cudaEventCreate(&e);
  cudaEventRecord(e, stream_);
  marks_.emplace_back(kind, e);
}

void StepTimer::mark(StepPart part) { record(static_cast<int>(part)); }

StepBreakdown StepTimer::finish() {
  record(kEnd);
  cudaEventSynchronize(marks_.back().second);
  StepBreakdown b;
  for (std::size_t i = 0; i + 1 < marks_.size(); ++i) {
    float ms = 0;
    cudaEventElapsedTime(&ms, marks_[i].second, marks_[i + 1].second);
    const double us = ms * 1e3;
    switch (static_cast<StepPart>(marks_[i].first)) {
      case StepPart::kGemm:
        b.gemm_us += us;
        break;
      case StepPart::kAttention:
        b.attention_us += us;
        break;
      case StepPart::kAllReduce:
        b.allreduce_us += us;
        break;
      default:
        b.other_us += us;
    }
  }
  for (auto& [kind, e] : marks_) cudaEventDestroy(e);
  marks_.clear();
  return b;
}

}  // namespace nvrar::engine::gpu
