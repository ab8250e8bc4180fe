// The LL128 two-shot's host side (ll128.cu): its exchange area (sized by Options::ll128_max_bytes or the tuning
// table), the blocks that fit on the device at once, and the call's grid.
#include <algorithm>

#include <fmt/format.h>

#include "core/numeric.h"
#include "core/schedule.h"
#include "gpu/algorithms/algorithm.h"
#include "gpu/algorithms/ll128.h"

namespace nvrar::gpu {
namespace {

class Ll128Algorithm final : public AllreduceAlgorithm {
 public:
  Ll128Algorithm() : AllreduceAlgorithm(Algorithm::kLl128) {}

  std::size_t plan(const AlgorithmSetup& s) override {
    capacity_ = nvlink_twoshot_capacity(s, Algorithm::kLl128);
    layout_.ranks = s.common.ranks;
    layout_.lines_max = ll128_lines(static_cast<int64_t>(capacity_), s.common.ranks);
    layout_.slice_lines_max = core::ceil_div(layout_.lines_max, static_cast<int64_t>(s.common.ranks));
    // The heap reserves the area only where it can be used: one NVLink domain, few enough ranks, a capacity.
    const bool possible = s.nvshmem && s.topo.nodes == 1 && s.common.ranks <= kMaxLl128Ranks && capacity_ > 0;
    return possible ? layout_.total_bytes() : 0;
  }

  void setup(const AlgorithmSetup& s, SymmetricHeap& heap) override {
    params_ = Ll128Params{};
    params_.seq_counters = allocate_sequence_counters(s.common.rank, kMaxLl128Blocks);
    params_.common = s.common;
    max_blocks_ = s.max_blocks;
    if (!nvlink_domain_allows(s, kMaxLl128Ranks)) return;
    if (capacity_ == 0) {
      unavailable_ = "Options::ll128_max_bytes is 0";
      return;
    }
    // Every block of the kernel must be resident at once: how many fit, per type and block size (setup, not during
    // a capture).
    for (int d = 0; d < 3; ++d)
      for (int w = 1; w <= kLl128MaxThreads / 32; ++w)
        resident_[d][w] = ll128_resident_blocks(static_cast<DataType>(d), 32 * w);
    // Lines must be 128-byte aligned (one line, one aligned 128-byte block).
    const SymmetricArea a = allocate_area(heap, layout_.total_bytes(), kLl128LineBytes, "LL128");
    if (a.local == nullptr) return;
    params_.layout = layout_;
    std::copy(a.peers, a.peers + kMaxLl128Ranks, params_.heaps);
  }

  cudaError_t launch(const Choice& c, const CallArgs& call) override {
    Ll128Params p = params_;
    p.in = call.in;
    p.out = call.out;
    p.count = static_cast<int64_t>(call.count);
    p.bytes = static_cast<int64_t>(call.bytes);
    p.lines = ll128_lines(p.bytes, p.common.ranks);
    const int threads = c.threads > 0 ? c.threads : 512;
    // Default grid: enough warps for 4 lines each (a warp's lines per pass), at most max_blocks_ and never more than
    // fit on the device at once (resident_, measured at setup; 0: unknown, then max_blocks_ alone).
    int limit = std::min(max_blocks_, kMaxLl128Blocks);
    const int resident = resident_[static_cast<int>(call.dtype) % 3][threads / 32];
    if (resident > 0) limit = std::min(limit, resident);
    int blocks = 0;
    if (c.blocks > 0) {
      blocks = std::min(c.blocks, limit);
    } else {
      const int64_t lines_per_block = static_cast<int64_t>(threads / 32) * 4;
      blocks = static_cast<int>(std::min<int64_t>(core::ceil_div(p.lines, lines_per_block), limit));
    }
    return launch_ll128(p, call.dtype, blocks, threads, call.stream);
  }

 protected:
  const char* long_name() const override { return "LL128 two-shot"; }
  std::string needs() const override {
    return fmt::format("NVSHMEM and every rank load/store reachable over NVLink (one host, at most {} ranks)", kMaxLl128Ranks);
  }
  const char* capacity_option() const override { return "Options::ll128_max_bytes"; }
  int max_threads() const override { return kLl128MaxThreads; }

 private:
  Ll128Layout layout_{};
  Ll128Params params_{};
  int resident_[3][kLl128MaxThreads / 32 + 1] = {};  // [dtype][threads / 32]: blocks that fit at once
  int max_blocks_ = 1;
};

}  // namespace

std::unique_ptr<AllreduceAlgorithm> make_ll128_algorithm() { return std::make_unique<Ll128Algorithm>(); }

}  // namespace nvrar::gpu
