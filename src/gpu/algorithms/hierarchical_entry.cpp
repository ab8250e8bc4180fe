// The hierarchical all-reduce's host side (hierarchical.cu): the main symmetric heap (cells and chunk flags of every
// phase), the NVLink peers of the node, the inter-node partners of each doubling step, and the call's shape.
#include <algorithm>

#include <fmt/format.h>

#include "core/numeric.h"
#include "core/protocol.h"
#include "core/schedule.h"
#include "gpu/algorithms/algorithm.h"
#include "gpu/algorithms/hierarchical.h"

namespace nvrar::gpu {
namespace {

class HierarchicalAlgorithm final : public AllreduceAlgorithm {
 public:
  HierarchicalAlgorithm() : AllreduceAlgorithm(Algorithm::kHierarchical) {}

  std::size_t plan(const AlgorithmSetup& s) override {
    capacity_ = s.max_bytes;
    layout_ = core::make_heap_layout(s.topo, s.max_bytes);
    return s.nvshmem ? layout_.total_bytes : 0;
  }

  void setup(const AlgorithmSetup& s, SymmetricHeap& heap) override {
    const int rank = s.common.rank;
    params_ = HierarchicalParams{};
    params_.topo = s.topo;
    params_.layout = layout_;
    params_.seq_counters = allocate_sequence_counters(rank, kMaxBlocks);
    params_.common = s.common;
    params_.bulk_sync = s.bulk_sync;
    max_blocks_ = s.max_blocks;
    chunk_units_ = s.chunk_units;
    bulk_min_bytes_ = s.bulk_min_bytes;
    for (int k = 0; k < kMaxInterSteps; ++k) params_.inter_pe[k] = -1;
    if (!s.nvshmem) {
      unavailable_ = "no NVSHMEM in this build (configure with NVSHMEM_HOME or the nvidia-nvshmem wheel)";
      return;
    }
    const core::Topology& topo = s.topo;
    if (core::inter_step_count(topo) > kMaxInterSteps)
      throw Error(
          fmt::format("nvrar: rank {} setup: {} nodes need more doubling steps than supported", rank, topo.nodes));
    unavailable_.clear();
    const SymmetricArea a = allocate_area(heap, layout_.total_bytes, 1, "hierarchical");
    if (a.local == nullptr)
      throw Error(
          fmt::format("nvrar: rank {} setup: {} (NVSHMEM_SYMMETRIC_SIZE too small? Options::max_bytes {} sizes "
                      "it)",
                      rank, unavailable_, s.max_bytes));
    params_.heap = a.local;
    for (int l = 0; l < topo.gpus_per_node; ++l) {
      const int peer = topo.rank_of(topo.node, l);
      params_.local_heaps[l] = heap.peer(a.local, peer);
      if (params_.local_heaps[l] == nullptr)
        throw Error(
            fmt::format("nvrar: rank {} setup: rank {} of the same node is not reachable by NVLink loads and "
                        "stores (nvshmem_ptr returned null)",
                        rank, peer));
    }
    auto set_step = [&](int step, int partner_node) {
      const int pe = topo.rank_of(partner_node, topo.local);
      params_.inter_pe[step] = pe;
      params_.inter_direct[step] = s.inter_node_stores ? heap.peer(a.local, pe) : nullptr;
    };
    if (topo.nodes > 1) {
      if (topo.is_excess_node() || topo.has_fold_partner()) {
        set_step(core::fold_in_step(), topo.fold_partner_node());
        set_step(core::fold_out_step(topo), topo.fold_partner_node());
      }
      if (!topo.is_excess_node())
        for (int k = 0; k < topo.doubling_steps; ++k)
          set_step(core::doubling_step_index(k), topo.doubling_partner_node(k));
    }
  }

  cudaError_t launch(const Choice& c, const CallArgs& call) override {
    HierarchicalParams p = params_;
    p.in = call.in;
    p.out = call.out;
    const int64_t units = core::ceil_div(static_cast<int64_t>(call.bytes), core::kUnitBytes);
    const int max_blocks = c.blocks > 0 ? std::min(c.blocks, kMaxBlocks) : max_blocks_;
    const int forced_chunk = c.threads > 0 ? c.threads : chunk_units_;
    const int chunk_units =
        hierarchical_chunk_units(core::ceil_div(units, params_.topo.gpus_per_node), max_blocks, forced_chunk);
    const int64_t bulk_min = c.bulk == 1 ? 0 : c.bulk == 0 ? core::kNeverBulk : bulk_min_bytes_;
    p.shape = core::make_call_shape(static_cast<int64_t>(call.count), static_cast<int>(dtype_size(call.dtype)),
                                    params_.topo.gpus_per_node, chunk_units, bulk_min);
    return launch_hierarchical(p, call.dtype, hierarchical_blocks(p.shape, max_blocks), call.stream);
  }

 protected:
  const char* long_name() const override { return "hierarchical algorithm"; }
  std::string needs() const override { return "NVSHMEM"; }
  const char* capacity_option() const override { return "Options::max_bytes"; }
  // A forced thread count is the chunk size, which hierarchical_chunk_units() rounds to a warp and caps.
  int max_threads() const override { return 0; }

 private:
  core::HeapLayout layout_{};
  HierarchicalParams params_{};
  int max_blocks_ = 1;
  int chunk_units_ = 0;
  int64_t bulk_min_bytes_ = 0;
};

}  // namespace

std::unique_ptr<AllreduceAlgorithm> make_hierarchical_algorithm() { return std::make_unique<HierarchicalAlgorithm>(); }

}  // namespace nvrar::gpu
