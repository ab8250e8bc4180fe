#include "engine/gpu/llama_tp.h"

#include <cuda_runtime.h>
#include <nccl.h>

#include <algorithm>
#include <cstring>
#include <exception>
#include <span>

#include <fmt/format.h>

#include "engine/checkpoint.h"
#include "engine/error.h"
#include "engine/llama_weights.h"
#include "engine/rope.h"
#include "engine/safetensors.h"
#include "gpu/algorithms/oneshot.h"

namespace nvrar::engine::gpu {

namespace {

void cuda_check(cudaError_t e, const char* what, int rank) {
  if (e != cudaSuccess) throw Error(fmt::format("nvrar-llm: rank {} {}: {}", rank, what, cudaGetErrorString(e)));
}
void nccl_check(ncclResult_t r, const char* what, int rank) {
  if (r != ncclSuccess) throw Error(fmt::format("nvrar-llm: rank {} {}: {}", rank, what, ncclGetErrorString(r)));
}

enum Kind { kGemm = 0, kAttention = 1, kAllReduce = 2, kOther = 3, kEnd = 4 };

}  // namespace

AllReduceBackend parse_allreduce_backend(const std::string& name) {
  if (name == "nccl") return AllReduceBackend::kNccl;
  if (name == "nvrar") return AllReduceBackend::kNvrar;
  if (name == "auto") return AllReduceBackend::kAuto;
  throw Error("nvrar-llm: --allreduce '" + name + "' (nccl, nvrar, auto)");
}

const char* allreduce_backend_name(AllReduceBackend b) {
  switch (b) {
    case AllReduceBackend::kNccl:
      return "nccl";
    case AllReduceBackend::kNvrar:
      return "nvrar";
    case AllReduceBackend::kAuto:
      return "auto";
  }
  return "invalid";
}

// Events between marks: the time from one mark to the next counts for the earlier mark's kind.
struct LlamaTp::Timer {
  cudaStream_t stream = nullptr;
  std::vector<std::pair<int, cudaEvent_t>> marks;
  void mark(int kind) {
    cudaEvent_t e = nullptr;
    cudaEventCreate(&e);
    cudaEventRecord(e, stream);
    marks.emplace_back(kind, e);
  }
  StepBreakdown finish() {
    mark(kEnd);
    cudaEventSynchronize(marks.back().second);
    StepBreakdown b;
    for (std::size_t i = 0; i + 1 < marks.size(); ++i) {
      float ms = 0;
      cudaEventElapsedTime(&ms, marks[i].second, marks[i + 1].second);
      const double us = ms * 1e3;
      switch (marks[i].first) {
        case kGemm:
          b.gemm_us += us;
          break;
        case kAttention:
          b.attention_us += us;
          break;
        case kAllReduce:
          b.allreduce_us += us;
          break;
        default:
          b.other_us += us;
      }
    }
    for (auto& [k, e] : marks) cudaEventDestroy(e);
    marks.clear();
    return b;
  }
};

LlamaTp::LlamaTp(const ModelConfig& config, Communicator& comm, const EngineOptions& options)
    : config_(config), comm_(comm), options_(options) {
  validate(config_);
  ranks_ = comm_.size();
  const int rank = comm_.rank();
  check_tensor_parallel(config_, ranks_, EmbeddingSharding::kVocabParallel);
  if (config_.vocab_size % ranks_ != 0)
    throw Error(fmt::format("nvrar-llm: {}: vocab_size {} is not divisible by the TP degree {} (the vocabulary-"
                            "parallel lm_head needs equal shards)",
                            config_.source, config_.vocab_size, ranks_));
  if (!attention_supports_head_dim(static_cast<int>(config_.head_dim)))
    throw Error(fmt::format("nvrar-llm: {}: head_dim {} (the attention kernel takes 32, 64, 128 or 256)",
                            config_.source, config_.head_dim));
  if (config_.hidden_size % 8 != 0)
    throw Error(fmt::format("nvrar-llm: {}: hidden_size {} is not a multiple of 8", config_.source,
                            config_.hidden_size));
  if (options_.max_batch < 1 || options_.max_seq < 2 || options_.max_prefill < 1 ||
      options_.max_prefill >= options_.max_seq)
    throw Error(fmt::format("nvrar-llm: rank {}: engine sizes batch {} seq {} prefill {} (need batch >= 1 and "
                            "1 <= prefill < seq)",
                            rank, options_.max_batch, options_.max_seq, options_.max_prefill));
  // The attention kernels index queries by a grid dimension (at most 65535).
  if (options_.max_batch * options_.max_prefill > 65535)
    throw Error(fmt::format("nvrar-llm: rank {}: batch {} x prefill length {} = {} query rows in one prefill; the "
                            "attention kernel takes at most 65535",
                            rank, options_.max_batch, options_.max_prefill, options_.max_batch * options_.max_prefill));
  tp_ = tp_rank(config_, ranks_, rank, EmbeddingSharding::kVocabParallel);
  hidden_ = config_.hidden_size;
  head_dim_ = static_cast<int>(config_.head_dim);
  q_heads_ = static_cast<int>(tp_.q_heads.size());
  kv_heads_ = static_cast<int>(tp_.kv_heads.size());
  q_cols_ = q_heads_ * config_.head_dim;
  kv_cols_ = kv_heads_ * config_.head_dim;
  qkv_cols_ = q_cols_ + 2 * kv_cols_;
  inter_ = tp_.intermediate.size();
  vocab_cols_ = tp_.vocab.size();
  switch (options_.allreduce) {
    case AllReduceBackend::kNccl:
      algorithm_ = Algorithm::kNccl;
      break;
    default:
      algorithm_ = Algorithm::kAuto;
  }
  cuda_check(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), "stream", rank);
  gemm_ = std::make_unique<Gemm>();
  allocate();
}

