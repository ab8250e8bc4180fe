#include "multirank_world.h"

#include <stdexcept>

#include <fmt/format.h>

#include "core/topology.h"
#include "gpu/algorithms/registry.h"
#include "gpu/runtime/nvshmem_heap.h"

namespace nvrar::test {

namespace {
void cuda_ok(cudaError_t e, const char* what) {
  if (e != cudaSuccess) throw std::runtime_error(fmt::format("{}: {}", what, cudaGetErrorString(e)));
}
}  // namespace

RegionStore::~RegionStore() {
  for (Allocation& a : allocations_)
    for (char* p : a.regions) cudaFree(p);
}

gpu::SymmetricArea RegionStore::allocate(int rank, std::size_t bytes, std::size_t align) {
  const int k = next_[rank]++;
  if (k == static_cast<int>(allocations_.size())) {
    Allocation a{bytes, {}};
    for (int r = 0; r < ranks_; ++r) {
      void* p = nullptr;
      cuda_ok(cudaMalloc(&p, bytes), "cudaMalloc of a region");
      cuda_ok(cudaMemset(p, 0, bytes), "cudaMemset of a region");
      a.regions.push_back(static_cast<char*>(p));
    }
    cuda_ok(cudaDeviceSynchronize(), "zeroing regions");
    allocations_.push_back(std::move(a));
  }
  const Allocation& a = allocations_.at(k);
  if (a.bytes != bytes)
    throw std::runtime_error(fmt::format("rank {} asked for {} bytes as allocation {}, rank 0 for {}: setup differs",
                                         rank, bytes, k, a.bytes));
  if (reinterpret_cast<std::uintptr_t>(a.regions[rank]) % align != 0)
    throw std::runtime_error(fmt::format("region not {}-byte aligned", align));
  gpu::SymmetricArea area;
  area.local = a.regions[rank];
  for (int r = 0; r < ranks_ && r < gpu::kMaxPeers; ++r) area.peers[r] = a.regions[r];
  return area;
}

char* RegionStore::peer(char* local, int rank) const {
  for (const Allocation& a : allocations_)
    for (char* p : a.regions)
      if (p == local) return a.regions[rank];
  return nullptr;
}

World::World(const WorldShape& shape) : shape_(shape), store_(shape.ranks) {
  options_.max_bytes = shape.max_bytes;
  options_.oneshot_max_bytes = shape.oneshot_max_bytes;
  options_.ll128_max_bytes = shape.nvlink_twoshot_max_bytes;
  for (int r = 0; r < shape.ranks; ++r) {
    heaps_.push_back(std::make_unique<RegionHeap>(store_, r));
    failures_.push_back(std::make_unique<gpu::DeviceFailure>(r));
    cudaStream_t s = nullptr;
    cuda_ok(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking), "stream");
    streams_.push_back(s);
    gpu::AlgorithmSetup setup;
    setup.common = gpu::KernelCommon{
        r, shape.ranks, failures_[r]->wait_context(static_cast<long long>(shape.timeout_ms) * 1000000LL, 0), true};
    setup.topo = core::make_topology(shape.ranks, shape.gpus_per_node, r);
    setup.options = &options_;
    setup.max_bytes = shape.max_bytes;
    setup.max_blocks = shape.max_blocks;
    setup.nvshmem = true;  // the regions stand in for NVSHMEM's heap
    setup.inter_node_stores = true;
    algorithms_.push_back(gpu::make_algorithms());
    for (auto& a : algorithms_[r]) a->plan(setup);
    setup.nvlink_gap = gpu::nvlink_domain_gap(*heaps_[r], r, shape.ranks, setup.topo.nodes);
    for (auto& a : algorithms_[r]) a->setup(setup, *heaps_[r]);
  }
}

World::~World() {
  for (cudaStream_t s : streams_) cudaStreamSynchronize(s);
  algorithms_.clear();
  for (cudaStream_t s : streams_) cudaStreamDestroy(s);
}

gpu::AllreduceAlgorithm& World::algorithm(int rank, Algorithm a) {
  for (auto& entry : algorithms_.at(rank))
    if (entry->id() == a) return *entry;
  throw std::runtime_error(fmt::format("no entry for {}", algorithm_name(a)));
}

std::vector<Algorithm> World::algorithms() const {
  std::vector<Algorithm> ids;
  for (const auto& entry : algorithms_.at(0)) ids.push_back(entry->id());
  return ids;
}

std::vector<gpu::RegisteredBuffer> World::allocate_buffer(std::size_t bytes) {
  std::vector<gpu::RegisteredBuffer> out;
  const unsigned long long id = next_buffer_id_++;
  for (int r = 0; r < shape_.ranks; ++r) {
    const gpu::SymmetricArea a = store_.allocate(r, bytes, 256);
    gpu::RegisteredBuffer b;
    b.base = a.local;
    b.bytes = bytes;
    b.id = id;
    std::copy(a.peers, a.peers + gpu::kMaxPeers, b.peers);
    out.push_back(b);
  }
  return out;
}

std::string World::synchronize() {
  for (cudaStream_t s : streams_) cuda_ok(cudaStreamSynchronize(s), "stream synchronize");
  for (int r = 0; r < shape_.ranks; ++r)
    if (failures_[r]->pending())
      return failures_[r]->describe(core::make_topology(shape_.ranks, shape_.gpus_per_node, r), shape_.timeout_ms);
  return {};
}

}  // namespace nvrar::test
