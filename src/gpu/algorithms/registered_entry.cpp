// The registered (zero-copy) two-shot's host side (registered.cu): its sync and gather areas, the reach of a call
// (the input must lie in a buffer of allocate_buffer()), the peers' addresses of the call's buffers and the agreement
// hash the kernel compares across ranks.
#include <algorithm>

#include <fmt/format.h>

#include "core/numeric.h"
#include "core/protocol.h"
#include "core/schedule.h"
#include "gpu/algorithms/algorithm.h"
#include "gpu/algorithms/registered.h"

namespace nvrar::gpu {
namespace {

class RegisteredAlgorithm final : public AllreduceAlgorithm {
 public:
  RegisteredAlgorithm() : AllreduceAlgorithm(Algorithm::kRegistered) {}

  std::size_t plan(const AlgorithmSetup& s) override {
    capacity_ = s.max_bytes;  // of the gather area; an output in a registered buffer has no such limit
    return s.nvshmem ? RegisteredSyncLayout::total_bytes() + gather_bytes() : 0;
  }

  void setup(const AlgorithmSetup& s, SymmetricHeap& heap) override {
    rank_ = s.common.rank;
    params_ = RegisteredParams{};
    params_.seq_counters = allocate_sequence_counters(s.common.rank, kMaxRegisteredBlocks);
    params_.common = s.common;
    max_blocks_ = s.max_blocks;
    if (!nvlink_domain_allows(s, kMaxRegisteredRanks)) return;
    const SymmetricArea sync = allocate_area(heap, RegisteredSyncLayout::total_bytes(), 8, "registered sync");
    const SymmetricArea gather =
        sync.local ? allocate_area(heap, gather_bytes(), core::kUnitBytes, "registered gather") : SymmetricArea{};
    if (sync.local == nullptr || gather.local == nullptr) {  // e.g. a heap sized by an earlier communicator
      release(heap);
      return;
    }
    std::copy(sync.peers, sync.peers + kMaxRegisteredRanks, params_.sync);
    std::copy(gather.peers, gather.peers + kMaxRegisteredRanks, params_.gather);
  }

  bool runs(const CallArgs& call) const override {
    return available() && call.in_buffer != nullptr && (call.out_buffer != nullptr || call.bytes <= capacity_);
  }

  std::string size_refusal(const CallArgs& call) const override {
    if (call.in_buffer == nullptr)
      return fmt::format("the registered two-shot reads peers' inputs in place: the input ({} bytes) must lie inside "
                         "one buffer of allocate_buffer()",
                         call.bytes);
    if (call.out_buffer == nullptr && call.bytes > capacity_)
      return fmt::format("{} bytes exceed the gather area of {} bytes (Options::max_bytes); an output inside a buffer "
                         "of allocate_buffer() has no such limit",
                         call.bytes, capacity_);
    return {};
  }

  cudaError_t launch(const Choice& c, const CallArgs& call) override {
    const RegisteredBuffer& in_buffer = *call.in_buffer;
    const RegisteredBuffer* out_buffer = call.out_buffer;
    const std::size_t bytes = call.bytes;
    const char* in_c = static_cast<const char*>(call.in);
    char* out_c = static_cast<char*>(call.out);
    if (in_c != out_c && in_c < out_c + bytes && out_c < in_c + bytes)
      throw Error(
          fmt::format("nvrar: rank {} allreduce: input and output overlap without being the same ({} bytes "
                      "at {} and {})",
                      rank_, bytes, call.in, call.out));
    RegisteredParams p = params_;
    const std::size_t in_offset = static_cast<std::size_t>(in_c - in_buffer.base);
    for (int r = 0; r < p.common.ranks; ++r) p.in[r] = in_buffer.peers[r] + in_offset;
    p.out = out_c;
    p.direct = out_buffer != nullptr;
    std::size_t out_offset = 0;
    if (p.direct) {
      out_offset = static_cast<std::size_t>(out_c - out_buffer->base);
      for (int r = 0; r < p.common.ranks; ++r) p.out_peers[r] = out_buffer->peers[r] + out_offset;
    }
    p.count = static_cast<int64_t>(call.count);
    p.units = core::ceil_div(static_cast<int64_t>(bytes), core::kUnitBytes);
    const int threads = c.threads > 0 ? c.threads : 256;
    const int blocks = c.blocks > 0 ? std::min(c.blocks, kMaxRegisteredBlocks)
                                    : registered_blocks(p.units, p.common.ranks, threads, max_blocks_);
    p.agreement = registered_agreement(
        (in_buffer.id << 40) | in_offset, p.direct ? (out_buffer->id << 40) | out_offset : ~0ULL,
        (static_cast<unsigned long long>(call.count) << 20) | (static_cast<unsigned long long>(call.dtype) << 16) |
            static_cast<unsigned long long>(blocks));
    return launch_registered(p, call.dtype, blocks, threads, call.stream);
  }

  std::string describe() const override {
    return available() ? "registered on" : fmt::format("registered off ({})", unavailable_);
  }

 protected:
  const char* long_name() const override { return "registered two-shot"; }
  std::string needs() const override {
    return fmt::format("NVSHMEM and every rank load/store reachable over NVLink (one host, at most {} ranks)",
                       kMaxRegisteredRanks);
  }
  const char* capacity_option() const override { return "Options::max_bytes"; }
  int max_threads() const override { return kRegisteredMaxThreads; }

 private:
  std::size_t gather_bytes() const { return (capacity_ + 255) / 256 * 256; }  // whole units

  RegisteredParams params_{};
  int rank_ = 0;
  int max_blocks_ = 1;
};

}  // namespace

std::unique_ptr<AllreduceAlgorithm> make_registered_algorithm() { return std::make_unique<RegisteredAlgorithm>(); }

}  // namespace nvrar::gpu
