// A Llama-3.x model on one GPU of a tensor-parallel group (llama_tp.cpp): weights (dummy or from an HF
// checkpoint, each rank reading only its shard), KV cache, prefill and decode, decode steps captured in a CUDA
// graph per batch size, greedy sampling, and an instrumented decode step that splits its time by kind of work.
//
// Layout per rank (engine/sharding.h): q/k/v fused into one column-parallel GEMM [q + 2 kv rows of its heads];
// gate/up fused [2 x intermediate shard]; o_proj and down_proj row-parallel, each followed by the communicator's
// fused all-reduce + residual add + RMSNorm (two per layer); embedding replicated; lm_head vocabulary-parallel,
// greedy argmax per shard, then the per-rank winners all-gathered over NCCL and merged.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "engine/gpu/attention.h"
#include "engine/gpu/gemm.h"
#include "engine/gpu/layers.h"
#include "engine/model_config.h"
#include "engine/sharding.h"
#include "nvrar/nvrar.h"

namespace nvrar::engine::gpu {

// How the engine's all-reduces run: NCCL, NVRAR's kernels only, or NVRAR's tuner (NVRAR or NCCL by size).
enum class AllReduceBackend { kNccl, kNvrar, kAuto };
AllReduceBackend parse_allreduce_backend(const std::string& name);  // "nccl", "nvrar", "auto"
const char* allreduce_backend_name(AllReduceBackend b);

struct EngineOptions {
  int64_t max_batch = 1;
  int64_t max_seq = 256;     // prompt + generated tokens per sequence
  int64_t max_prefill = 256;  // prompt tokens per sequence in one prefill
  AllReduceBackend allreduce = AllReduceBackend::kAuto;
};

// Time of one decode step by kind (microseconds), measured with CUDA events in an eager (non-graph) step.
struct StepBreakdown {
  double gemm_us = 0;
  double attention_us = 0;  // RoPE, KV append, attention
  double allreduce_us = 0;  // the fused all-reduce + residual + RMSNorm calls
  double other_us = 0;      // embedding, first norm, SwiGLU, argmax and its all-gather
  double total_us() const { return gemm_us + attention_us + allreduce_us + other_us; }
};

class LlamaTp {
 public:
  // comm: the tensor-parallel group (its size is the TP degree). Checks the model splits over it.
  LlamaTp(const ModelConfig& config, Communicator& comm, const EngineOptions& options);
  ~LlamaTp();
  LlamaTp(const LlamaTp&) = delete;
  LlamaTp& operator=(const LlamaTp&) = delete;

  // Weights uniform in [-scale, scale) (norm weights 1 + that), generated on the GPU from seed; the same full
  // model on every TP size (each rank generates its shard of the same global tensors).
  void init_dummy(uint64_t seed, float scale = 0.02f);
  // HF checkpoint directory (config must match it): each rank maps the files and copies only its shard.
  void load_checkpoint(const std::filesystem::path& dir);

  // Prefill of `batch` prompts of `len` tokens (row-major [batch][len]); leaves the first generated token of each
  // sequence on the device and returns it.
  std::vector<int32_t> prefill(const std::vector<int32_t>& prompts, int64_t batch, int64_t len);
  // One decode step for the batch of the last prefill (graph-replayed when use_graph); returns nothing, the
  // tokens stay on the device (tokens()).
  void decode_step(bool use_graph);
  std::vector<int32_t> tokens();  // the last generated token of each sequence
  // Replaces those tokens (the next decode step's input), e.g. to follow a reference's tokens (teacher forcing).
  void set_tokens(const std::vector<int32_t>& tokens);
  // Full-vocabulary logits of the last step's rows [batch][vocab] (gathered from every rank), fp32.
  std::vector<float> logits();
  StepBreakdown timed_decode_step();

  cudaStream_t stream() const { return stream_; }
  const ModelConfig& config() const { return config_; }
  const TpRank& tp() const { return tp_; }
  int64_t batch() const { return batch_; }
  std::string gemm_choices() const;  // Gemm::choices()

 private:
  struct Layer {
    bf16_t* qkv = nullptr;      // [qkv_cols, H]
    bf16_t* o = nullptr;        // [H, q_cols]
    bf16_t* gate_up = nullptr;  // [2 I_s, H]
    bf16_t* down = nullptr;     // [H, I_s]
    bf16_t* ln_in = nullptr;    // [H]
    bf16_t* ln_post = nullptr;  // [H]
    bf16_t* cache_k = nullptr;  // [max_batch][kv_heads][max_seq][D]
    bf16_t* cache_v = nullptr;
  };
  struct Timer;  // events of the instrumented step

  void allocate();
  // Runs the whole model on n tokens already embedded into h_ (rows), writes logits for `logit_rows` rows
  // selected by d_logit_rows_ (nullptr: all n) and the greedy tokens into d_tokens_.
  void forward(int64_t n, int64_t max_len, int64_t logit_rows, bool gather_rows_first, Timer* timer);
  void allreduce_norm(bf16_t* partial, const bf16_t* weight, int64_t n, Timer* timer);
  void sample(int64_t rows, Timer* timer);
  void prepare_gemms(int64_t n);

  ModelConfig config_;
  Communicator& comm_;
  EngineOptions options_;
  TpRank tp_;
  int ranks_ = 1;
  int64_t hidden_ = 0, q_cols_ = 0, kv_cols_ = 0, qkv_cols_ = 0, inter_ = 0, vocab_cols_ = 0;
  int q_heads_ = 0, kv_heads_ = 0, head_dim_ = 0;
  Algorithm algorithm_ = Algorithm::kAuto;

  cudaStream_t stream_ = nullptr;
  std::unique_ptr<Gemm> gemm_;
  std::vector<void*> allocations_;
  std::vector<void*> registered_;  // NVRAR buffers (allocate_buffer): the all-reduce's input and output, zero copy
  std::vector<Layer> layers_;
  bf16_t* embedding_ = nullptr;  // [V, H] replicated
  bf16_t* lm_head_ = nullptr;    // [vocab_cols_, H] (rows of this rank's vocabulary shard, zero-padded)
  bf16_t* final_norm_ = nullptr;
  float* inv_freq_ = nullptr;
  // activations, sized for max(max_batch x max_prefill, max_batch) rows
  bf16_t *h_ = nullptr, *x_ = nullptr, *qkv_ = nullptr, *attn_ = nullptr, *part_ = nullptr, *gu_ = nullptr,
         *act_ = nullptr, *logits_ = nullptr, *last_ = nullptr;
  float* scratch_ = nullptr;
  float* best_value_ = nullptr;   // [ranks][max_batch]
  int32_t* best_index_ = nullptr;  // [ranks][max_batch]
  int32_t *d_tokens_ = nullptr, *d_prompt_ = nullptr, *d_seq_ = nullptr, *d_pos_ = nullptr, *d_len_ = nullptr,
          *d_logit_rows_ = nullptr;
  int64_t batch_ = 0;
  int64_t logit_rows_ = 0;
  int64_t next_position_ = 0;  // host mirror of the decode position (bounds check against max_seq)
  cudaGraphExec_t graph_ = nullptr;
  int64_t graph_batch_ = 0;
  int64_t prepared_batch_ = 0;  // decode batch size whose GEMM kernels prepare_gemms chose
};

}  // namespace nvrar::engine::gpu
