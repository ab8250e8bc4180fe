// Prefill, decode steps, CUDA graphs, the KV cache and the instrumented step of one TP rank (runner.h).
#include "engine/gpu/runner.h"

#include <cuda_runtime.h>

#include <algorithm>

#include <fmt/format.h>

#include "engine/gpu/flash_prefill.h"
#include "nvrar/types.h"

namespace nvrar::engine::gpu {

LlamaRunner::Stream::Stream(int rank) {
  cuda_check(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), "stream", rank);
}

LlamaRunner::Stream::~Stream() {
  if (stream_ != nullptr) cudaStreamDestroy(stream_);
}

LlamaRunner::LlamaRunner(const ModelConfig& config, Communicator& comm, const EngineOptions& options)
    : options_(options),
      rank_(comm.rank()),
      allreduce_(comm, options.allreduce),
      stream_(rank_),
      model_(config, allreduce_, options, stream_.get()),
      sampler_(comm.nccl(), rank_, comm.size(), options.max_batch, model_.tp().vocab.begin, model_.vocab_cols(),
               config.vocab_size),
      memory_(rank_) {
  const int64_t cache = options_.max_batch * options_.max_seq * model_.kv_cols();
  check_kv_cache_fits(2 * config.num_layers * cache * static_cast<int64_t>(sizeof(bf16_t)));
  for (int64_t i = 0; i < config.num_layers; ++i) {
    cache_k_.push_back(memory_.bf16(cache, "KV cache"));
    cache_v_.push_back(memory_.bf16(cache, "KV cache"));
  }
  const int64_t T = std::max(options_.prefill_chunk, options_.max_batch);
  // A chunk's tiles: one per kFlashTileRows rows (the smaller tile) of each sequence it touches (at most max_batch
  // partial ones).
  const int64_t max_tiles = T / kFlashTileRows + options_.max_batch + 1;
  static_assert(sizeof(PrefillTile) == 4 * sizeof(int32_t));
  d_tiles_ = reinterpret_cast<PrefillTile*>(memory_.i32(4 * max_tiles, "token bookkeeping"));
  d_tokens_ = memory_.i32(options_.max_batch, "token bookkeeping");
  d_prompt_ = memory_.i32(T, "token bookkeeping");
  d_seq_ = memory_.i32(T, "token bookkeeping");
  d_pos_ = memory_.i32(T, "token bookkeeping");
  d_len_ = memory_.i32(T, "token bookkeeping");
  d_logit_rows_ = memory_.i32(options_.max_batch, "token bookkeeping");
  inputs_ = ForwardInputs{d_seq_, d_pos_, d_len_, d_logit_rows_, d_tiles_, cache_k_, cache_v_};
}

LlamaRunner::~LlamaRunner() {
  if (graph_ != nullptr) cudaGraphExecDestroy(graph_);
  cudaStreamSynchronize(stream_.get());
  // Then, as members go: KV cache and bookkeeping, sampling buffers, the model (weights, activations, GEMM
  // workspace), the stream, and last the NVRAR buffers of the all-reduce (collective).
}

void LlamaRunner::init_dummy(uint64_t seed, float scale) { model_.init_dummy(seed, scale); }

void LlamaRunner::load_checkpoint(const std::filesystem::path& dir) {
  Checkpoint checkpoint(dir);
  model_.load_checkpoint(checkpoint);
}

void LlamaRunner::check_kv_cache_fits(int64_t bytes) const {
  size_t free_bytes = 0, total_bytes = 0;
  cuda_check(cudaMemGetInfo(&free_bytes, &total_bytes), "memory info", rank_);
  if (static_cast<double>(bytes) > static_cast<double>(free_bytes))
    throw Error(fmt::format("nvrar-llm: rank {} KV cache: batch {} x {} positions x {} layers needs {:.2f} GB; the GPU "
                            "has {:.2f} GB free of {:.2f} GB after the weights and activations (lower --batch-size or "
                            "the lengths, or use more GPUs)",
                            rank_, options_.max_batch, options_.max_seq, model_.config().num_layers, bytes / 1e9,
                            free_bytes / 1e9, total_bytes / 1e9));
}

void LlamaRunner::sample(int64_t rows, StepTimer* timer) {
  if (timer) timer->mark(StepPart::kOther);
  sampler_.sample(model_.logits(), rows, d_pos_, nullptr, d_tokens_, stream_.get());
  logit_rows_ = rows;
}

