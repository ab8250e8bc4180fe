// The Llama-3.x forward pass on one rank of a tensor-parallel group (model.h): checks, weights (allocation, dummy
// values, checkpoint shards), activations, forward and GEMM preparation.
#include "engine/gpu/model.h"

#include <cuda_runtime.h>

#include <algorithm>
#include <optional>
#include <span>

#include <fmt/format.h>

#include "engine/llama_weights.h"
#include "engine/gpu/activations_f32.h"
#include "engine/gpu/copy_wait.h"
#include "engine/gpu/flash_prefill.h"
#include "engine/gpu/flash_prefill_wgmma.h"
#include "engine/gpu/prefill_grid.cuh"
#include "gpu/device/residual_rmsnorm.h"
#include "config/settings.h"
#include "engine/rope.h"
#include "engine/safetensors.h"
#include "nvrar/types.h"

namespace nvrar::engine::gpu {

namespace {

// Prefill attention on the tensor-core kernel: where it takes the head_dim, unless NVRAR_LLM_PREFILL_ATTENTION=splitk.
bool uses_flash_prefill(int64_t head_dim) {
  return flash_prefill_supports_head_dim(static_cast<int>(head_dim)) &&
         config::settings().llm_prefill_attention != "splitk";
}

// The tensor-core kernel of NVRAR_LLM_PREFILL_ATTENTION (flash_prefill.h): flash128, wgmma, wgmma2, wgmma-tma and
// wgmma-ws where they take the head_dim, else the 64-row kernel. Unset: wgmma-ws where the GPU (compute
// capability 9.0) and head_dim take it, else the 64-row kernel (H100, head_dim 128: wgmma-ws made a prefill 4.7%
// faster than wgmma-tma at 1 x 32768 and 2.3% at 1 x 8192, within noise at 8 x 2048; wgmma-tma was 1-4% faster
// than wgmma; docs/perf-notes.md).
FlashKernel flash_kernel_for(int64_t head_dim) {
  const std::string& choice = config::settings().llm_prefill_attention;
  const FlashKernel wanted = choice == "flash128"    ? FlashKernel::kMma128
                             : choice == "wgmma"     ? FlashKernel::kWgmma
                             : choice == "wgmma2"    ? FlashKernel::kWgmmaOverlap
                             : choice == "wgmma-tma" ? FlashKernel::kWgmmaTma
                             : choice == "wgmma-ws"  ? FlashKernel::kWgmmaWs
                             : choice.empty() && wgmma_prefill_runs_here() ? FlashKernel::kWgmmaWs
                                                                            : FlashKernel::kMma64;
  return flash_prefill_supports(wanted, static_cast<int>(head_dim)) ? wanted : FlashKernel::kMma64;
}

// Decode attention: NVRAR_LLM_DECODE_ATTENTION=splitk or fused, else mma (unset or "mma"; attention() runs fused
// where mma does not take the head_dim). fused was faster than splitk at every context and batch on an H200, mma
// as fast as or faster than fused at every measured case on an H100 (docs/perf-notes.md).
DecodeAttention decode_attention_kernel() {
  const std::string& choice = config::settings().llm_decode_attention;
  return choice == "splitk"  ? DecodeAttention::kSplitK
         : choice == "fused" ? DecodeAttention::kFused
                             : DecodeAttention::kTensorCore;
}

}  // namespace

void check_engine(const ModelConfig& config, int ranks, const EngineOptions& options) {
  validate(config);
  check_tensor_parallel(config, ranks, EmbeddingSharding::kVocabParallel);
  if (config.vocab_size % ranks != 0)
    throw Error(fmt::format("nvrar-llm: {}: vocab_size {} is not divisible by the TP degree {} (the vocabulary-"
                            "parallel lm_head needs equal shards)",
                            config.source, config.vocab_size, ranks));
  if (!attention_supports_head_dim(static_cast<int>(config.head_dim)))
    throw Error(fmt::format("nvrar-llm: {}: head_dim {} (the attention kernel takes 32, 64, 128 or 256)",
                            config.source, config.head_dim));
  if (config.hidden_size % 8 != 0)
    throw Error(fmt::format("nvrar-llm: {}: hidden_size {} is not a multiple of 8", config.source,
                            config.hidden_size));
  // Decode attention indexes the rows of a step by a grid dimension (at most 65535).
  if (options.max_batch > 65535)
    throw Error(fmt::format("nvrar-llm: batch {} (the engine takes at most 65535 sequences)", options.max_batch));
  if (options.max_batch < 1 || options.max_seq < 2 || options.prefill_chunk < 1)
    throw Error(fmt::format("nvrar-llm: engine sizes batch {} seq {} prefill chunk {} (need batch >= 1, seq >= 2, "
                            "chunk >= 1)",
                            options.max_batch, options.max_seq, options.prefill_chunk));
  // Without the tensor-core prefill kernel, the split-K kernel indexes a chunk's queries by a grid dimension.
  if (!uses_flash_prefill(config.head_dim) && options.prefill_chunk > 65535)
    throw Error(fmt::format("nvrar-llm: prefill chunk {} tokens: at head_dim {} the attention kernel takes at most "
                            "65535 queries per call",
                            options.prefill_chunk, config.head_dim));
}

LlamaModel::LlamaModel(const ModelConfig& config, CommAdapter& allreduce, const EngineOptions& options,
                       cudaStream_t stream)
    : config_(config), allreduce_(allreduce), options_(options), stream_(stream), rank_(allreduce.rank()),
      memory_(allreduce.rank()) {
  const int ranks = allreduce_.size();
  check_engine(config_, ranks, options_);
  tp_ = tp_rank(config_, ranks, rank_, EmbeddingSharding::kVocabParallel);
  hidden_ = config_.hidden_size;
  head_dim_ = static_cast<int>(config_.head_dim);
  q_heads_ = static_cast<int>(tp_.q_heads.size());
  kv_heads_ = static_cast<int>(tp_.kv_heads.size());
  q_cols_ = q_heads_ * config_.head_dim;
  kv_cols_ = kv_heads_ * config_.head_dim;
  qkv_cols_ = q_cols_ + 2 * kv_cols_;
  inter_ = tp_.intermediate.size();
  vocab_cols_ = tp_.vocab.size();
  eps_ = static_cast<float>(config_.rms_norm_eps);
  gemm_ = std::make_unique<Gemm>();

  // Weights.
  const int64_t H = hidden_;
  layers_.resize(static_cast<std::size_t>(config_.num_layers));
  for (Layer& l : layers_) {
    l.qkv = memory_.bf16(qkv_cols_ * H, "qkv_proj");
    l.o = memory_.bf16(H * q_cols_, "o_proj");
    l.gate_up = memory_.bf16(2 * inter_ * H, "gate_up_proj");
    l.down = memory_.bf16(H * inter_, "down_proj");
    l.ln_in = memory_.bf16(H, "input_layernorm");
    l.ln_post = memory_.bf16(H, "post_attention_layernorm");
  }
  embedding_ = memory_.bf16(config_.vocab_size * H, "embed_tokens");
  lm_head_ = memory_.bf16(vocab_cols_ * H, "lm_head");
  final_norm_ = memory_.bf16(H, "norm");
  const std::vector<double> inv = rope_inv_freq(config_);
  const std::vector<float> inv_f(inv.begin(), inv.end());
  inv_freq_ = memory_.f32(static_cast<int64_t>(inv_f.size()), "RoPE table");
  cuda_check(cudaMemcpy(inv_freq_, inv_f.data(), inv_f.size() * sizeof(float), cudaMemcpyHostToDevice), "RoPE table",
             rank_);

  // Activations.
  const int64_t T = std::max(options_.prefill_chunk, options_.max_batch);
  fp32_activations_ = config::settings().llm_activations == "fp32";
  if (fp32_activations_ || config::settings().llm_residual == "fp32")
    h32_ = memory_.f32(T * H, "residual stream (fp32)");
  else
    h_ = memory_.bf16(T * H, "activations");
  qkv_ = memory_.bf16(T * qkv_cols_, "activations");
  attn_ = memory_.bf16(T * q_cols_, "activations");
  auto io = [&](int64_t elems, const char* what) {
    void* p = allreduce_.allocate_io(static_cast<std::size_t>(elems) * sizeof(bf16_t), what);
    return p != nullptr ? static_cast<bf16_t*>(p) : memory_.bf16(elems, what);
  };
  if (fp32_activations_) {  // one buffer for the fp32 GEMM outputs, used one after another (model.h)
    const int64_t widest = std::max({qkv_cols_, 2 * inter_, ranks == 1 ? H : int64_t{0}});
    qkv32_ = gu32_ = memory_.f32(T * widest, "the fp32 GEMM outputs of NVRAR_LLM_ACTIVATIONS=fp32 (prefill chunk x "
                                             "the widest GEMM; a smaller --prefill-chunk needs less)");
    if (ranks == 1) {
      part32_ = qkv32_;
    } else {  // the all-reduce's input: fp32 partial sums, in the registered heap where it fits
      void* p = allreduce_.allocate_io(static_cast<std::size_t>(T * H) * sizeof(float), "all-reduce input (fp32)");
      part32_ = p != nullptr ? static_cast<float*>(p) : memory_.f32(T * H, "all-reduce input (fp32)");
    }
  } else {
    part_ = io(T * H, "all-reduce input");
  }
  x_ = io(T * H, "all-reduce output");
  if (!fp32_activations_) gu_ = memory_.bf16(T * 2 * inter_, "activations");
  act_ = memory_.bf16(T * inter_, "activations");
  last_ = memory_.bf16(options_.max_batch * H, "activations");
  logits_ = memory_.bf16(options_.max_batch * vocab_cols_, "logits");
  // Split-K scratch: decode rows, or whole chunks where the tensor-core prefill kernel does not take the head_dim.
  use_flash_prefill_ = uses_flash_prefill(head_dim_);
  prefill_kernel_ = flash_kernel_for(head_dim_);
  // L2 unknown: one group per chunk.
  prefill_group_keys_ = ::nvrar::engine::prefill_group_keys(kv_cols_ * 2 * 2, current_l2_bytes());
  // The Hopper kernels' bounded waits report through a record in mapped host memory: allocated now, not inside the
  // first prefill's launch.
  if (use_flash_prefill_ && (prefill_kernel_ == FlashKernel::kWgmmaTma || prefill_kernel_ == FlashKernel::kWgmmaWs))
    copy_wait_bound();
  const int64_t split_rows = use_flash_prefill_ ? options_.max_batch : T;
  const AttentionShape s{split_rows, qkv_cols_, q_heads_, kv_heads_, head_dim_, options_.max_seq, options_.max_seq};
  const int64_t scratch_floats = attention_scratch_floats(s);
  scratch_ = memory_.f32(scratch_floats, "attention scratch");
  // The fused kernel's counters must start at 0 (each call leaves them so); ordered before every use on stream_.
  cuda_check(cudaMemsetAsync(scratch_, 0, static_cast<std::size_t>(scratch_floats) * sizeof(float), stream_),
             "attention scratch", rank_);
  decode_attention_ = decode_attention_kernel();
  fuse_epilogue_ = config::settings().llm_fuse_epilogue != 0;
  fuse_residual_ = config::settings().llm_fuse_residual != 0;
  if (config::settings().llm_decode_kernel == "persistent") init_persistent_decode();
}

void LlamaModel::init_persistent_decode() {
  std::string refusal;
  if (allreduce_.size() != 1)
    refusal = fmt::format("tensor parallelism {} (takes TP 1)", allreduce_.size());
  else if (h32_ != nullptr)
    refusal = "the fp32 residual stream of NVRAR_LLM_RESIDUAL=fp32 or NVRAR_LLM_ACTIVATIONS=fp32 (takes bf16)";
  else
    refusal = decode_megakernel_refusal(1, static_cast<int>(layers_.size()), static_cast<int>(hidden_), q_heads_,
                                        kv_heads_, head_dim_, static_cast<int>(inter_), vocab_cols_);
  if (!refusal.empty())
    throw Error(fmt::format("nvrar-llm: rank {}: NVRAR_LLM_DECODE_KERNEL=persistent does not take {}; unset it (or "
                            "set layers) to run this model",
                            rank_, refusal));
  // The batch sizes it takes: the rows' activations must fit its shared memory (8 rows of hidden 4096 do).
  int rows = static_cast<int>(std::min<int64_t>(options_.max_batch, kMegakernelMaxRows));
  while (rows > 1 && !decode_megakernel_refusal(rows, static_cast<int>(layers_.size()), static_cast<int>(hidden_),
                                                q_heads_, kv_heads_, head_dim_, static_cast<int>(inter_), vocab_cols_)
                          .empty())
    --rows;
  persistent_max_rows_ = rows;
  persistent_workspace_bytes_ = decode_megakernel_workspace_bytes(
      q_heads_, kv_heads_, head_dim_, static_cast<int>(hidden_), static_cast<int>(inter_), vocab_cols_);
  persistent_workspace_ = memory_.allocate(static_cast<std::size_t>(persistent_workspace_bytes_),
                                           "the persistent decode kernel's workspace");
  cuda_check(cudaMemsetAsync(persistent_workspace_, 0, static_cast<std::size_t>(persistent_workspace_bytes_), stream_),
             "persistent decode workspace", rank_);
}

void LlamaModel::forward(int64_t n, int64_t max_len, const ForwardInputs& in, StepTimer* timer) {
  if (!persistent_decode(n)) {
    forward_layers(n, max_len, 0, in, timer);
    lm_head(false, n, timer);
    return;
  }
  if (timer) timer->mark(StepPart::kGemm);  // one kernel: counted as the GEMMs, most of its time
  MegakernelArgs a;
  a.rows = static_cast<int>(n);
  a.num_layers = static_cast<int>(layers_.size());
  a.hidden = static_cast<int>(hidden_);
  a.q_heads = q_heads_;
  a.kv_heads = kv_heads_;
  a.head_dim = head_dim_;
  a.inter = static_cast<int>(inter_);
  a.vocab_cols = vocab_cols_;
  a.max_seq = options_.max_seq;
  a.max_len = max_len;
  a.eps = eps_;
  for (std::size_t i = 0; i < layers_.size(); ++i) {
    const Layer& l = layers_[i];
    a.layers[i] = MegakernelLayer{l.qkv, l.o, l.gate_up, l.down, l.ln_in, l.ln_post, in.cache_k[i], in.cache_v[i]};
  }
  a.final_norm = final_norm_;
  a.lm_head = lm_head_;
  a.h = h_;
  a.qkv = qkv_;
  a.attn = attn_;
  a.act = act_;
  a.logits = logits_;
  a.positions = in.positions;
  a.seq = in.seq;
  a.lengths = in.lengths;
  a.inv_freq = inv_freq_;
  a.workspace = persistent_workspace_;
  a.workspace_bytes = persistent_workspace_bytes_;
  decode_megakernel(a, stream_);
}

LlamaModel::~LlamaModel() = default;

std::string LlamaModel::attention_kernels() const {
  const std::string prefill = use_flash_prefill_ ? flash_kernel_name(prefill_kernel_) : "splitk (one query per row)";
  const std::string decode = decode_attention_ == DecodeAttention::kSplitK ? "splitk"
                             : decode_attention_ == DecodeAttention::kFused ? "fused"
                             : mma_attention_supports(head_dim_)            ? "mma"
                                                                            : "fused (mma takes head_dim 64, 128)";
  return "prefill " + prefill + ", decode " + decode +
         (persistent_workspace_ != nullptr
              ? fmt::format(" (1-{} rows: the persistent kernel's own)", persistent_max_rows_)
              : std::string());
}

void LlamaModel::init_dummy(uint64_t seed, float scale) {
  const int64_t H = hidden_, D = head_dim_;
  // One seed per global tensor: (seed, weight, layer).
  auto tseed = [&](Weight w, int64_t layer) { return seed * 1000003ull + static_cast<uint64_t>(w) * 7919ull + layer; };
  auto fill = [&](bf16_t* out, int64_t rows, int64_t cols, int64_t ld, Weight w, int64_t layer, int64_t gcols,
                  int64_t row0, int64_t col0, float offset) {
    fill_uniform(out, rows, cols, ld, tseed(w, layer), gcols, row0, col0, scale, offset, stream_);
  };
  for (int64_t i = 0; i < config_.num_layers; ++i) {
    Layer& l = layers_[i];
    fill(l.qkv, q_cols_, H, H, Weight::kQProj, i, H, tp_.q_heads.begin * D, 0, 0.0f);
    fill(l.qkv + q_cols_ * H, kv_cols_, H, H, Weight::kKProj, i, H, tp_.kv_heads.begin * D, 0, 0.0f);
    fill(l.qkv + (q_cols_ + kv_cols_) * H, kv_cols_, H, H, Weight::kVProj, i, H, tp_.kv_heads.begin * D, 0, 0.0f);
    fill(l.o, H, q_cols_, q_cols_, Weight::kOProj, i, config_.q_size(), 0, tp_.q_heads.begin * D, 0.0f);
    fill(l.gate_up, inter_, H, H, Weight::kGateProj, i, H, tp_.intermediate.begin, 0, 0.0f);
    fill(l.gate_up + inter_ * H, inter_, H, H, Weight::kUpProj, i, H, tp_.intermediate.begin, 0, 0.0f);
    fill(l.down, H, inter_, inter_, Weight::kDownProj, i, config_.intermediate_size, 0, tp_.intermediate.begin, 0.0f);
    fill(l.ln_in, 1, H, H, Weight::kInputLayernorm, i, H, 0, 0, 1.0f);
    fill(l.ln_post, 1, H, H, Weight::kPostAttentionLayernorm, i, H, 0, 0, 1.0f);
  }
  fill(embedding_, config_.vocab_size, H, H, Weight::kEmbedTokens, 0, H, 0, 0, 0.0f);
  const Weight head = config_.tie_word_embeddings ? Weight::kEmbedTokens : Weight::kLmHead;
  fill(lm_head_, vocab_cols_, H, H, head, 0, H, tp_.vocab.begin, 0, 0.0f);
  fill(final_norm_, 1, H, H, Weight::kFinalNorm, 0, H, 0, 0, 1.0f);
  cuda_check(cudaStreamSynchronize(stream_), "dummy weights", rank_);
}

void LlamaModel::load_checkpoint(Checkpoint& ck) {
  std::vector<std::byte> host;
  // Rows or columns [begin, end) of a weight into dst (packed, row-major). With tied embeddings lm_head reads
  // embed_tokens, whose shape it shares.
  auto load = [&](Weight w, int64_t layer, std::optional<Axis> axis, int64_t begin, int64_t end, bf16_t* dst) {
    const TensorView view =
        ck.expect_tensor(checkpoint_tensor_name(config_, w, layer), TensorDtype::kBF16, weight_shape(config_, w));
    if (!axis) {
      cuda_check(cudaMemcpy(dst, view.data, view.nbytes, cudaMemcpyHostToDevice), "weight upload", rank_);
      return;
    }
    const Slice2D slice = slice_2d(view, *axis, begin, end);
    host.resize(slice.nbytes());
    copy_slice(view, *axis, begin, end, std::span<std::byte>(host.data(), host.size()));
    cuda_check(cudaMemcpy(dst, host.data(), host.size(), cudaMemcpyHostToDevice), "weight upload", rank_);
  };
  const int64_t H = hidden_, D = head_dim_;
  for (int64_t i = 0; i < config_.num_layers; ++i) {
    Layer& l = layers_[i];
    load(Weight::kQProj, i, Axis::kRows, tp_.q_heads.begin * D, tp_.q_heads.end * D, l.qkv);
    load(Weight::kKProj, i, Axis::kRows, tp_.kv_heads.begin * D, tp_.kv_heads.end * D, l.qkv + q_cols_ * H);
    load(Weight::kVProj, i, Axis::kRows, tp_.kv_heads.begin * D, tp_.kv_heads.end * D,
         l.qkv + (q_cols_ + kv_cols_) * H);
    load(Weight::kOProj, i, Axis::kColumns, tp_.q_heads.begin * D, tp_.q_heads.end * D, l.o);
    load(Weight::kGateProj, i, Axis::kRows, tp_.intermediate.begin, tp_.intermediate.end, l.gate_up);
    load(Weight::kUpProj, i, Axis::kRows, tp_.intermediate.begin, tp_.intermediate.end, l.gate_up + inter_ * H);
    load(Weight::kDownProj, i, Axis::kColumns, tp_.intermediate.begin, tp_.intermediate.end, l.down);
    load(Weight::kInputLayernorm, i, std::nullopt, 0, 0, l.ln_in);
    load(Weight::kPostAttentionLayernorm, i, std::nullopt, 0, 0, l.ln_post);
  }
  load(Weight::kEmbedTokens, 0, std::nullopt, 0, 0, embedding_);
  load(Weight::kLmHead, 0, Axis::kRows, tp_.vocab.begin, tp_.vocab.end, lm_head_);
  load(Weight::kFinalNorm, 0, std::nullopt, 0, 0, final_norm_);
}

void LlamaModel::forward_layers(int64_t n, int64_t max_len, int64_t num_tiles, const ForwardInputs& in,
                                StepTimer* timer) {
  const int64_t H = hidden_;
  if (timer) timer->mark(StepPart::kOther);
  if (h32_ != nullptr)
    rmsnorm_f32(h32_, layers_[0].ln_in, x_, n, H, eps_, stream_);
  else
    rmsnorm(h_, layers_[0].ln_in, x_, n, H, eps_, stream_);
  const AttentionShape shape{n, qkv_cols_, q_heads_, kv_heads_, head_dim_, options_.max_seq, max_len,
                             options_.max_batch};
  const bool flash = num_tiles > 0 && use_flash_prefill_;
  for (std::size_t i = 0; i < layers_.size(); ++i) {
    const Layer& l = layers_[i];
    if (timer) timer->mark(StepPart::kGemm);
    qkv_rope_append(i, n, in, timer);
    if (flash)
      flash_prefill_attention(qkv_, in.tiles, num_tiles, in.cache_k[i], in.cache_v[i], shape, prefill_kernel_, attn_,
                              stream_);
    else
      attention(qkv_, in.seq, in.lengths, in.cache_k[i], in.cache_v[i], shape,
                num_tiles > 0 ? DecodeAttention::kSplitK : decode_attention_, scratch_, attn_, stream_);
    if (timer) timer->mark(StepPart::kGemm);
    linear_residual_norm(attn_, l.o, q_cols_, l.ln_post, n, timer);
    if (timer) timer->mark(StepPart::kGemm);
    gate_up_swiglu(l.gate_up, n, timer);
    if (timer) timer->mark(StepPart::kGemm);
    const bf16_t* next_norm = i + 1 < layers_.size() ? layers_[i + 1].ln_in : final_norm_;
    linear_residual_norm(act_, l.down, inter_, next_norm, n, timer);
  }
}

void LlamaModel::qkv_rope_append(std::size_t i, int64_t n, const ForwardInputs& in, StepTimer* timer) {
  const Layer& l = layers_[i];
  const int64_t H = hidden_;
  // Where the skinny kernel runs (decode sizes), it does RoPE + KV append on its outputs.
  const SkinnyEpilogue rope = rope_epilogue(in.positions, in.seq, in.cache_k[i], in.cache_v[i], options_.max_seq);
  if (fuse_epilogue_ && gemm_->linear_skinny(x_, l.qkv, qkv_, n, qkv_cols_, H, stream_, rope)) {
    if (timer) timer->mark(StepPart::kAttention);
    return;
  }
  if (fp32_activations_)
    gemm_->linear(x_, l.qkv, qkv32_, n, qkv_cols_, H, stream_, DataType::kFloat32);
  else
    gemm_->linear(x_, l.qkv, qkv_, n, qkv_cols_, H, stream_);
  if (timer) timer->mark(StepPart::kAttention);
  rope_append_after_gemm(n, in.positions, in.seq, in.cache_k[i], in.cache_v[i], options_.max_seq);
}

void LlamaModel::gate_up_swiglu(const bf16_t* gate_up, int64_t n, StepTimer* timer) {
  const int64_t H = hidden_;
  if (fuse_epilogue_ && gemm_->linear_skinny(x_, gate_up, act_, n, 2 * inter_, H, stream_, swiglu_epilogue())) return;
  if (fp32_activations_)
    gemm_->linear(x_, gate_up, gu32_, n, 2 * inter_, H, stream_, DataType::kFloat32);
  else
    gemm_->linear(x_, gate_up, gu_, n, 2 * inter_, H, stream_);
  if (timer) timer->mark(StepPart::kOther);
  swiglu_after_gemm(n);
}

SkinnyEpilogue LlamaModel::rope_epilogue(const int32_t* positions, const int32_t* seq, bf16_t* cache_k,
                                         bf16_t* cache_v, int64_t max_seq) const {
  return {SkinnyEpilogue::Kind::kRopeAppend, q_heads_, kv_heads_, head_dim_, positions, inv_freq_, seq, cache_k,
          cache_v, max_seq, fp32_activations_};
}

void LlamaModel::rope_append_after_gemm(int64_t n, const int32_t* positions, const int32_t* seq, bf16_t* cache_k,
                                        bf16_t* cache_v, int64_t max_seq) {
  if (fp32_activations_)
    rope_qk_append_f32(qkv32_, n, qkv_cols_, q_heads_, kv_heads_, head_dim_, positions, inv_freq_, seq, cache_k,
                       cache_v, max_seq, qkv_, stream_);
  else
    rope_qk_append(qkv_, n, qkv_cols_, q_heads_, kv_heads_, head_dim_, positions, inv_freq_, seq, cache_k, cache_v,
                   max_seq, stream_);
}

SkinnyEpilogue LlamaModel::swiglu_epilogue() const {
  SkinnyEpilogue silu{SkinnyEpilogue::Kind::kSwiGlu};
  silu.fp32 = fp32_activations_;
  return silu;
}

void LlamaModel::swiglu_after_gemm(int64_t n) {
  if (fp32_activations_)
    swiglu_f32(gu32_, n, inter_, act_, stream_);
  else
    swiglu(gu_, n, inter_, act_, stream_);
}

void LlamaModel::linear_residual_norm(const bf16_t* in, const bf16_t* w, int64_t k, const bf16_t* norm_weight,
                                      int64_t n, StepTimer* timer) {
  const int64_t H = hidden_;
  if (!fp32_activations_) {
    if (gemm_residual_norm(in, w, k, norm_weight, n, timer)) return;
    gemm_->linear(in, w, part_, n, H, k, stream_);
    allreduce_norm(part_, norm_weight, n, timer);
    return;
  }
  if (allreduce_.size() == 1) {  // the sum is this rank's product: added to the stream inside the GEMM
    gemm_->linear_accumulate(in, w, h32_, n, H, k, stream_, part32_, DataType::kFloat32);
    if (timer) timer->mark(StepPart::kAllReduce);
    rmsnorm_f32(h32_, norm_weight, x_, n, H, eps_, stream_);
    return;
  }
  gemm_->linear(in, w, part32_, n, H, k, stream_, DataType::kFloat32);
  if (timer) timer->mark(StepPart::kAllReduce);
  allreduce_.allreduce(part32_, n * H, stream_);
  residual_rmsnorm_f32(part32_, h32_, norm_weight, x_, n, H, eps_, stream_);
}

bool LlamaModel::gemm_residual_norm(const bf16_t* in, const bf16_t* w, int64_t k, const bf16_t* norm_weight, int64_t n,
                                    StepTimer* timer) {
  if (!fuse_residual_ || allreduce_.size() != 1 || h_ == nullptr) return false;  // the bf16 stream at TP 1 only
  if (!gemm_->linear_accumulate(in, w, h_, n, hidden_, k, stream_, part_)) return false;
  if (timer) timer->mark(StepPart::kAllReduce);
  const cudaError_t e = nvrar::gpu::launch_residual_rmsnorm(nullptr, h_, norm_weight, x_, n, hidden_, eps_,
                                                            DataType::kBFloat16, stream_, pdl_enabled());
  if (e != cudaSuccess)
    throw Error(
        fmt::format("nvrar-llm: rank {} RMSNorm of {} rows launch failed: {}", rank_, n, cudaGetErrorString(e)));
  return true;
}

void LlamaModel::keep_rows(const int32_t* rows, int64_t count, int64_t first) {
  gather_rows(x_, rows, count, hidden_, last_ + first * hidden_, stream_);
}

void LlamaModel::lm_head(bool kept_rows, int64_t rows, StepTimer* timer) {
  if (timer) timer->mark(StepPart::kGemm);
  gemm_->linear(kept_rows ? last_ : x_, lm_head_, logits_, rows, vocab_cols_, hidden_, stream_);
}

}  // namespace nvrar::engine::gpu
