// The Llama-3.x forward pass on one rank of a tensor-parallel group: the weights of this rank's shard (dummy, or
// copied from an HF checkpoint), the activations, and forward(), which runs every layer on tokens already embedded
// and ends with the lm_head GEMM of this rank's vocabulary shard. The KV cache and the per-token bookkeeping belong
// to the runner (runner.h), which passes them in; the layer all-reduces go through the CommAdapter.
//
// Layout per rank (engine/sharding.h): q/k/v fused into one column-parallel GEMM [q + 2 kv rows of its heads];
// gate/up fused [2 x intermediate shard]; o_proj and down_proj row-parallel, each followed by the fused all-reduce
// + residual add + RMSNorm (two per layer); embedding replicated; lm_head vocabulary-parallel.
//
// A layer, in launch order: GEMM qkv; RoPE + KV append; attention; GEMM o_proj; all-reduce + residual + RMSNorm
// (post_attention_layernorm); GEMM gate/up; SwiGLU; GEMM down_proj; all-reduce + residual + RMSNorm (the next
// layer's input_layernorm, or the final norm). Where a skinny GEMM runs (at most 8 rows), the qkv GEMM does the RoPE
// + KV append and the gate/up GEMM the SwiGLU itself (NVRAR_LLM_FUSE_EPILOGUE). At TP 1 with the bf16 stream, where
// cuBLASLt runs o_proj or down_proj (over 8 rows: prefill, batch 32; or where the timed choice or NVRAR_LLM_GEMM
// takes it), the GEMM adds its output into h_ itself (beta 1) and the norm after it only normalises
// (NVRAR_LLM_FUSE_RESIDUAL): the norm reads one row-sized stream and writes one instead of two of each. h_ holds the
// residual stream, x_ the normalised activations.
//
// The residual stream is bf16 (rounded after each residual add, as transformers' bf16 model rounds it) or, with
// NVRAR_LLM_RESIDUAL=fp32, fp32 (residual_f32.h): then each all-reduce runs alone (in place on the partial sums) and
// an engine kernel adds its sums to the fp32 stream and normalises; the first RMSNorm reads the fp32 stream too.
//
// NVRAR_LLM_ACTIVATIONS=fp32 (docs/numerics.md) goes further: the fp32 stream, and no GEMM output rounded to bf16 but
// the logits. The q/k/v GEMM writes fp32 (qkv32_) and RoPE rounds once into qkv_ and the cache (activations_f32.h),
// or the skinny GEMM's epilogue does the same from its fp32 products; likewise gate/up (gu32_) and SwiGLU. o_proj and
// down_proj add their fp32 products to the stream inside the GEMM at TP 1 (cuBLASLt beta 1, or the skinny kernel's
// kAddF32), then RMSNorm alone; at TP > 1 they write fp32 partial sums (part32_), all-reduced in fp32, then the
// residual add + RMSNorm kernel. GEMM inputs (x_, attn_, act_) and the KV cache stay bf16.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "engine/checkpoint.h"
#include "engine/gpu/attention.h"
#include "engine/gpu/comm_adapter.h"
#include "engine/gpu/decode_megakernel.h"
#include "engine/gpu/device_memory.h"
#include "engine/gpu/flash_prefill.h"
#include "engine/gpu/gemm.h"
#include "engine/gpu/layers.h"
#include "engine/gpu/residual_f32.h"
#include "engine/gpu/step_timer.h"
#include "engine/model_config.h"
#include "engine/prefill_plan.h"
#include "engine/sharding.h"

