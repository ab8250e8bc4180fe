#include "gpu/runtime/nvshmem_heap.h"

#include <cuda_runtime_api.h>

#include <cstdint>

#include <fmt/format.h>

#include "gpu/runtime/bootstrap.h"
#include "gpu/runtime/nvshmem_runtime.h"
#include "nvrar/types.h"

namespace nvrar::gpu {

NvshmemHeap::NvshmemHeap(ncclComm_t nccl, int rank, int ranks, std::size_t heap_bytes)
    : nccl_(nccl), rank_(rank), ranks_(ranks) {
  shmem::acquire(nccl, rank, ranks, heap_bytes);
}

NvshmemHeap::~NvshmemHeap() {
  if (!abandoned_) shmem::release();
}

SymmetricArea NvshmemHeap::allocate(std::size_t bytes, std::size_t align, const char* what, std::string* full) {
  SymmetricArea a;
  char* local = static_cast<char*>(shmem::symmetric_malloc(bytes));
  if (local == nullptr) {
    if (full != nullptr)
      *full = fmt::format("nvshmem_malloc of {} bytes for the {} area failed (symmetric heap full)", bytes, what);
    return a;
  }
  // NVSHMEM's allocations are 512-byte aligned in the versions seen, and the offset is the same on every rank, so
  // every rank reaches the same verdict.
  if (reinterpret_cast<std::uintptr_t>(local) % align != 0)
    throw Error(fmt::format("nvrar: rank {} setup: nvshmem_malloc returned {} for the {} area, not {}-byte aligned",
                            rank_, static_cast<void*>(local), what, align));
  NVRAR_CUDA_CHECK(rank_, cudaMemset(local, 0, bytes));
  NVRAR_CUDA_CHECK(rank_, cudaDeviceSynchronize());
  shmem::barrier_all();  // nobody writes into an area before its owner has zeroed it
  a.local = local;
  for (int r = 0; r < ranks_ && r < kMaxPeers; ++r) a.peers[r] = peer(local, r);
  return a;
}

void NvshmemHeap::free(char* local) {
  if (!abandoned_) shmem::symmetric_free(local);
}

char* NvshmemHeap::peer(char* local, int rank) const { return static_cast<char*>(shmem::peer_pointer(local, rank)); }

std::vector<uint64_t> NvshmemHeap::allgather(uint64_t value) const {
  return nccl_allgather_u64(nccl_, rank_, ranks_, value);
}

std::string nvlink_domain_gap(SymmetricHeap& heap, int rank, int ranks, int nodes) {
  if (nodes > 1) return fmt::format("{} (virtual) nodes", nodes);
  uint64_t reachable = ranks <= kMaxPeers ? 1 : 0;
  if (reachable) {
    std::string full;
    SymmetricArea probe = heap.allocate(16, 16, "NVLink probe", &full);
    if (probe.local == nullptr) throw Error(fmt::format("nvrar: rank {} setup: {}", rank, full));
    for (int r = 0; r < ranks; ++r)
      if (probe.peers[r] == nullptr) reachable = 0;
    heap.free(probe.local);
  }
  const auto all = heap.allgather(reachable);
  for (int r = 0; r < ranks; ++r)
    if (all[r] == 0)
      return ranks > kMaxPeers ? fmt::format("{} ranks", ranks)
                               : fmt::format("rank {} cannot reach every other rank by NVLink", r);
  return {};
}

}  // namespace nvrar::gpu
