// The memory every algorithm exchanges data through: areas that exist at the same offset on every rank, each rank's
// copy reachable by loads and stores where NVLink allows. The communicator's heap is NVSHMEM's (nvshmem_heap.cpp);
// the single-GPU multi-rank test harness provides one made of regions of one allocation (tests/gpu/multirank).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace nvrar::gpu {

constexpr int kMaxPeers = 8;  // ranks whose areas an NVLink-domain algorithm addresses (HGX: 8 GPUs per node)

// One collective area: this rank's copy and every rank's copy as load/store pointers (nullptr where a rank is not
// reachable; peers[r] for r < ranks, at most kMaxPeers of them).
struct SymmetricArea {
  char* local = nullptr;
  char* peers[kMaxPeers] = {};
};

class SymmetricHeap {
 public:
  virtual ~SymmetricHeap() = default;
  // Collective: every rank asks for the same bytes in the same order. The area is zeroed on every rank before any
  // rank returns (no peer writes into an area its owner has not cleared), aligned to `align` bytes (checked). Returns
  // an area with local == nullptr and the reason in *full when the heap has no room.
  virtual SymmetricArea allocate(std::size_t bytes, std::size_t align, const char* what, std::string* full) = 0;
  // Collective: returns an area of allocate() to the heap.
  virtual void free(char* local) = 0;
  // Load/store pointer to rank `rank`'s copy of the symmetric address `local`, nullptr when not reachable.
  virtual char* peer(char* local, int rank) const = 0;
  // Collective: every rank's value, in rank order (agreement checks at setup).
  virtual std::vector<uint64_t> allgather(uint64_t value) const = 0;
};

// A heap with nothing to give: where the build has no NVSHMEM the algorithms still set up against it, to say why
// they are off.
class NoHeap final : public SymmetricHeap {
 public:
  SymmetricArea allocate(std::size_t, std::size_t, const char*, std::string* full) override {
    if (full != nullptr) *full = "no NVSHMEM in this build";
    return {};
  }
  void free(char*) override {}
  char* peer(char*, int) const override { return nullptr; }
  std::vector<uint64_t> allgather(uint64_t) const override { return {}; }
};

}  // namespace nvrar::gpu
