// The single-GPU multi-rank harness: R ranks as R streams of one process on one GPU, each running the real kernels
// of every algorithm entry (src/gpu/algorithms) against a symmetric heap made of regions of device allocations: rank
// r's copy of an area is region r, its peers' copies the other regions (no NVSHMEM, no NCCL). The hierarchical
// algorithm's inter-node steps between virtual nodes go through direct stores (NVRAR_INTER_NODE_STORES=1's path).
//
// Every rank's blocks must be resident at once (the kernels wait for each other's), so grids are capped at a few
// blocks per rank. Timings mean nothing here; correctness does.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "gpu/algorithms/algorithm.h"
#include "gpu/runtime/device_failure.h"
#include "gpu/runtime/symmetric_heap.h"

namespace nvrar::test {

// The allocations of all ranks: allocation k is one region per rank, made when the first rank asks for it (ranks set
// up one after another, in the same order, as the collective calls require).
class RegionStore {
 public:
  explicit RegionStore(int ranks) : ranks_(ranks), next_(ranks, 0) {}
  ~RegionStore();
  gpu::SymmetricArea allocate(int rank, std::size_t bytes, std::size_t align);
  char* peer(char* local, int rank) const;
  int ranks() const { return ranks_; }

 private:
  struct Allocation {
    std::size_t bytes;
    std::vector<char*> regions;
  };
  int ranks_;
  std::vector<int> next_;
  std::vector<Allocation> allocations_;
};

// One rank's view of the store.
class RegionHeap final : public gpu::SymmetricHeap {
 public:
  RegionHeap(RegionStore& store, int rank) : store_(store), rank_(rank) {}
  gpu::SymmetricArea allocate(std::size_t bytes, std::size_t align, const char*, std::string*) override {
    return store_.allocate(rank_, bytes, align);
  }
  void free(char*) override {}  // the store frees everything at the end
  char* peer(char* local, int rank) const override { return store_.peer(local, rank); }
  // Ranks set up one after another here and agree by construction: every rank's value is this rank's.
  std::vector<uint64_t> allgather(uint64_t value) const override {
    return std::vector<uint64_t>(store_.ranks(), value);
  }

 private:
  RegionStore& store_;
  int rank_;
};

struct WorldShape {
  int ranks = 2;
  int gpus_per_node = 2;  // < ranks: virtual nodes, the hierarchical algorithm's inter-node phase
  int max_blocks = 4;     // per rank, so that all ranks' blocks are resident together
  std::size_t max_bytes = std::size_t{4} << 20;
  std::size_t oneshot_max_bytes = std::size_t{2} << 20;
  std::size_t nvlink_twoshot_max_bytes = std::size_t{4} << 20;  // Options::ll128_max_bytes (LL128 and push)
  int timeout_ms = 10000;
};

// R ranks, each with the registry's algorithms set up, a stream and a failure record.
class World {
 public:
  explicit World(const WorldShape& shape);
  ~World();
  int ranks() const { return shape_.ranks; }
  const WorldShape& shape() const { return shape_; }
  gpu::AllreduceAlgorithm& algorithm(int rank, Algorithm a);
  // Every entry of the registry, in its order: the tests run each, so a new algorithm is tested without a change here.
  std::vector<Algorithm> algorithms() const;
  cudaStream_t stream(int rank) const { return streams_[rank]; }
  // A registered buffer of `bytes` on every rank (Communicator::allocate_buffer's equivalent).
  std::vector<gpu::RegisteredBuffer> allocate_buffer(std::size_t bytes);
  // Waits for every rank's stream; "" or the first rank's failure (timeout, argument mismatch).
  std::string synchronize();

 private:
  WorldShape shape_;
  Options options_;
  RegionStore store_;
  std::vector<std::unique_ptr<RegionHeap>> heaps_;
  std::vector<std::unique_ptr<gpu::DeviceFailure>> failures_;
  std::vector<std::vector<std::unique_ptr<gpu::AllreduceAlgorithm>>> algorithms_;
  std::vector<cudaStream_t> streams_;
  unsigned long long next_buffer_id_ = 1;
};

}  // namespace nvrar::test