LlamaTp::~LlamaTp() {
  if (graph_ != nullptr) cudaGraphExecDestroy(graph_);
  if (stream_ != nullptr) cudaStreamSynchronize(stream_);
  for (void* p : allocations_) cudaFree(p);
  // free_buffer is collective, like the construction: only on the normal path. Unwinding from an error (this rank's
  // alone, perhaps) leaves them to the communicator, which frees its buffers unless a call failed.
  if (std::uncaught_exceptions() == 0)
    for (auto it = registered_.rbegin(); it != registered_.rend(); ++it) {
      try {
        comm_.free_buffer(*it);
      } catch (const std::exception& e) {
        fmt::print(stderr, "nvrar-llm: rank {}: {}\n", comm_.rank(), e.what());
      }
    }
  gemm_.reset();
  if (stream_ != nullptr) cudaStreamDestroy(stream_);
}

void LlamaTp::allocate() {
  const int rank = comm_.rank();
  auto alloc = [&](std::size_t bytes, const char* what) {
    void* p = nullptr;
    const cudaError_t e = cudaMalloc(&p, bytes);
    if (e != cudaSuccess)
      throw Error(fmt::format("nvrar-llm: rank {}: cannot allocate {} MiB for {}: {}", rank, bytes >> 20, what,
                              cudaGetErrorString(e)));
    allocations_.push_back(p);
    return p;
  };
  auto bf = [&](int64_t elems, const char* what) { return static_cast<bf16_t*>(alloc(elems * 2, what)); };
  const int64_t H = hidden_, D = head_dim_;
  const int64_t cache = options_.max_batch * kv_heads_ * options_.max_seq * D;
  layers_.resize(static_cast<std::size_t>(config_.num_layers));
  for (Layer& l : layers_) {
    l.qkv = bf(qkv_cols_ * H, "qkv_proj");
    l.o = bf(H * q_cols_, "o_proj");
    l.gate_up = bf(2 * inter_ * H, "gate_up_proj");
    l.down = bf(H * inter_, "down_proj");
    l.ln_in = bf(H, "input_layernorm");
    l.ln_post = bf(H, "post_attention_layernorm");
    l.cache_k = bf(cache, "KV cache");
    l.cache_v = bf(cache, "KV cache");
  }
  embedding_ = bf(config_.vocab_size * H, "embed_tokens");
  lm_head_ = bf(vocab_cols_ * H, "lm_head");
  final_norm_ = bf(H, "norm");
  const std::vector<double> inv = rope_inv_freq(config_);
  std::vector<float> inv_f(inv.begin(), inv.end());
  inv_freq_ = static_cast<float*>(alloc(inv_f.size() * sizeof(float), "RoPE table"));
  cuda_check(cudaMemcpy(inv_freq_, inv_f.data(), inv_f.size() * sizeof(float), cudaMemcpyHostToDevice), "RoPE table",
             rank);
  const int64_t T = std::max(options_.max_batch * options_.max_prefill, options_.max_batch);
  h_ = bf(T * H, "activations");

  qkv_ = bf(T * qkv_cols_, "activations");
  attn_ = bf(T * q_cols_, "activations");
  // The all-reduce's input (partial sums) and output in NVRAR's symmetric heap where NVRAR runs the all-reduce: the
  // registered two-shot then reads peers' partial sums in place and stores the sums straight into their outputs.
  // Where the heap's room (Options::buffer_bytes) is too small, plain memory (the copy-in path).
  auto registered = [&](int64_t elems, const char* what) -> bf16_t* {
    if (options_.allreduce != AllReduceBackend::kNccl && ranks_ > 1 && comm_.supports(Algorithm::kRegistered)) {
      try {
        void* p = comm_.allocate_buffer(static_cast<std::size_t>(elems) * 2);
        registered_.push_back(p);
        return static_cast<bf16_t*>(p);
      } catch (const Error& e) {
        if (rank == 0)
          fmt::print(stderr, "nvrar-llm: {} in plain memory (copy-in all-reduce): {}\n", what, e.what());
      }
    }
    return bf(elems, what);
  };
  part_ = registered(T * H, "all-reduce input");
  x_ = registered(T * H, "all-reduce output");
  gu_ = bf(T * 2 * inter_, "activations");
  act_ = bf(T * inter_, "activations");
  last_ = bf(options_.max_batch * H, "activations");
  logits_ = bf(options_.max_batch * vocab_cols_, "logits");
  AttentionShape s{T, qkv_cols_, q_heads_, kv_heads_, head_dim_, options_.max_seq, options_.max_seq};
  scratch_ = static_cast<float*>(alloc(attention_scratch_floats(s) * sizeof(float), "attention scratch"));
  best_value_ = static_cast<float*>(alloc((ranks_ + 1) * options_.max_batch * sizeof(float), "sampling"));
  best_index_ = static_cast<int32_t*>(alloc((ranks_ + 1) * options_.max_batch * sizeof(int32_t), "sampling"));
  auto ints = [&](int64_t n) { return static_cast<int32_t*>(alloc(n * sizeof(int32_t), "token bookkeeping")); };
  d_tokens_ = ints(options_.max_batch);
  d_prompt_ = ints(T);
  d_seq_ = ints(T);
  d_pos_ = ints(T);
  d_len_ = ints(T);
  d_logit_rows_ = ints(options_.max_batch);
}

