// Registered buffers (Communicator::allocate_buffer): device memory in the symmetric heap that every rank can read
// where it lies, so the registered two-shot needs no copy-in. Allocation and free are collective, and every rank
// first says what it will do, so that a refusal or a mismatch on one rank fails every rank instead of corrupting
// the heap or hanging.
#pragma once

#include <nccl.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "gpu/algorithms/algorithm.h"
#include "gpu/runtime/symmetric_heap.h"

namespace nvrar::gpu {

// Before a collective step: every rank contributes `value` (nonzero) or refuses (`refusal` not empty); all go on only
// if all values are equal, otherwise every rank throws, naming the refusal or the rank that differs.
// what_rank_does: "asks for {} bytes" style text for a rank's value; same: what must be the same.
void agree(const SymmetricHeap& heap, int rank, const char* call, uint64_t value, const std::string& refusal,
           const char* what_rank_does, const char* same);

class RegisteredBuffers {
 public:
  RegisteredBuffers(int rank, int ranks, std::size_t limit) : rank_(rank), ranks_(ranks), limit_(limit) {}
  // peers_reachable: fill every rank's copy as a load/store pointer (the registered two-shot can run).
  void* allocate(SymmetricHeap& heap, std::size_t bytes, bool peers_reachable);
  // failed: an earlier call failed, the peers may be gone: forget the buffer without a collective.
  void free(SymmetricHeap& heap, void* buffer, bool failed);
  // The buffer that holds [p, p + bytes), or nullptr (valid until the next allocate/free).
  const RegisteredBuffer* find(const void* p, std::size_t bytes) const;
  void release_all(SymmetricHeap& heap);

 private:
  int rank_;
  int ranks_;
  std::size_t limit_;  // Options::buffer_bytes
  std::size_t used_ = 0;
  unsigned long long next_id_ = 1;
  std::vector<RegisteredBuffer> buffers_;
};

}  // namespace nvrar::gpu
