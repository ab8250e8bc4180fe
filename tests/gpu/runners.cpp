// SingleCaseRunner, Batch and random_calls (runners.h).
#include "runners.h"

#include <cuda_runtime_api.h>
#include <nccl.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "check/verify.h"
#include "nvrar/nvrar.h"

namespace gpu_allreduce_test {

void SingleCaseRunner::run(Section& s, const Call& c, uint64_t seed, bool compare_nccl) {
  const std::size_t bytes = c.bytes();
  const nvrar::check::Reference ref = all_inputs_and_reference(ctx_, c, seed, inputs_);
  const unsigned char* mine = inputs_[ctx_.rank].data();
  unsigned char* in = d_in_.get() + kGuard + c.shift();
  unsigned char* out = d_out_.get() + kGuard + c.shift();
  unsigned char* nccl_out = d_nccl_.get() + kGuard + c.shift();
  cudaStream_t stream = ctx_.stream;

  // Every copy is on the test's stream: it is non-blocking, so nothing on the legacy default stream orders with it.
  CHECK_CUDA(cudaMemcpyAsync(in, mine, bytes, cudaMemcpyHostToDevice, stream));
  CHECK_CUDA(cudaMemsetAsync(d_out_.get(), kPoison, c.slot_bytes(), stream));
  if (c.in_place) CHECK_CUDA(cudaMemcpyAsync(out, in, bytes, cudaMemcpyDeviceToDevice, stream));
  ctx_.comm->allreduce(c.in_place ? out : in, out, c.count, c.dtype, stream, c.algorithm);
  if (compare_nccl) {
    CHECK_CUDA(cudaMemsetAsync(nccl_out, kPoison, bytes, stream));
    CHECK_NCCL(
        ncclAllReduce(in, nccl_out, c.count, nvrar::nccl_data_type(c.dtype), ncclSum, ctx_.comm->nccl(), stream));
  }
  ctx_.comm->synchronize(stream);

  h_slot_.resize(std::max(h_slot_.size(), c.slot_bytes()));
  h_in_after_.resize(std::max(h_in_after_.size(), bytes));
  CHECK_CUDA(cudaMemcpyAsync(h_slot_.data(), d_out_.get(), c.slot_bytes(), cudaMemcpyDeviceToHost, stream));
  CHECK_CUDA(cudaMemcpyAsync(h_in_after_.data(), in, bytes, cudaMemcpyDeviceToHost, stream));
  if (compare_nccl) {
    h_nccl_.resize(std::max(h_nccl_.size(), bytes));
    CHECK_CUDA(cudaMemcpyAsync(h_nccl_.data(), nccl_out, bytes, cudaMemcpyDeviceToHost, stream));
  }
  CHECK_CUDA(cudaStreamSynchronize(stream));

  CaseRecord rec;
  rec.label = label_prefix_ + describe(c);
  check_output(ctx_, c, h_slot_.data(), ref, rec.problems);
  // In-place calls never see d_in; it must be untouched all the same.
  if (std::memcmp(h_in_after_.data(), mine, bytes) != 0)
    rec.problems.push_back(c.in_place ? "a buffer the call was not given was modified" : "the input was modified");
  if (compare_nccl)
    check_against_nccl(ctx_, c, h_slot_.data() + kGuard + c.shift(), h_nccl_.data(), ref, rec.problems);
  rec.hash = fnv1a64(h_slot_.data() + kGuard + c.shift(), bytes);
  s.cases.push_back(std::move(rec));
}

void Batch::upload_inputs(uint64_t seed_base) {
  std::fill(h_in_.begin(), h_in_.end(), 0);
  std::fill(h_out_.begin(), h_out_.end(), kPoison);
  for (std::size_t i = 0; i < calls_.size(); ++i) {
    const Call& c = calls_[i];
    unsigned char* dst = c.in_place ? h_out_.data() + c.out_data() : h_in_.data() + c.in_at;
    nvrar::check::fill_random(dst, c.count, c.dtype, seed_base + i, ctx_.rank);
  }
  CHECK_CUDA(cudaMemcpyAsync(d_in_.get(), h_in_.data(), h_in_.size(), cudaMemcpyHostToDevice, ctx_.stream));
  CHECK_CUDA(cudaMemcpyAsync(d_out_.get(), h_out_.data(), h_out_.size(), cudaMemcpyHostToDevice, ctx_.stream));
}

void Batch::enqueue_calls() {
  for (const Call& c : calls_) {
    unsigned char* out = d_out_.get() + c.out_data();
    const unsigned char* in = c.in_place ? out : d_in_.get() + c.in_at;
    ctx_.comm->allreduce(in, out, c.count, c.dtype, ctx_.stream, c.algorithm);
  }
}

void Batch::verify(Section& s, uint64_t seed_base, const std::string& label_prefix) {
  CHECK_CUDA(cudaMemcpyAsync(h_res_.data(), d_out_.get(), h_res_.size(), cudaMemcpyDeviceToHost, ctx_.stream));
  CHECK_CUDA(cudaMemcpyAsync(h_in_after_.data(), d_in_.get(), h_in_after_.size(), cudaMemcpyDeviceToHost,
                             ctx_.stream));
  CHECK_CUDA(cudaStreamSynchronize(ctx_.stream));
  for (std::size_t i = 0; i < calls_.size(); ++i) {
    const Call& c = calls_[i];
    const nvrar::check::Reference ref = all_inputs_and_reference(ctx_, c, seed_base + i, inputs_);
    CaseRecord rec;
    rec.label = fmt::format("{}call {}: {}", label_prefix, i, describe(c));
    check_output(ctx_, c, h_res_.data() + c.out_slot, ref, rec.problems);
    if (!c.in_place && std::memcmp(h_in_after_.data() + c.in_at, h_in_.data() + c.in_at, c.bytes()) != 0)
      rec.problems.push_back("the input was modified");
    rec.hash = fnv1a64(h_res_.data() + c.out_data(), c.bytes());
    s.cases.push_back(std::move(rec));
  }
}

std::vector<Call> random_calls(const Ctx& ctx, int n, uint64_t seed, std::size_t max_count) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> log_count(0.0, std::log(static_cast<double>(max_count) + 1.0));
  std::vector<Call> calls;
  for (int i = 0; i < n; ++i) {
    Call c;
    c.dtype = kTypes[rng() % 3];
    const std::size_t capacity = ctx.comm->max_bytes() / esize(c.dtype);
    c.count = static_cast<std::size_t>(std::exp(log_count(rng)));
    c.count = std::clamp<std::size_t>(c.count, 1, std::min(max_count, capacity));
    const uint64_t pick = rng() % 5;
    c.algorithm = Algorithm::kAuto;
    if (pick == 0 && ctx.hierarchical) c.algorithm = Algorithm::kHierarchical;
    if (pick == 1 && ctx.comm->supports(Algorithm::kOneShot) &&
        c.count <= capacity_of(ctx, Algorithm::kOneShot, c.dtype))
      c.algorithm = Algorithm::kOneShot;
    if (pick == 2 && ctx.comm->supports(Algorithm::kLl128) &&
        c.count <= capacity_of(ctx, Algorithm::kLl128, c.dtype))
      c.algorithm = Algorithm::kLl128;
    if (pick == 3 && ctx.comm->supports(Algorithm::kPush) &&
        c.count <= capacity_of(ctx, Algorithm::kPush, c.dtype))
      c.algorithm = Algorithm::kPush;
    c.in_place = rng() % 2 == 0;
    c.misaligned = rng() % 8 == 0;
    calls.push_back(c);
  }
  return calls;
}

}  // namespace gpu_allreduce_test
