// The communicator's symmetric heap: NVSHMEM's, initialised for this job (runtime/nvshmem_runtime.h), with areas
// zeroed on every rank before any peer may write to them and NVLink peer pointers from nvshmem_ptr.
#pragma once

#include <nccl.h>

#include <cstddef>

#include "gpu/runtime/symmetric_heap.h"

namespace nvrar::gpu {

class NvshmemHeap final : public SymmetricHeap {
 public:
  // Collective: initialises NVSHMEM (first communicator of the process) with room for heap_bytes.
  NvshmemHeap(ncclComm_t nccl, int rank, int ranks, std::size_t heap_bytes);
  ~NvshmemHeap() override;  // drops this communicator's reference to NVSHMEM (unless abandoned)
  NvshmemHeap(const NvshmemHeap&) = delete;
  NvshmemHeap& operator=(const NvshmemHeap&) = delete;

  SymmetricArea allocate(std::size_t bytes, std::size_t align, const char* what, std::string* full) override;
  void free(char* local) override;
  char* peer(char* local, int rank) const override;
  std::vector<uint64_t> allgather(uint64_t value) const override;
  // After a failed call the peers may be gone: no collective frees or finalisation from then on.
  void abandon() { abandoned_ = true; }
  bool abandoned() const { return abandoned_; }

 private:
  ncclComm_t nccl_;
  int rank_;
  int ranks_;
  bool abandoned_ = false;
};

// "" when every rank reaches every other by NVLink loads and stores on one (virtual) node, else why not
// (collective: every rank reaches the same verdict). With virtual nodes the pretend nodes stand for hosts that share
// no NVLink, so more than one node is a gap too.
std::string nvlink_domain_gap(SymmetricHeap& heap, int rank, int ranks, int nodes);

}  // namespace nvrar::gpu
