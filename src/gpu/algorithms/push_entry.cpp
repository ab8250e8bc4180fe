// The push two-shot's host side (push.cu): its exchange area (sized like LL128's, by Options::ll128_max_bytes or the
// tuning table's push entries), the piece size (NVRAR_PUSH_PIECE_UNITS or the table's), and the call's grid.
#include <algorithm>

#include <fmt/format.h>

#include "core/numeric.h"
#include "core/schedule.h"
#include "core/protocol.h"
#include "gpu/algorithms/algorithm.h"
#include "gpu/algorithms/push.h"

namespace nvrar::gpu {
namespace {

class PushAlgorithm final : public AllreduceAlgorithm {
 public:
  PushAlgorithm() : AllreduceAlgorithm(Algorithm::kPush) {}

  std::size_t plan(const AlgorithmSetup& s) override {
    capacity_ = nvlink_twoshot_capacity(s, Algorithm::kPush);
    piece_units_ = s.push_piece_units;
    const bool possible = s.nvshmem && s.topo.nodes == 1 && s.common.ranks <= kMaxPushRanks && capacity_ > 0;
    return possible ? push_layout(capacity_, s.common.ranks).total_bytes() : 0;
  }

  void setup(const AlgorithmSetup& s, SymmetricHeap& heap) override {
    params_ = PushParams{};
    params_.piece_units = piece_units_;
    params_.seq_counters = allocate_sequence_counters(s.common.rank, kMaxPushBlocks);
    params_.common = s.common;
    max_blocks_ = s.max_blocks;
    if (!nvlink_domain_allows(s, kMaxPushRanks)) return;
    if (capacity_ == 0) {
      unavailable_ = "Options::ll128_max_bytes is 0";
      return;
    }
    for (int d = 0; d < 3; ++d)
      for (int w = 1; w <= kPushMaxThreads / 32; ++w)
        resident_[d][w] = push_resident_blocks(static_cast<DataType>(d), s.common.ranks, 32 * w);
    params_.layout = push_layout(capacity_, s.common.ranks);
    // At least one unit: one rank has no slots (nothing to exchange), and NVSHMEM may refuse 0 bytes. Zeroed flags
    // carry no call's sequence number.
    const std::size_t bytes = std::max<std::size_t>(params_.layout.total_bytes(), core::kUnitBytes);
    const SymmetricArea a = allocate_area(heap, bytes, core::kUnitBytes, "push");
    if (a.local == nullptr) return;
    std::copy(a.peers, a.peers + kMaxPushRanks, params_.areas);
  }

  std::string refusal(const Choice& c, const CallArgs& call) const override {
    std::string why = AllreduceAlgorithm::refusal(c, call);
    if (why.empty() && c.piece_units != 0 && (c.piece_units < kPushRoundUnits || c.piece_units % kPushRoundUnits != 0))
      why = fmt::format("push two-shot piece units {} (a positive multiple of {})", c.piece_units, kPushRoundUnits);
    return why;
  }

  cudaError_t launch(const Choice& c, const CallArgs& call) override {
    PushParams p = params_;
    if (c.piece_units > 0) p.piece_units = c.piece_units;
    p.in = call.in;
    p.out = call.out;
    p.count = static_cast<int64_t>(call.count);
    p.units = core::ceil_div(static_cast<int64_t>(call.bytes), core::kUnitBytes);
    const int threads = c.threads > 0 ? c.threads : 256;
    // Default grid: a warp per piece of the largest slice, at most max_blocks_ and never more than fit at once.
    int limit = std::min(max_blocks_, kMaxPushBlocks);
    const int resident = resident_[static_cast<int>(call.dtype) % 3][std::min(threads, kPushMaxThreads) / 32];
    if (resident > 0) limit = std::min(limit, resident);
    int blocks = 0;
    if (c.blocks > 0) {
      blocks = std::min(c.blocks, limit);
    } else {
      const int64_t pieces =
          core::ceil_div(core::ceil_div(p.units, static_cast<int64_t>(p.common.ranks)), p.piece_units);
      blocks = static_cast<int>(std::min<int64_t>(core::ceil_div(pieces, static_cast<int64_t>(threads / 32)), limit));
    }
    return launch_push(p, call.dtype, blocks, threads, call.stream);
  }

  std::string describe() const override {
    return available() ? fmt::format("push up to {} bytes, {}-unit pieces", capacity_, piece_units_)
                       : fmt::format("push off ({})", unavailable_);
  }

 protected:
  const char* long_name() const override { return "push two-shot"; }
  std::string needs() const override {
    return fmt::format("NVSHMEM and every rank load/store reachable over NVLink (one host, at most {} ranks)", kMaxPushRanks);
  }
  const char* capacity_option() const override {
    return "Options::ll128_max_bytes, else the tuning table's largest push size";
  }
  int max_threads() const override { return kPushMaxThreads; }

 private:
  PushParams params_{};
  int64_t piece_units_ = 512;
  int resident_[3][kPushMaxThreads / 32 + 1] = {};  // [dtype][threads / 32]: blocks that fit at once
  int max_blocks_ = 1;
};

}  // namespace

std::unique_ptr<AllreduceAlgorithm> make_push_algorithm() { return std::make_unique<PushAlgorithm>(); }

}  // namespace nvrar::gpu
