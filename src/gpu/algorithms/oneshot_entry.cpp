// The one-shot all-reduce's host side: its exchange area, launch shape and the fused RMSNorm form (oneshot.cu).
#include <algorithm>

#include <fmt/format.h>

#include "core/numeric.h"
#include "core/protocol.h"
#include "core/schedule.h"
#include "gpu/algorithms/algorithm.h"
#include "gpu/algorithms/oneshot.h"

namespace nvrar::gpu {
namespace {

class OneShotAlgorithm final : public AllreduceAlgorithm {
 public:
  OneShotAlgorithm() : AllreduceAlgorithm(Algorithm::kOneShot) {}

  std::size_t plan(const AlgorithmSetup& s) override {
    capacity_ = s.options->oneshot_max_bytes;
    layout_.ranks = s.common.ranks;
    layout_.slot_units = std::max<int64_t>(1, core::ceil_div(static_cast<int64_t>(capacity_), core::kUnitBytes));
    return s.nvshmem ? layout_.total_bytes() : 0;
  }

  void setup(const AlgorithmSetup& s, SymmetricHeap& heap) override {
    params_ = OneShotParams{};
    params_.layout = layout_;
    params_.seq_counters = allocate_sequence_counters(s.common.rank, kMaxOneShotBlocks);
    params_.common = s.common;
    max_blocks_ = s.max_blocks;
    if (!nvlink_domain_allows(s, kMaxOneShotRanks)) return;
    const SymmetricArea a = allocate_area(heap, layout_.total_bytes(), core::kUnitBytes, "one-shot");
    if (a.local == nullptr) return;
    std::copy(a.peers, a.peers + kMaxOneShotRanks, params_.heaps);
  }

  cudaError_t launch(const Choice& c, const CallArgs& call) override {
    OneShotParams p = call_params(call);
    const int threads = c.threads > 0 ? c.threads : 128;
    int blocks = 0;
    if (c.blocks > 0) {
      blocks = std::min(c.blocks, kMaxOneShotBlocks);
    } else {
      blocks = static_cast<int>(std::min<int64_t>(core::ceil_div(p.units, threads), max_blocks_));
    }
    return launch_oneshot(p, call.dtype, blocks, threads, call.stream);
  }

  bool launch_add_rmsnorm(const Choice&, const CallArgs& call, const RmsNormArgs& norm, cudaError_t* e) override {
    OneShotParams p = call_params(call);
    p.residual = norm.residual;
    p.weight = norm.weight;
    p.rows = static_cast<int64_t>(norm.rows);
    p.hidden = static_cast<int64_t>(norm.hidden);
    p.eps = norm.eps;
    const int64_t row_units = static_cast<int64_t>(norm.hidden * dtype_size(call.dtype) / core::kUnitBytes);
    const int threads = static_cast<int>(std::min<int64_t>(kOneShotMaxThreads, core::ceil_div(row_units, 32) * 32));
    const int blocks = static_cast<int>(std::min<std::size_t>(norm.rows, kMaxOneShotBlocks));
    *e = launch_oneshot_rmsnorm(p, call.dtype, blocks, threads, call.stream);
    return true;
  }

 protected:
  const char* long_name() const override { return "one-shot algorithm"; }
  std::string needs() const override {
    return fmt::format("NVSHMEM and every rank load/store reachable over NVLink (at most {} ranks on one host)", kMaxOneShotRanks);
  }
  const char* capacity_option() const override { return "Options::oneshot_max_bytes"; }
  int max_threads() const override { return 0; }  // grid-stride: any block size the device launches

 private:
  OneShotParams call_params(const CallArgs& call) const {
    OneShotParams p = params_;
    p.in = call.in;
    p.out = call.out;
    p.count = static_cast<int64_t>(call.count);
    p.units = core::ceil_div(static_cast<int64_t>(call.bytes), core::kUnitBytes);
    p.rows = 0;
    return p;
  }

  OneShotLayout layout_{};
  OneShotParams params_{};
  int max_blocks_ = 1;
};

}  // namespace

std::unique_ptr<AllreduceAlgorithm> make_oneshot_algorithm() { return std::make_unique<OneShotAlgorithm>(); }

}  // namespace nvrar::gpu