std::vector<int32_t> LlamaRunner::prefill(const std::vector<int32_t>& prompts, int64_t batch, int64_t len) {
  if (batch < 1 || len < 1 || static_cast<int64_t>(prompts.size()) != batch * len)
    throw Error(fmt::format("nvrar-llm: rank {} prefill: batch {} x length {} but {} tokens given", rank_, batch, len,
                            prompts.size()));
  std::vector<std::vector<int32_t>> rows;
  for (int64_t b = 0; b < batch; ++b) rows.emplace_back(prompts.begin() + b * len, prompts.begin() + (b + 1) * len);
  return prefill(rows);
}

std::vector<int32_t> LlamaRunner::prefill(const std::vector<std::vector<int32_t>>& prompts,
                                          const std::function<void(int64_t, int64_t)>& progress) {
  return prefill_chunks(prompts, progress, nullptr);
}

StepBreakdown LlamaRunner::timed_prefill(const std::vector<std::vector<int32_t>>& prompts,
                                         const std::function<void(int64_t, int64_t)>& progress) {
  StepTimer timer(stream_.get());
  prefill_chunks(prompts, progress, &timer);
  return timer.finish();
}

std::vector<int32_t> LlamaRunner::prefill_chunks(const std::vector<std::vector<int32_t>>& prompts,
                                                 const std::function<void(int64_t, int64_t)>& progress,
                                                 StepTimer* timer) {
  const int64_t vocab = model_.config().vocab_size;
  const int64_t batch = static_cast<int64_t>(prompts.size());
  if (batch < 1 || batch > options_.max_batch)
    throw Error(fmt::format("nvrar-llm: rank {} prefill: {} prompts; the engine was sized for 1 to {}", rank_, batch,
                            options_.max_batch));
  int64_t total = 0, longest = 0;
  for (int64_t b = 0; b < batch; ++b) {
    const auto& p = prompts[static_cast<std::size_t>(b)];
    const int64_t len = static_cast<int64_t>(p.size());
    if (len < 1 || len >= options_.max_seq)
      throw Error(fmt::format("nvrar-llm: rank {} prefill: prompt {} has {} tokens; the engine takes 1 to {} (max_seq "
                              "{} minus one for the first generated token)",
                              rank_, b, len, options_.max_seq - 1, options_.max_seq));
    for (std::size_t i = 0; i < p.size(); ++i)
      if (p[i] < 0 || p[i] >= vocab)
        throw Error(fmt::format("nvrar-llm: rank {} prefill: prompt {} token {} at {} outside the vocabulary [0, {})",
                                rank_, b, p[i], i, vocab));
    total += len;
    longest = std::max(longest, len);
  }
  // Until this prefill completes there is no decode state: a prefill that throws part way (a CUDA error, a progress
  // callback that cancels) leaves decode_step refusing, not running on a chunk's bookkeeping.
  batch_ = 0;
  next_position_ = 0;
  const std::vector<PrefillChunk> plan = plan_prefill(prompts, options_.prefill_chunk, model_.prefill_tile_rows(),
                                                      model_.prefill_group_keys());
  const cudaStream_t stream = stream_.get();
  auto up = [&](void* dst, const void* src, std::size_t bytes) {
    cuda_check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, stream), "prefill upload", rank_);
  };
  auto up_i32 = [&](int32_t* dst, const std::vector<int32_t>& v) { up(dst, v.data(), v.size() * sizeof(int32_t)); };
  int64_t done = 0;
  for (const PrefillChunk& c : plan) {
    const int64_t n = c.rows();
    up_i32(d_prompt_, c.tokens);
    up_i32(d_seq_, c.seq);
    up_i32(d_pos_, c.positions);
    up_i32(d_len_, c.lengths);
    up(d_tiles_, c.tiles.data(), c.tiles.size() * sizeof(PrefillTile));
    if (timer) timer->mark(StepPart::kOther);
    model_.embed(d_prompt_, n);
    model_.forward_layers(n, c.max_len, static_cast<int64_t>(c.tiles.size()), inputs_, timer);
    if (timer) timer->mark(StepPart::kOther);
    if (!c.done_rows.empty()) {
      up_i32(d_logit_rows_, c.done_rows);
      model_.keep_rows(d_logit_rows_, static_cast<int64_t>(c.done_rows.size()), c.first_done);
    }
    done += n;
    if (progress) {
      cuda_check(cudaStreamSynchronize(stream), "prefill", rank_);
      progress(done, total);
    }
  }
  // Sampling: row b is sequence b, its last prompt token at position len_b - 1. Then the decode state: sequence b's
  // next token is at position len_b.
  std::vector<int32_t> dseq(batch), last(batch), dpos(batch), dlen(batch);
  for (int64_t b = 0; b < batch; ++b) {
    const int32_t len = static_cast<int32_t>(prompts[static_cast<std::size_t>(b)].size());
    dseq[b] = static_cast<int32_t>(b);
    last[b] = len - 1;
    dpos[b] = len;
    dlen[b] = len + 1;
  }
  up_i32(d_pos_, last);
  model_.lm_head(/*kept_rows=*/true, batch, timer);
  sample(batch, timer);
  if (timer) timer->mark(StepPart::kOther);
  cuda_check(cudaStreamSynchronize(stream), "prefill", rank_);  // the host vectors above are uploaded
  up_i32(d_seq_, dseq);
  up_i32(d_pos_, dpos);
  up_i32(d_len_, dlen);
  batch_ = batch;
  next_position_ = longest;
  return tokens();
}

