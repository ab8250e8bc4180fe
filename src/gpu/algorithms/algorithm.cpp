#include "gpu/algorithms/algorithm.h"

#include <algorithm>

#include <fmt/format.h>

#include "gpu/runtime/bootstrap.h"
#include "select/selection.h"

namespace nvrar::gpu {

std::size_t nvlink_twoshot_capacity(const AlgorithmSetup& s, Algorithm a) {
  if (s.options->ll128_max_bytes != kSizeFromTuning) return s.options->ll128_max_bytes;
  std::size_t bytes = std::size_t{16} << 20;
  if (s.policy != nullptr) bytes = std::max(bytes, static_cast<std::size_t>(s.policy->table_max_bytes(a)));
  return bytes;
}

AllreduceAlgorithm::~AllreduceAlgorithm() {
  if (seq_counters_ != nullptr) cudaFree(seq_counters_);
}

void AllreduceAlgorithm::release(SymmetricHeap& heap) {
  for (auto it = areas_.rbegin(); it != areas_.rend(); ++it) heap.free(*it);
  areas_.clear();
}

std::string AllreduceAlgorithm::refusal(const Choice& c, const CallArgs& call) const {
  if (!available()) return fmt::format("the {} needs {}; not so here: {}", long_name(), needs(), unavailable_);
  std::string why = size_refusal(call);
  if (why.empty() && c.threads != 0 && max_threads() > 0 &&
      (c.threads < 32 || c.threads % 32 != 0 || c.threads > max_threads()))
    why = fmt::format("{} threads {} (a multiple of 32, at most {})", long_name(), c.threads, max_threads());
  return why;
}

std::string AllreduceAlgorithm::size_refusal(const CallArgs& call) const {
  if (call.bytes <= capacity_) return {};
  return fmt::format("{} bytes exceed the {} capacity of {} bytes ({})", call.bytes, long_name(), capacity_,
                     capacity_option());
}

bool AllreduceAlgorithm::launch_add_rmsnorm(const Choice&, const CallArgs&, const RmsNormArgs&, cudaError_t*) {
  return false;
}

std::string AllreduceAlgorithm::describe() const {
  return available() ? fmt::format("{} up to {} bytes", name(), capacity_)
                     : fmt::format("{} off ({})", name(), unavailable_);
}

bool AllreduceAlgorithm::nvlink_domain_allows(const AlgorithmSetup& s, int max_ranks) {
  if (!s.nvshmem)
    unavailable_ = "no NVSHMEM in this build";
  else if (!s.nvlink_gap.empty())
    unavailable_ = s.nvlink_gap;
  else if (s.common.ranks > max_ranks)
    unavailable_ = fmt::format("{} ranks", s.common.ranks);
  else
    unavailable_.clear();
  return unavailable_.empty();
}

unsigned long long* AllreduceAlgorithm::allocate_sequence_counters(int rank, int count) {
  NVRAR_CUDA_CHECK(rank, cudaMalloc(&seq_counters_, sizeof(unsigned long long) * count));
  NVRAR_CUDA_CHECK(rank, cudaMemset(seq_counters_, 0, sizeof(unsigned long long) * count));
  return seq_counters_;
}

SymmetricArea AllreduceAlgorithm::allocate_area(SymmetricHeap& heap, std::size_t bytes, std::size_t align,
                                                const char* what) {
  std::string full;
  SymmetricArea a = heap.allocate(bytes, align, what, &full);
  if (a.local == nullptr)
    unavailable_ = full;
  else
    areas_.push_back(a.local);
  return a;
}

}  // namespace nvrar::gpu
