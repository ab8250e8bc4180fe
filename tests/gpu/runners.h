// The two ways test_gpu_allreduce runs calls: one at a time with its own synchronisation (SingleCaseRunner: the
// matrices, the sanitizer's eager part) and many back to back, each with its own buffers carved from two arenas
// (Batch: the eager and graph sections), plus the random call lists those sections draw.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "harness.h"

namespace gpu_allreduce_test {

// ---- one call at a time, with its own synchronisation (the correctness matrix, the sanitizer's eager part) ----

class SingleCaseRunner {
 public:
  // Room for the largest call, one element of misalignment and the guards. The input and output arenas come from
  // cudaMalloc or allocate_buffer (an in-place call's input is its output, so it is registered when the output is);
  // NCCL's output is always plain.
  SingleCaseRunner(const Ctx& ctx, std::size_t max_bytes, Memory in_memory = Memory::kPlain,
                   Memory out_memory = Memory::kPlain)
      : ctx_(ctx),
        d_in_(arena_bytes(max_bytes), in_memory, ctx.comm),
        d_out_(arena_bytes(max_bytes), out_memory, ctx.comm),
        d_nccl_(arena_bytes(max_bytes)),
        label_prefix_(placement_label(in_memory, out_memory)) {}

  static std::size_t arena_bytes(std::size_t max_bytes) { return max_bytes + 2 * kGuard + 4; }
  // Whether call c's input lies in a registered arena.
  bool registered_input(const Call& c) const { return c.in_place ? d_out_.registered() : d_in_.registered(); }

  // Runs call c (this rank's input seeded by seed) and adds its case to s; compare_nccl: also check the output
  // against ncclAllReduce's on the same input.
  void run(Section& s, const Call& c, uint64_t seed, bool compare_nccl);

 private:
  const Ctx& ctx_;
  DeviceBuffer d_in_, d_out_, d_nccl_;
  std::string label_prefix_;
  std::vector<std::vector<unsigned char>> inputs_;
  std::vector<unsigned char> h_slot_, h_nccl_, h_in_after_;
};

// ---- many calls, each with its own buffers carved from two arenas (eager and graph suites) ----

class Batch {
 public:
  // The arenas come from cudaMalloc or allocate_buffer; in-place calls live in the output arena, so their input is
  // registered exactly when out_memory is. Every rank lays out the same calls alike: the same offsets everywhere,
  // as calls on registered buffers require.
  Batch(const Ctx& ctx, std::vector<Call> calls, Memory in_memory = Memory::kPlain,
        Memory out_memory = Memory::kPlain)
      : ctx_(ctx), calls_(std::move(calls)), in_memory_(in_memory), out_memory_(out_memory) {
    std::size_t in_bytes = 0, out_bytes = 0;
    for (Call& c : calls_) {
      if (!c.in_place) {
        c.in_at = in_bytes + c.shift();
        in_bytes = align_up(c.in_at + c.bytes(), kGuard);
      }
      c.out_slot = out_bytes;
      out_bytes = align_up(out_bytes + c.slot_bytes(), kGuard);
    }
    in_bytes = std::max(in_bytes, kGuard);
    d_in_ = DeviceBuffer(in_bytes, in_memory, ctx.comm);
    d_out_ = DeviceBuffer(out_bytes, out_memory, ctx.comm);
    h_in_.assign(in_bytes, 0);
    h_in_after_.assign(in_bytes, 0);
    h_out_.assign(out_bytes, kPoison);
    h_res_.assign(out_bytes, 0);
  }

  const std::vector<Call>& calls() const { return calls_; }
  std::size_t device_bytes() const { return d_in_.bytes() + d_out_.bytes(); }
  std::string placement() const { return placement_label(in_memory_, out_memory_); }

  // This rank's input of call i (seed seed_base + i) goes to its input buffer, or for an in-place call into its
  // output slot; every other output byte is poison. Enqueues the upload of both arenas on the stream.
  void upload_inputs(uint64_t seed_base);

  // Every call, back to back, nothing in between.
  void enqueue_calls();

  // After the calls have completed: copies both arenas back and adds one case per call to `s`.
  void verify(Section& s, uint64_t seed_base, const std::string& label_prefix);

 private:
  const Ctx& ctx_;
  std::vector<Call> calls_;
  Memory in_memory_, out_memory_;
  DeviceBuffer d_in_, d_out_;
  std::vector<unsigned char> h_in_, h_out_, h_res_, h_in_after_;
  std::vector<std::vector<unsigned char>> inputs_;
};

// The same sequence on every rank: drawn from a generator seeded identically everywhere. Counts are log-uniform in
// [1, max_count] (and within capacity), types uniform, half in-place, one in eight misaligned.
std::vector<Call> random_calls(const Ctx& ctx, int n, uint64_t seed, std::size_t max_count);

// Inputs of batch b of a run are seeded from seed_base + b x kBatchSeedStride (more than any batch's calls).
constexpr uint64_t kBatchSeedStride = 100'000;

}  // namespace gpu_allreduce_test