void LlamaTp::init_dummy(uint64_t seed, float scale) {
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
  cuda_check(cudaStreamSynchronize(stream_), "dummy weights", comm_.rank());
}

void LlamaTp::load_checkpoint(const std::filesystem::path& dir) {
  const int rank = comm_.rank();
  Checkpoint ck(dir);
  std::vector<std::byte> host;
  // Rows or columns [begin, end) of a weight into dst (packed, row-major).
  auto load = [&](Weight w, int64_t layer, std::optional<Axis> axis, int64_t begin, int64_t end, bf16_t* dst) {
    const std::string name = checkpoint_tensor_name(config_, w, layer);
    const Shape shape = w == Weight::kLmHead && config_.tie_word_embeddings ? weight_shape(config_, Weight::kEmbedTokens)
                                                                            : weight_shape(config_, w);
    const TensorView view = ck.expect_tensor(name, TensorDtype::kBF16, shape);
    if (!axis) {
      cuda_check(cudaMemcpy(dst, view.data, view.nbytes, cudaMemcpyHostToDevice), "weight upload", rank);
      return;
    }
    const Slice2D slice = slice_2d(view, *axis, begin, end);
    host.resize(slice.nbytes());
    copy_slice(view, *axis, begin, end, std::span<std::byte>(host.data(), host.size()));
    cuda_check(cudaMemcpy(dst, host.data(), host.size(), cudaMemcpyHostToDevice), "weight upload", rank);
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

void LlamaTp::allreduce_norm(bf16_t* partial, const bf16_t* weight, int64_t n, Timer* timer) {
  if (timer) timer->mark(kAllReduce);
  const float eps = static_cast<float>(config_.rms_norm_eps);
  if (ranks_ == 1) {
    cuda_check(nvrar::gpu::launch_residual_rmsnorm(partial, h_, weight, x_, n, hidden_, eps, DataType::kBFloat16,
                                                   stream_),
               "residual + RMSNorm", comm_.rank());
    return;
  }
  Algorithm a = algorithm_;
  const std::size_t bytes = static_cast<std::size_t>(n * hidden_ * 2);
  const bool registered = partial == part_ && registered_.size() == 2;  // part_ and x_ both in NVRAR buffers
  if (options_.allreduce == AllReduceBackend::kNvrar && comm_.resolve(bytes, registered).algorithm == Algorithm::kNccl &&
      comm_.supports(Algorithm::kHierarchical) && bytes <= comm_.max_bytes())
    a = Algorithm::kHierarchical;  // NVRAR's kernels even where the tuner would pick NCCL (within their capacity)
  comm_.allreduce_add_rmsnorm(partial, h_, weight, x_, static_cast<std::size_t>(n), static_cast<std::size_t>(hidden_),
                              eps, DataType::kBFloat16, stream_, a);
}

void LlamaTp::sample(int64_t rows, Timer* timer) {
  if (timer) timer->mark(kOther);
  const int rank = comm_.rank();
  const int64_t B = options_.max_batch;
  float* local_v = best_value_ + ranks_ * B;
  int32_t* local_i = best_index_ + ranks_ * B;
  argmax_rows(logits_, rows, vocab_cols_, tp_.vocab.begin, local_v, local_i, stream_);
  if (ranks_ > 1) {
    nccl_check(ncclAllGather(local_v, best_value_, static_cast<size_t>(rows), ncclFloat32, comm_.nccl(), stream_),
               "sampling all-gather", rank);
    nccl_check(ncclAllGather(local_i, best_index_, static_cast<size_t>(rows), ncclInt32, comm_.nccl(), stream_),
               "sampling all-gather", rank);
    argmax_merge(best_value_, best_index_, ranks_, rows, d_tokens_, stream_);
  } else {
    argmax_merge(local_v, local_i, 1, rows, d_tokens_, stream_);
  }
}

void LlamaTp::forward(int64_t n, int64_t max_len, int64_t logit_rows, bool gather_rows_first, Timer* timer) {
  const int64_t H = hidden_;
  const float eps = static_cast<float>(config_.rms_norm_eps);
  if (timer) timer->mark(kOther);
  rmsnorm(h_, layers_[0].ln_in, x_, n, H, eps, stream_);
  const AttentionShape shape{n, qkv_cols_, q_heads_, kv_heads_, head_dim_, options_.max_seq, max_len};
  for (std::size_t i = 0; i < layers_.size(); ++i) {
    const Layer& l = layers_[i];
    if (timer) timer->mark(kGemm);
    gemm_->linear(x_, l.qkv, qkv_, n, qkv_cols_, H, stream_);
    if (timer) timer->mark(kAttention);
    rope_qk_append(qkv_, n, qkv_cols_, q_heads_, kv_heads_, head_dim_, d_pos_, inv_freq_, d_seq_, l.cache_k,
                   l.cache_v, options_.max_seq, stream_);
    attention(qkv_, d_seq_, d_len_, l.cache_k, l.cache_v, shape, scratch_, attn_, stream_);
    if (timer) timer->mark(kGemm);
    gemm_->linear(attn_, l.o, part_, n, H, q_cols_, stream_);
    allreduce_norm(part_, l.ln_post, n, timer);
    if (timer) timer->mark(kGemm);
    gemm_->linear(x_, l.gate_up, gu_, n, 2 * inter_, H, stream_);
    if (timer) timer->mark(kOther);
    swiglu(gu_, n, inter_, act_, stream_);
    if (timer) timer->mark(kGemm);
    gemm_->linear(act_, l.down, part_, n, H, inter_, stream_);
    allreduce_norm(part_, i + 1 < layers_.size() ? layers_[i + 1].ln_in : final_norm_, n, timer);
  }
  const bf16_t* src = x_;
  if (gather_rows_first) {
    if (timer) timer->mark(kOther);
    gather_rows(x_, d_logit_rows_, logit_rows, H, last_, stream_);
    src = last_;
  }
  if (timer) timer->mark(kGemm);
  gemm_->linear(src, lm_head_, logits_, logit_rows, vocab_cols_, H, stream_);
  sample(logit_rows, timer);
  logit_rows_ = logit_rows;
}

// Once per decode batch size n: has Gemm choose the kernel of each GEMM shape of an n-row forward, timing passes
// over every layer's matrix as a decode step streams them, before a graph capture (which can only take the first
// guess). Writes only scratch activations and logits_, which the next step rewrites; the KV cache and positions
// are untouched.
void LlamaTp::prepare_gemms(int64_t n) {
  if (prepared_batch_ == n) return;
  prepared_batch_ = n;
  const int64_t H = hidden_;
  std::vector<const void*> qkv, o, gate_up, down;
  for (const Layer& l : layers_) {
    qkv.push_back(l.qkv);
    o.push_back(l.o);
    gate_up.push_back(l.gate_up);
    down.push_back(l.down);
  }
  const void* const head[] = {lm_head_};
  gemm_->tune(x_, qkv, qkv_, n, qkv_cols_, H, stream_);
  gemm_->tune(attn_, o, part_, n, H, q_cols_, stream_);
  gemm_->tune(x_, gate_up, gu_, n, 2 * inter_, H, stream_);
  gemm_->tune(act_, down, part_, n, H, inter_, stream_);
  gemm_->tune(x_, head, logits_, n, vocab_cols_, H, stream_);
}

std::vector<int32_t> LlamaTp::prefill(const std::vector<int32_t>& prompts, int64_t batch, int64_t len) {
  const int rank = comm_.rank();
  if (batch < 1 || batch > options_.max_batch || len < 1 || len > options_.max_prefill ||
      static_cast<int64_t>(prompts.size()) != batch * len)
    throw Error(fmt::format("nvrar-llm: rank {} prefill: batch {} x length {} ({} tokens given) outside the engine's "
                            "batch {} x prefill {}",
                            rank, batch, len, prompts.size(), options_.max_batch, options_.max_prefill));
  for (std::size_t i = 0; i < prompts.size(); ++i)
    if (prompts[i] < 0 || prompts[i] >= config_.vocab_size)
      throw Error(fmt::format("nvrar-llm: rank {} prefill: token {} at {} outside the vocabulary [0, {})", rank,
                              prompts[i], i, config_.vocab_size));
  const int64_t n = batch * len;
  std::vector<int32_t> seq(n), pos(n), lens(n), rows(batch);
  for (int64_t t = 0; t < n; ++t) {
    seq[t] = static_cast<int32_t>(t / len);
    pos[t] = static_cast<int32_t>(t % len);
    lens[t] = pos[t] + 1;
  }
  for (int64_t b = 0; b < batch; ++b) rows[b] = static_cast<int32_t>(b * len + len - 1);
  auto up = [&](int32_t* dst, const std::vector<int32_t>& v) {
    cuda_check(cudaMemcpyAsync(dst, v.data(), v.size() * sizeof(int32_t), cudaMemcpyHostToDevice, stream_),
               "prefill upload", rank);
  };
  up(d_prompt_, prompts);
  up(d_seq_, seq);
  up(d_pos_, pos);
  up(d_len_, lens);
  up(d_logit_rows_, rows);
  embedding_lookup(d_prompt_, n, embedding_, hidden_, h_, stream_);
  forward(n, len, batch, /*gather_rows_first=*/true, nullptr);
  // Decode state: sequence b's next token is at position len.
  std::vector<int32_t> dseq(batch), dpos(batch, static_cast<int32_t>(len)), dlen(batch, static_cast<int32_t>(len + 1));
  for (int64_t b = 0; b < batch; ++b) dseq[b] = static_cast<int32_t>(b);
  cuda_check(cudaStreamSynchronize(stream_), "prefill", rank);
  up(d_seq_, dseq);
  up(d_pos_, dpos);
  up(d_len_, dlen);
  batch_ = batch;
  next_position_ = len;
  return tokens();
}

void LlamaTp::decode_step(bool use_graph) {
  const int rank = comm_.rank();
  if (batch_ == 0) throw Error(fmt::format("nvrar-llm: rank {} decode: no prefill yet", rank));
  if (next_position_ >= options_.max_seq)
    throw Error(fmt::format("nvrar-llm: rank {} decode: position {} reaches the engine's max_seq {}", rank,
                            next_position_, options_.max_seq));
  auto body = [&] {
    embedding_lookup(d_tokens_, batch_, embedding_, hidden_, h_, stream_);
    forward(batch_, options_.max_seq, batch_, /*gather_rows_first=*/false, nullptr);
    advance_positions(d_pos_, d_len_, batch_, stream_);
  };
  prepare_gemms(batch_);  // GEMM kernels timed and chosen outside any capture, for graph and eager steps
  if (!use_graph) {
    body();
  } else {
    if (graph_ == nullptr || graph_batch_ != batch_) {
      if (graph_ != nullptr) cudaGraphExecDestroy(graph_);
      graph_ = nullptr;
      cudaGraph_t g = nullptr;
      cuda_check(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal), "graph capture", rank);
      body();
      cuda_check(cudaStreamEndCapture(stream_, &g), "graph capture", rank);
      const cudaError_t e = cudaGraphInstantiate(&graph_, g, 0);
      cudaGraphDestroy(g);
      cuda_check(e, "graph instantiate", rank);
      graph_batch_ = batch_;
    }
    cuda_check(cudaGraphLaunch(graph_, stream_), "graph launch", rank);
  }
  ++next_position_;
}

StepBreakdown LlamaTp::timed_decode_step() {
  const int rank = comm_.rank();
  if (batch_ == 0) throw Error(fmt::format("nvrar-llm: rank {} decode: no prefill yet", rank));
  if (next_position_ >= options_.max_seq)
    throw Error(fmt::format("nvrar-llm: rank {} decode: position {} reaches max_seq {}", rank, next_position_,
                            options_.max_seq));
  prepare_gemms(batch_);
  Timer timer;
  timer.stream = stream_;
  timer.mark(kOther);
  embedding_lookup(d_tokens_, batch_, embedding_, hidden_, h_, stream_);
  forward(batch_, options_.max_seq, batch_, false, &timer);
  timer.mark(kOther);
  advance_positions(d_pos_, d_len_, batch_, stream_);
  ++next_position_;
  return timer.finish();
}

std::vector<int32_t> LlamaTp::tokens() {
  std::vector<int32_t> t(static_cast<std::size_t>(batch_ > 0 ? batch_ : 0));
  cuda_check(cudaMemcpyAsync(t.data(), d_tokens_, t.size() * sizeof(int32_t), cudaMemcpyDeviceToHost, stream_),
             "token download", comm_.rank());
  cuda_check(cudaStreamSynchronize(stream_), "token download", comm_.rank());
  return t;
}

std::string LlamaTp::gemm_choices() const { return gemm_->choices(); }

void LlamaTp::set_tokens(const std::vector<int32_t>& tokens) {
  const int rank = comm_.rank();
  if (static_cast<int64_t>(tokens.size()) != batch_)
    throw Error(fmt::format("nvrar-llm: rank {} set_tokens: {} tokens given for a batch of {}", rank, tokens.size(),
                            batch_));
  for (const int32_t t : tokens)
    if (t < 0 || t >= config_.vocab_size)
      throw Error(fmt::format("nvrar-llm: rank {} set_tokens: token {} outside the vocabulary [0, {})", rank, t,
                              config_.vocab_size));
  cuda_check(cudaMemcpyAsync(d_tokens_, tokens.data(), tokens.size() * sizeof(int32_t), cudaMemcpyHostToDevice,
                             stream_),
             "token upload", rank);
  cuda_check(cudaStreamSynchronize(stream_), "token upload", rank);
}

std::vector<float> LlamaTp::logits() {
  const int rank = comm_.rank();
  const int64_t rows = logit_rows_;
  const std::size_t shard = static_cast<std::size_t>(rows * vocab_cols_);
  void* gathered = nullptr;
  cuda_check(cudaMalloc(&gathered, shard * ranks_ * 2), "logits gather buffer", rank);
  if (ranks_ > 1)
    nccl_check(ncclAllGather(logits_, gathered, shard, ncclBfloat16, comm_.nccl(), stream_), "logits all-gather", rank);
  else
    cuda_check(cudaMemcpyAsync(gathered, logits_, shard * 2, cudaMemcpyDeviceToDevice, stream_), "logits copy", rank);
  std::vector<uint16_t> host(shard * ranks_);
  cuda_check(cudaMemcpyAsync(host.data(), gathered, host.size() * 2, cudaMemcpyDeviceToHost, stream_), "logits", rank);
  cuda_check(cudaStreamSynchronize(stream_), "logits", rank);
  cudaFree(gathered);
  std::vector<float> out(static_cast<std::size_t>(rows * config_.vocab_size));
  for (int r = 0; r < ranks_; ++r)
    for (int64_t row = 0; row < rows; ++row)
      for (int64_t c = 0; c < vocab_cols_; ++c) {
        const uint32_t bits = static_cast<uint32_t>(host[r * shard + row * vocab_cols_ + c]) << 16;
        float v;
        std::memcpy(&v, &bits, 4);
        out[row * config_.vocab_size + r * vocab_cols_ + c] = v;
      }
  return out;
}

}  // namespace nvrar::engine::gpu
