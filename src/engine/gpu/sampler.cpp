// Sampling over the vocabulary-parallel lm_head: greedy, or the sampling kernel on all-gathered rows (sampler.h).
#include "engine/gpu/sampler.h"

#include "engine/gpu/sampling.h"

#include <cuda_runtime.h>

#include <cstring>

#include <fmt/format.h>

#include "engine/sampling_math.h"
#include "nvrar/types.h"

namespace nvrar::engine::gpu {

namespace {

void nccl_check(ncclResult_t r, const char* what, int rank) {
  if (r != ncclSuccess) throw Error(fmt::format("nvrar-llm: rank {} {}: {}", rank, what, ncclGetErrorString(r)));
}

}  // namespace

Sampler::Sampler(ncclComm_t nccl, int rank, int ranks, int64_t max_rows, int64_t vocab_begin, int64_t vocab_cols,
                 int64_t vocab_size)
    : nccl_(nccl),
      rank_(rank),
      ranks_(ranks),
      max_rows_(max_rows),
      vocab_begin_(vocab_begin),
      vocab_cols_(vocab_cols),
      vocab_size_(vocab_size),
      memory_(rank) {
  best_value_ = memory_.f32((ranks_ + 1) * max_rows_, "sampling");
  best_index_ = memory_.i32((ranks_ + 1) * max_rows_, "sampling");
}

void Sampler::greedy(const bf16_t* logits, int64_t rows, int32_t* tokens, cudaStream_t stream) {
  float* local_v = best_value_ + ranks_ * max_rows_;
  int32_t* local_i = best_index_ + ranks_ * max_rows_;
  argmax_rows(logits, rows, vocab_cols_, vocab_begin_, local_v, local_i, stream);
  if (ranks_ > 1) {
    nccl_check(ncclAllGather(local_v, best_value_, static_cast<size_t>(rows), ncclFloat32, nccl_, stream),
               "sampling all-gather", rank_);
    nccl_check(ncclAllGather(local_i, best_index_, static_cast<size_t>(rows), ncclInt32, nccl_, stream),
               "sampling all-gather", rank_);
    argmax_merge(best_value_, best_index_, ranks_, rows, tokens, stream);
  } else {
    argmax_merge(local_v, local_i, 1, rows, tokens, stream);
  }
}

void Sampler::set_params(const SamplingParams& params) {
  check_sampling_params(params, fmt::format("nvrar-llm: rank {} sampling", rank_));
  if (params.temperature > 0 && workspace_ == nullptr) {
    if (vocab_cols_ * ranks_ != vocab_size_ || vocab_size_ > sampling::kMaxVocab)
      throw Error(fmt::format("nvrar-llm: rank {} sampling: a vocabulary of {} in {} shards of {} (sampling needs "
                              "equal shards and at most {} tokens)",
                              rank_, vocab_size_, ranks_, vocab_cols_, sampling::kMaxVocab));
    if (ranks_ > 1) gathered_ = memory_.bf16(max_rows_ * vocab_size_, "sampling logits gather");
    workspace_ = memory_.allocate(sampling_workspace_bytes(max_rows_), "sampling workspace");
  }
  params_ = params;
}

void Sampler::sample(const bf16_t* logits, int64_t rows, const int32_t* positions, const int32_t* position_rows,
                     int32_t* tokens, cudaStream_t stream) {
  if (params_.temperature == 0) {
    greedy(logits, rows, tokens, stream);
    return;
  }
  GatheredLogits full{logits, rows, vocab_cols_, 1};
  if (ranks_ > 1) {
    nccl_check(ncclAllGather(logits, gathered_, static_cast<size_t>(rows * vocab_cols_), ncclBfloat16, nccl_, stream),
               "sampling logits all-gather", rank_);
    full = GatheredLogits{gathered_, rows, vocab_cols_, ranks_};
  }
  sample_rows(full, params_, positions, position_rows, tokens, workspace_, max_rows_, stream);
}

std::vector<float> Sampler::gather_logits(const bf16_t* logits, int64_t rows, cudaStream_t stream) {
  const std::size_t shard = static_cast<std::size_t>(rows * vocab_cols_);
  void* gathered = nullptr;
  cuda_check(cudaMalloc(&gathered, shard * ranks_ * 2), "logits gather buffer", rank_);
  if (ranks_ > 1)
    nccl_check(ncclAllGather(logits, gathered, shard, ncclBfloat16, nccl_, stream), "logits all-gather", rank_);
  else
    cuda_check(cudaMemcpyAsync(gathered, logits, shard * 2, cudaMemcpyDeviceToDevice, stream), "logits copy", rank_);
  std::vector<uint16_t> host(shard * ranks_);
  cuda_check(cudaMemcpyAsync(host.data(), gathered, host.size() * 2, cudaMemcpyDeviceToHost, stream), "logits", rank_);
  cuda_check(cudaStreamSynchronize(stream), "logits", rank_);
  cudaFree(gathered);
  std::vector<float> out(static_cast<std::size_t>(rows * vocab_size_));
  for (int r = 0; r < ranks_; ++r)
    for (int64_t row = 0; row < rows; ++row)
      for (int64_t c = 0; c < vocab_cols_; ++c) {
        const uint32_t bits = static_cast<uint32_t>(host[r * shard + row * vocab_cols_ + c]) << 16;
        float v;
        std::memcpy(&v, &bits, 4);
        out[row * vocab_size_ + r * vocab_cols_ + c] = v;
      }
  return out;
}

}  // namespace nvrar::engine::gpu