void LlamaRunner::check_decode() const {
  if (batch_ == 0) throw Error(fmt::format("nvrar-llm: rank {} decode: no prefill yet", rank_));
  if (next_position_ >= options_.max_seq)
    throw Error(fmt::format("nvrar-llm: rank {} decode: position {} reaches the engine's max_seq {}", rank_,
                            next_position_, options_.max_seq));
}

void LlamaRunner::decode_step(bool use_graph) {
  check_decode();
  const cudaStream_t stream = stream_.get();
  auto body = [&] {
    model_.embed(d_tokens_, batch_);
    model_.forward(batch_, options_.max_seq, inputs_, nullptr);
    sample(batch_, nullptr);
    advance_positions(d_pos_, d_len_, batch_, stream);
  };
  model_.prepare_gemms(batch_);  // GEMM kernels timed and chosen outside any capture, for graph and eager steps
  if (!use_graph) {
    body();
  } else {
    if (graph_ == nullptr || graph_batch_ != batch_) {
      if (graph_ != nullptr) cudaGraphExecDestroy(graph_);
      graph_ = nullptr;
      cudaGraph_t g = nullptr;
      cuda_check(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal), "graph capture", rank_);
      body();
      cuda_check(cudaStreamEndCapture(stream, &g), "graph capture", rank_);
      const cudaError_t e = cudaGraphInstantiate(&graph_, g, 0);
      cudaGraphDestroy(g);
      cuda_check(e, "graph instantiate", rank_);
      graph_batch_ = batch_;
    }
    cuda_check(cudaGraphLaunch(graph_, stream), "graph launch", rank_);
  }
  ++next_position_;
}

StepBreakdown LlamaRunner::timed_decode_step() {
  check_decode();
  const cudaStream_t stream = stream_.get();
  model_.prepare_gemms(batch_);
  StepTimer timer(stream);
  timer.mark(StepPart::kOther);
  model_.embed(d_tokens_, batch_);
  model_.forward(batch_, options_.max_seq, inputs_, &timer);
  sample(batch_, &timer);
  timer.mark(StepPart::kOther);
  advance_positions(d_pos_, d_len_, batch_, stream);
  ++next_position_;
  return timer.finish();
}

void LlamaRunner::set_sampling(const SamplingParams& params) {
  sampler_.set_params(params);
  if (graph_ != nullptr) cudaGraphExecDestroy(graph_);
  graph_ = nullptr;
}

std::vector<int32_t> LlamaRunner::tokens() {
  const cudaStream_t stream = stream_.get();
  std::vector<int32_t> t(static_cast<std::size_t>(batch_ > 0 ? batch_ : 0));
  cuda_check(cudaMemcpyAsync(t.data(), d_tokens_, t.size() * sizeof(int32_t), cudaMemcpyDeviceToHost, stream),
             "token download", rank_);
  cuda_check(cudaStreamSynchronize(stream), "token download", rank_);
  return t;
}

void LlamaRunner::set_tokens(const std::vector<int32_t>& tokens) {
  const int64_t vocab = model_.config().vocab_size;
  const cudaStream_t stream = stream_.get();
  if (static_cast<int64_t>(tokens.size()) != batch_)
    throw Error(fmt::format("nvrar-llm: rank {} set_tokens: {} tokens given for a batch of {}", rank_, tokens.size(),
                            batch_));
  for (const int32_t t : tokens)
    if (t < 0 || t >= vocab)
      throw Error(fmt::format("nvrar-llm: rank {} set_tokens: token {} outside the vocabulary [0, {})", rank_, t,
                              vocab));
  cuda_check(cudaMemcpyAsync(d_tokens_, tokens.data(), tokens.size() * sizeof(int32_t), cudaMemcpyHostToDevice,
                             stream),
             "token upload", rank_);
  cuda_check(cudaStreamSynchronize(stream), "token upload", rank_);
}

std::vector<float> LlamaRunner::logits() { return sampler_.gather_logits(model_.logits(), logit_rows_, stream_.get()); }

}  // namespace nvrar::engine::gpu