namespace nvrar::engine::gpu {

struct EngineOptions {
  int64_t max_batch = 1;
  int64_t max_seq = 256;      // prompt + generated tokens per sequence
  int64_t prefill_chunk = 4096;  // prompt tokens per prefill forward (a longer prefill runs in chunks)
  AllReduceBackend allreduce = AllReduceBackend::kAuto;
};

// The prefill chunk nvrar-llm takes when none is given: 16384 tokens on one GPU (against 4096, 8B: H100 -2.1% at
// 8 x 2048, -1.2% at 1 x 8192, -1.7% at 1 x 32768; H200 -0.6% and -1.8% at the first two; bench/results/
// 2026-12-05f-engine calls 3 and 6; activations ~2 GB). 4096 at TP > 1, where the all-reduce's two chunk x hidden
// bf16 buffers live in the communicator's registered heap (Options::buffer_bytes, 256 MiB by default: 16384 tokens
// of 70B's hidden 8192 would not fit, and that all-reduce would fall back to NCCL); not measured there. With
// NVRAR_LLM_ACTIVATIONS=fp32 the all-reduce's input is fp32 (twice the room): where it does not fit the heap it is
// plain memory and the all-reduce takes the copy-in path (allocate_io says so).
inline int64_t default_prefill_chunk(int tp) { return tp == 1 ? 16384 : 4096; }

// Error naming the config's source (or the engine sizes) unless the engine can run `config` over `ranks` ranks
// with `options`: the model config itself, its split over the ranks (vocabulary in equal shards), head_dim,
// hidden_size, and the engine sizes. CPU only: nvrar-llm calls it before it touches a GPU.
void check_engine(const ModelConfig& config, int ranks, const EngineOptions& options);

// What a forward reads besides the model's own buffers: the runner's device bookkeeping of the n tokens and its
// KV cache. Fixed for the runner's life (set once), so a step passes only a reference.
struct ForwardInputs {
  const int32_t* seq = nullptr;         // [n] sequence of each token
  const int32_t* positions = nullptr;   // [n] position of each token in its sequence
  const int32_t* lengths = nullptr;     // [n] keys each token attends to (position + 1)
  const int32_t* logit_rows = nullptr;  // rows of a prefill chunk whose final activations are kept (keep_rows)
  const PrefillTile* tiles = nullptr;   // [num_tiles] query tiles of a prefill chunk (prefill_plan.h)
  std::span<bf16_t* const> cache_k;     // per layer [max_batch][kv_heads][max_seq][head_dim]
  std::span<bf16_t* const> cache_v;
};

class LlamaModel {
 public:
  // Checks (check_engine), then allocates this rank's weights and the activations for max(prefill_chunk,
  // max_batch) rows. The all-reduce's input and output come from allreduce.allocate_io (collective).
  LlamaModel(const ModelConfig& config, CommAdapter& allreduce, const EngineOptions& options, cudaStream_t stream);
  ~LlamaModel();
  LlamaModel(const LlamaModel&) = delete;
  LlamaModel& operator=(const LlamaModel&) = delete;

  // Weights uniform in [-scale, scale) (norm weights 1 + that), generated on the GPU from seed; the same full
  // model on every TP size (each rank generates its shard of the same global tensors).
  void init_dummy(uint64_t seed, float scale);
  // Copies this rank's shard of every weight (check_checkpoint's tensors) to the GPU.
  void load_checkpoint(Checkpoint& checkpoint);

  // The residual stream = embedding rows of tokens[0, n).
  void embed(const int32_t* tokens, int64_t n) {
    if (h32_ != nullptr)
      embedding_lookup_f32(tokens, n, embedding_, hidden_, h32_, stream_);
    else
      embedding_lookup(tokens, n, embedding_, hidden_, h_, stream_);
  }
  // Runs every layer on the n rows of h_ (max_len: the longest attention length of the call). num_tiles > 0: a
  // prefill chunk whose query tiles are in.tiles (tensor-core attention where the head_dim allows, else split-K); 0:
  // decode rows (split-K or fused attention, NVRAR_LLM_DECODE_ATTENTION). The final normalised activations are left
  // in the model. Marks phases on `timer`.
  void forward_layers(int64_t n, int64_t max_len, int64_t num_tiles, const ForwardInputs& in, StepTimer* timer);
  // Keeps the final activations of `count` rows (device indices in rows) as kept rows [first, first + count), for an
  // lm_head after the last chunk of a prefill.
  void keep_rows(const int32_t* rows, int64_t count, int64_t first);
  // The lm_head GEMM of this rank's vocabulary shard on `rows` rows: the kept rows, or the first rows of the last
  // forward_layers. Logits in logits().
  void lm_head(bool kept_rows, int64_t rows, StepTimer* timer);
  // A decode forward: forward_layers on n rows, then lm_head on them; or, with NVRAR_LLM_DECODE_KERNEL=persistent and
  // n <= persistent_max_rows_, the persistent kernel (decode_megakernel.h), which leaves the logits but not the
  // final activations.
  void forward(int64_t n, int64_t max_len, const ForwardInputs& in, StepTimer* timer);
  // Whether a decode step of n rows runs the persistent kernel.
  bool persistent_decode(int64_t n) const { return persistent_workspace_ != nullptr && n <= persistent_max_rows_; }
  // Once per decode batch size n: has Gemm choose the kernel of each GEMM shape of an n-row forward, timing passes
  // over every layer's matrix as a decode step streams them, before a graph capture (which can only take the first
  // guess). Writes only activations and logits, which the next step rewrites.
  void prepare_gemms(int64_t n);

