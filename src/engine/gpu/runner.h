// Runs a Llama-3.x model (model.h) on one GPU of a tensor-parallel group: the stream, the KV cache and the
// per-token bookkeeping on the device, prefill, decode steps (eager, or captured once per batch size into a CUDA
// graph and replayed), sampling (sampler.h: greedy, or temperature / top-k / top-p) after each forward, and an instrumented eager decode step that
// splits its time by kind of work (step_timer.h). nvrar-llm and the engine's GPU checks drive the engine through
// this class.
//
// A decode step, eager or replayed: embedding lookup of the last tokens; the forward; sampling (greedy: argmax per
// vocabulary shard, its all-gather and merge) into the next tokens; positions and lengths advanced. The tokens stay on the device
// between steps; nothing is allocated, formatted or synchronised per step.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "engine/checkpoint.h"
#include "engine/gpu/comm_adapter.h"
#include "engine/gpu/device_memory.h"
#include "engine/gpu/model.h"
#include "engine/gpu/sampler.h"
#include "engine/gpu/step_timer.h"
#include "engine/model_config.h"
#include "engine/sharding.h"
#include "nvrar/nvrar.h"

namespace nvrar::engine::gpu {

class LlamaRunner {
 public:
  // comm: the tensor-parallel group (its size is the TP degree), created with
  // communicator_options(options.allreduce). Checks the model splits over it (check_engine), then allocates.
  LlamaRunner(const ModelConfig& config, Communicator& comm, const EngineOptions& options);
  ~LlamaRunner();
  LlamaRunner(const LlamaRunner&) = delete;
  LlamaRunner& operator=(const LlamaRunner&) = delete;

  // Weights uniform in [-scale, scale) (norm weights 1 + that), generated on the GPU from seed; the same full
  // model on every TP size (each rank generates its shard of the same global tensors).
  void init_dummy(uint64_t seed, float scale = 0.02f);
  // An HF checkpoint (config must match it; check_checkpoint() tells before the GPU is touched): each rank copies
  // only its shard. The path form opens the directory first.
  void load_checkpoint(Checkpoint& checkpoint) { model_.load_checkpoint(checkpoint); }
  void load_checkpoint(const std::filesystem::path& dir);

  // Prefill of a batch of prompts of any lengths (each at least 1 token, shorter than max_seq): sequence b fills
  // KV-cache slot b. Runs in forwards of at most options.prefill_chunk tokens (engine/prefill_plan.h; sequences
  // packed in order, a long one over several chunks), keeps each sequence's last activations, then one lm_head and
  // sampling: leaves the first generated token of each sequence on the device and returns them. progress, when
  // given, is called after each chunk with (prompt tokens done, total) once that chunk finished on the GPU.
  std::vector<int32_t> prefill(const std::vector<std::vector<int32_t>>& prompts,
                               const std::function<void(int64_t, int64_t)>& progress = {});
  // The same for `batch` prompts of `len` tokens (row-major [batch][len]).
  std::vector<int32_t> prefill(const std::vector<int32_t>& prompts, int64_t batch, int64_t len);
  // One decode step for the batch of the last prefill (graph-replayed when use_graph); returns nothing, the
  // tokens stay on the device (tokens()).
  void decode_step(bool use_graph);
  // Sampling of every later prefill and decode step (sampler.h; default greedy). Sequence b of the batch draws its
  // token at position p from Philox(seed, b, p). Changing it re-captures the decode graph at the next step.
  void set_sampling(const SamplingParams& params);
  std::vector<int32_t> tokens();  // the last generated token of each sequence
  // Replaces those tokens (the next decode step's input), e.g. to follow a reference's tokens (teacher forcing).
  void set_tokens(const std::vector<int32_t>& tokens);
  // Full-vocabulary logits of the last step's rows [batch][vocab] (gathered from every rank), fp32.
  std::vector<float> logits();
  // One eager decode step with events between its phases; returns their times.
  StepBreakdown timed_decode_step();
  // A prefill (as above) with events between its phases: GEMMs, attention (RoPE, KV append, attention), the
  // all-reduce + residual + norm calls, other (embedding, SwiGLU, lm_head's row gather, sampling); their times.
  // (At most 8 rows, where a skinny GEMM does RoPE + append and SwiGLU, they count as GEMM.)
  StepBreakdown timed_prefill(const std::vector<std::vector<int32_t>>& prompts,
                              const std::function<void(int64_t, int64_t)>& progress = {});

  cudaStream_t stream() const { return stream_.get(); }
  const ModelConfig& config() const { return model_.config(); }
  const TpRank& tp() const { return model_.tp(); }
  int64_t batch() const { return batch_; }
  std::string gemm_choices() const { return model_.gemm_choices(); }  // Gemm::choices()
  std::string gemm_plan() const { return model_.gemm_plan(); }        // Gemm::plan_text()
  std::string attention_kernels() const { return model_.attention_kernels(); }
  const char* residual_type() const { return model_.residual_type(); }  // "bf16" or "fp32" (model.h)
  const char* activations_type() const { return model_.activations_type(); }  // NVRAR_LLM_ACTIVATIONS
  bool residual_in_gemm() const { return model_.residual_in_gemm(); }   // model.h
  const char* residual_gemms() const { return model_.residual_gemms(); }  // model.h

 private:
  class Stream {  // the engine's non-blocking stream, created first and destroyed last but the adapter
   public:
    explicit Stream(int rank);
    ~Stream();
    Stream(const Stream&) = delete;
    Stream& operator=(const Stream&) = delete;
    cudaStream_t get() const { return stream_; }

   private:
    cudaStream_t stream_ = nullptr;
  };

  // Sampling of the first `rows` rows of the model's logits into d_tokens_ (row r: sequence r, whose last input token
  // is at position d_pos_[r]).
  void sample(int64_t rows, StepTimer* timer);
  // prefill() and timed_prefill(): timer, when given, gets a mark before each phase.
  std::vector<int32_t> prefill_chunks(const std::vector<std::vector<int32_t>>& prompts,
                                      const std::function<void(int64_t, int64_t)>& progress, StepTimer* timer);
  void check_decode() const;  // a prefill happened and the next position fits max_seq
  // Error naming the sizes unless `bytes` of KV cache fit the GPU's free memory.
  void check_kv_cache_fits(int64_t bytes) const;

  EngineOptions options_;
  int rank_;
  CommAdapter allreduce_;
  Stream stream_;
  LlamaModel model_;
  Sampler sampler_;
  DeviceMemory memory_;  // KV cache and token bookkeeping
  std::vector<bf16_t*> cache_k_, cache_v_;  // per layer [max_batch][kv_heads][max_seq][D]
  int32_t *d_tokens_ = nullptr, *d_prompt_ = nullptr, *d_seq_ = nullptr, *d_pos_ = nullptr, *d_len_ = nullptr,
          *d_logit_rows_ = nullptr;
  PrefillTile* d_tiles_ = nullptr;  // query tiles of a prefill chunk
  ForwardInputs inputs_;
  int64_t batch_ = 0;
  int64_t logit_rows_ = 0;
  int64_t next_position_ = 0;  // host mirror of the decode position (bounds check against max_seq)
  cudaGraphExec_t graph_ = nullptr;
  int64_t graph_batch_ = 0;
};

}  // namespace nvrar::engine::gpu
