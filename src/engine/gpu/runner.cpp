// Prefill, decode steps, CUDA graphs, the KV cache and the instrumented step of one TP rank (runner.h).
#include "engine/gpu/runner.h"

#include <cuda_runtime.h>

#include <algorithm>

#include <fmt/format.h>

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
  for (int64_t i = 0; i < config.num_layers; ++i) {
    cache_k_.push_back(memory_.bf16(cache, "KV cache"));
    cache_v_.push_back(memory_.bf16(cache, "KV cache"));
  }
  const int64_t T = std::max(options_.max_batch * options_.max_prefill, options_.max_batch);
  d_tokens_ = memory_.i32(options_.max_batch, "token bookkeeping");
  d_prompt_ = memory_.i32(T, "token bookkeeping");
  d_seq_ = memory_.i32(T, "token bookkeeping");
  d_pos_ = memory_.i32(T, "token bookkeeping");
  d_len_ = memory_.i32(T, "token bookkeeping");
  d_logit_rows_ = memory_.i32(options_.max_batch, "token bookkeeping");
  inputs_ = ForwardInputs{d_seq_, d_pos_, d_len_, d_logit_rows_, cache_k_, cache_v_};
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

void LlamaRunner::forward_and_sample(int64_t n, int64_t max_len, int64_t logit_rows, bool gather_rows_first,
                                     StepTimer* timer) {
  model_.forward(n, max_len, logit_rows, gather_rows_first, inputs_, timer);
  if (timer) timer->mark(StepPart::kOther);
  // The token drawn for row r follows its last input token: in a prefill row r's last token is d_logit_rows_[r].
  sampler_.sample(model_.logits(), logit_rows, d_pos_, gather_rows_first ? d_logit_rows_ : nullptr, d_tokens_,
                  stream_.get());
  logit_rows_ = logit_rows;
}

std::vector<int32_t> LlamaRunner::prefill(const std::vector<int32_t>& prompts, int64_t batch, int64_t len) {
  const int64_t vocab = model_.config().vocab_size;
  if (batch < 1 || batch > options_.max_batch || len < 1 || len > options_.max_prefill ||
      static_cast<int64_t>(prompts.size()) != batch * len)
    throw Error(fmt::format("nvrar-llm: rank {} prefill: batch {} x length {} ({} tokens given) outside the engine's "
                            "batch {} x prefill {}",
                            rank_, batch, len, prompts.size(), options_.max_batch, options_.max_prefill));
  for (std::size_t i = 0; i < prompts.size(); ++i)
    if (prompts[i] < 0 || prompts[i] >= vocab)
      throw Error(fmt::format("nvrar-llm: rank {} prefill: token {} at {} outside the vocabulary [0, {})", rank_,
                              prompts[i], i, vocab));
  const int64_t n = batch * len;
  std::vector<int32_t> seq(n), pos(n), lens(n), rows(batch);
  for (int64_t t = 0; t < n; ++t) {
    seq[t] = static_cast<int32_t>(t / len);
    pos[t] = static_cast<int32_t>(t % len);
    lens[t] = pos[t] + 1;
  }
  for (int64_t b = 0; b < batch; ++b) rows[b] = static_cast<int32_t>(b * len + len - 1);
  const cudaStream_t stream = stream_.get();
  auto up = [&](int32_t* dst, const std::vector<int32_t>& v) {
    cuda_check(cudaMemcpyAsync(dst, v.data(), v.size() * sizeof(int32_t), cudaMemcpyHostToDevice, stream),
               "prefill upload", rank_);
  };
  up(d_prompt_, prompts);
  up(d_seq_, seq);
  up(d_pos_, pos);
  up(d_len_, lens);
  up(d_logit_rows_, rows);
  model_.embed(d_prompt_, n);
  forward_and_sample(n, len, batch, /*gather_rows_first=*/true, nullptr);
  // Decode state: sequence b's next token is at position len.
  std::vector<int32_t> dseq(batch), dpos(batch, static_cast<int32_t>(len)), dlen(batch, static_cast<int32_t>(len + 1));
  for (int64_t b = 0; b < batch; ++b) dseq[b] = static_cast<int32_t>(b);
  cuda_check(cudaStreamSynchronize(stream), "prefill", rank_);
  up(d_seq_, dseq);
  up(d_pos_, dpos);
  up(d_len_, dlen);
  batch_ = batch;
  next_position_ = len;
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
    forward_and_sample(batch_, options_.max_seq, batch_, /*gather_rows_first=*/false, nullptr);
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
  forward_and_sample(batch_, options_.max_seq, batch_, /*gather_rows_first=*/false, &timer);
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