  const bf16_t* logits() const { return logits_; }  // [logit_rows][vocab_cols], bf16
  const ModelConfig& config() const { return config_; }
  const TpRank& tp() const { return tp_; }
  int64_t kv_cols() const { return kv_cols_; }  // KV heads x head_dim of this rank
  // Query rows per tile of a prefill plan (plan_prefill) for the prefill kernel NVRAR_LLM_PREFILL_ATTENTION chose:
  // 128 for every kernel but flash where it takes the head_dim, else 64 (flash_prefill.h).
  int prefill_tile_rows() const { return flash_tile_rows(prefill_kernel_); }
  // The group_keys of plan_prefill: the keys whose K and V (this rank's KV heads) fill 70% of the GPU's L2.
  int64_t prefill_group_keys() const { return prefill_group_keys_; }
  int64_t vocab_cols() const { return vocab_cols_; }
  std::string gemm_choices() const { return gemm_->choices(); }
  std::string gemm_plan() const { return gemm_->plan_text(); }  // NVRAR_LLM_GEMM's list form
  // The attention kernels this model runs, e.g. "prefill flash (64-row tiles), decode fused"
  // (NVRAR_LLM_PREFILL_ATTENTION / NVRAR_LLM_DECODE_ATTENTION after the head_dim fallbacks).
  std::string attention_kernels() const;
  // The GEMM outputs' type, "bf16" or "fp32" (NVRAR_LLM_ACTIVATIONS).
  const char* activations_type() const { return fp32_activations_ ? "fp32" : "bf16"; }
  // The residual stream's type, "bf16" or "fp32" (NVRAR_LLM_RESIDUAL, or fp32 with NVRAR_LLM_ACTIVATIONS=fp32).
  const char* residual_type() const { return h32_ != nullptr ? "fp32" : "bf16"; }
  // Whether o_proj / down_proj add into the residual inside the GEMM: at TP 1, in cuBLASLt where it runs them with the
  // bf16 stream (NVRAR_LLM_FUSE_RESIDUAL; gemm_residual_norm), in every one of them with fp32 activations.
  bool residual_in_gemm() const {
    return allreduce_.size() == 1 && (fp32_activations_ || (fuse_residual_ && h32_ == nullptr));
  }
  // Which GEMMs add into the residual where residual_in_gemm(), for nvrar-llm's printout; "" elsewhere.
  const char* residual_gemms() const {
    return !residual_in_gemm()   ? ""
           : fp32_activations_ ? "every o_proj / down_proj GEMM"
                               : "cuBLASLt's o_proj / down_proj GEMMs where they run (NVRAR_LLM_FUSE_RESIDUAL)";
  }

 private:
  struct Layer {
    bf16_t* qkv = nullptr;      // [qkv_cols, H]
    bf16_t* o = nullptr;        // [H, q_cols]
    bf16_t* gate_up = nullptr;  // [2 I_s, H]
    bf16_t* down = nullptr;     // [H, I_s]
    bf16_t* ln_in = nullptr;    // [H]
    bf16_t* ln_post = nullptr;  // [H]
  };

  // partial: this rank's o_proj or down_proj output; residual += all-reduce(partial); x_ = rmsnorm(residual) *
  // weight. With the fp32 stream the all-reduce overwrites partial with the sums first (both kernels are timed as
  // the all-reduce).
  void allreduce_norm(bf16_t* partial, const bf16_t* weight, int64_t n, StepTimer* timer) {
    if (timer) timer->mark(StepPart::kAllReduce);
    if (h32_ == nullptr) {
      allreduce_.add_rmsnorm(partial, h_, weight, x_, n, hidden_, eps_, stream_);
      return;
    }
    allreduce_.allreduce(partial, n * hidden_, stream_);
    residual_rmsnorm_f32(partial, h32_, weight, x_, n, hidden_, eps_, stream_);
  }

  // TP 1 with the bf16 stream, where cuBLASLt runs the GEMM: h_ += in . w^T in the GEMM (Gemm::linear_accumulate), then
  // x_ = rmsnorm(h_) * norm_weight. Returns false (nothing launched) elsewhere; the caller then takes
  // linear() + allreduce_norm().
  bool gemm_residual_norm(const bf16_t* in, const bf16_t* w, int64_t k, const bf16_t* norm_weight, int64_t n,
                          StepTimer* timer);

  // o_proj or down_proj on n rows of `in` (k columns), its all-reduce, the residual add and the RMSNorm into x_, by
  // whichever path the settings take (gemm_residual_norm, allreduce_norm, or the fp32 activations' own).
  void linear_residual_norm(const bf16_t* in, const bf16_t* w, int64_t k, const bf16_t* norm_weight, int64_t n,
                            StepTimer* timer);
  // Layer i's q/k/v GEMM on x_, then RoPE and the KV append: q, k, v (rotated, bf16) in qkv_ and the cache.
  void qkv_rope_append(std::size_t i, int64_t n, const ForwardInputs& in, StepTimer* timer);
  // The gate/up GEMM of weight gate_up on x_, then SwiGLU into act_.
  void gate_up_swiglu(const bf16_t* gate_up, int64_t n, StepTimer* timer);
  // What the step does to those GEMMs' outputs, in the skinny kernel's epilogue or as the kernel after a cuBLASLt GEMM
  // (from qkv32_ / gu32_ with fp32 activations), shared by the step and prepare_gemms' timing: RoPE + append of n
  // rows into the KV rows given, SwiGLU into act_.
  SkinnyEpilogue rope_epilogue(const int32_t* positions, const int32_t* seq, bf16_t* cache_k, bf16_t* cache_v,
                               int64_t max_seq) const;
  void rope_append_after_gemm(int64_t n, const int32_t* positions, const int32_t* seq, bf16_t* cache_k,
                              bf16_t* cache_v, int64_t max_seq);
  SkinnyEpilogue swiglu_epilogue() const;
  void swiglu_after_gemm(int64_t n);
  // NVRAR_LLM_DECODE_KERNEL=persistent: refuses (Error naming the cause) where the kernel cannot run this model, else
  // allocates and zeroes its workspace.
  void init_persistent_decode();

  ModelConfig config_;
  CommAdapter& allreduce_;
  EngineOptions options_;
  cudaStream_t stream_;
  int rank_ = 0;
  TpRank tp_;
  int64_t hidden_ = 0, q_cols_ = 0, kv_cols_ = 0, qkv_cols_ = 0, inter_ = 0, vocab_cols_ = 0;
  int q_heads_ = 0, kv_heads_ = 0, head_dim_ = 0;
  float eps_ = 0;

  std::unique_ptr<Gemm> gemm_;
  DeviceMemory memory_;
  std::vector<Layer> layers_;
  bf16_t* embedding_ = nullptr;  // [V, H] replicated
  bf16_t* lm_head_ = nullptr;    // [vocab_cols_, H] (rows of this rank's vocabulary shard)
  bf16_t* final_norm_ = nullptr;
  float* inv_freq_ = nullptr;
  // activations, sized for max(prefill_chunk, max_batch) rows; last_: the kept rows [max_batch]. The residual stream
  // is h_ (bf16) or h32_ (fp32: NVRAR_LLM_RESIDUAL=fp32 or NVRAR_LLM_ACTIVATIONS=fp32); the other stays nullptr.
  float* h32_ = nullptr;
  // NVRAR_LLM_ACTIVATIONS=fp32 only (else nullptr): the q/k/v and gate/up GEMMs' fp32 outputs, and o_proj / down_proj's
  // fp32 partial sums, which replace gu_ and part_. qkv32_ and gu32_ are one buffer (RoPE has read q/k/v before the
  // gate/up GEMM writes), and at TP 1 part32_ too (only the timed runs of a GEMM choice write it, before the gate/up
  // GEMM or after SwiGLU); at TP > 1 part32_ is the all-reduce's own (allocate_io).
  float *qkv32_ = nullptr, *gu32_ = nullptr, *part32_ = nullptr;
  bool fp32_activations_ = false;  // NVRAR_LLM_ACTIVATIONS=fp32
  bf16_t *h_ = nullptr, *x_ = nullptr, *qkv_ = nullptr, *attn_ = nullptr, *part_ = nullptr, *gu_ = nullptr,
         *act_ = nullptr, *logits_ = nullptr, *last_ = nullptr;
  float* scratch_ = nullptr;  // attention scratch (attention_scratch_floats), zeroed once
  int64_t prepared_batch_ = 0;  // decode batch size whose GEMM kernels prepare_gemms chose
  bool use_flash_prefill_ = false;  // tensor-core prefill attention (flash_prefill.h); else split-K
  FlashKernel prefill_kernel_ = FlashKernel::kMma64;  // NVRAR_LLM_PREFILL_ATTENTION (flash_kernel_for)
  int64_t prefill_group_keys_ = 0;                    // plan_prefill's group_keys (0 where L2 is unknown)
  DecodeAttention decode_attention_ = DecodeAttention::kSplitK;  // NVRAR_LLM_DECODE_ATTENTION
  bool fuse_residual_ = true;  // NVRAR_LLM_FUSE_RESIDUAL: o_proj / down_proj add into h_ in cuBLASLt (TP 1)
  bool fuse_epilogue_ = true;  // NVRAR_LLM_FUSE_EPILOGUE: RoPE + append and SwiGLU in the skinny GEMMs
  // NVRAR_LLM_DECODE_KERNEL=persistent: the persistent kernel's workspace (else nullptr) and its size.
  void* persistent_workspace_ = nullptr;
  int64_t persistent_workspace_bytes_ = 0;
  int64_t persistent_max_rows_ = 0;  // the largest batch it takes for this model (<= 8; larger run the layers)
};

}  // namespace nvrar::engine::gpu
