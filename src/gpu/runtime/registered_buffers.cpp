#include "gpu/runtime/registered_buffers.h"

#include <cuda_runtime_api.h>

#include <algorithm>

#include <fmt/format.h>

#include "nvrar/types.h"

namespace nvrar::gpu {

void agree(const SymmetricHeap& heap, int rank, const char* call, uint64_t value, const std::string& refusal,
           const char* what_rank_does, const char* same) {
  const auto all = heap.allgather(refusal.empty() ? value : 0);
  if (!refusal.empty()) throw Error(fmt::format("nvrar: rank {} {}: {}", rank, call, refusal));
  for (std::size_t r = 0; r < all.size(); ++r)
    if (all[r] != value)
      throw Error(fmt::format(
          "nvrar: rank {} {}: rank {} {}, this rank {}; the call is collective ({}, same order "
          "on every rank)",
          rank, call, r,
          all[r] == 0 ? std::string("refused (see its message)") : fmt::format(fmt::runtime(what_rank_does), all[r]),
          fmt::format(fmt::runtime(what_rank_does), value), same));
}

void* RegisteredBuffers::allocate(SymmetricHeap& heap, std::size_t bytes, bool peers_reachable) {
  const std::size_t rounded = (bytes + 255) / 256 * 256;
  std::string refusal;
  if (bytes == 0)
    refusal = "0 bytes";
  else if (used_ + rounded > limit_)
    refusal =
        fmt::format("{} bytes more would exceed Options::buffer_bytes ({} bytes, {} in use)", rounded, limit_, used_);
  agree(heap, rank_, "allocate_buffer", rounded, refusal, "asks for {} bytes", "same bytes");
  std::string full;
  const SymmetricArea a = heap.allocate(rounded, 256, "registered buffer", &full);
  if (a.local == nullptr)
    throw Error(
        fmt::format("nvrar: rank {} allocate_buffer: {}; NVSHMEM_SYMMETRIC_SIZE or Options::buffer_bytes sizes "
                    "the heap",
                    rank_, full));
  RegisteredBuffer b;
  b.base = a.local;
  b.bytes = rounded;
  b.id = next_id_++;
  if (peers_reachable) std::copy(a.peers, a.peers + std::min(ranks_, kMaxPeers), b.peers);
  buffers_.push_back(b);
  used_ += rounded;
  return b.base;
}

void RegisteredBuffers::free(SymmetricHeap& heap, void* buffer, bool failed) {
  const auto it =
      std::find_if(buffers_.begin(), buffers_.end(), [&](const RegisteredBuffer& b) { return b.base == buffer; });
  if (failed) {
    // After a failed call peers may be gone: no collective. The memory stays with NVSHMEM (not finalised then).
    if (it == buffers_.end())
      throw Error(fmt::format("nvrar: rank {} free_buffer: {} is not a buffer of allocate_buffer()", rank_, buffer));
    used_ -= it->bytes;
    buffers_.erase(it);
    return;
  }
  std::string refusal;
  if (it == buffers_.end()) {
    refusal = fmt::format("{} is not a buffer of allocate_buffer()", buffer);
  } else {
    const cudaError_t e = cudaDeviceSynchronize();  // no call still using it
    if (e != cudaSuccess) refusal = fmt::format("cudaDeviceSynchronize failed: {}", cudaGetErrorString(e));
  }
  agree(heap, rank_, "free_buffer", refusal.empty() ? it->id : 0, refusal, "frees its buffer number {}",
        "same buffers");
  heap.free(it->base);
  used_ -= it->bytes;
  buffers_.erase(it);
}

const RegisteredBuffer* RegisteredBuffers::find(const void* p, std::size_t bytes) const {
  const char* c = static_cast<const char*>(p);
  for (const RegisteredBuffer& b : buffers_)
    if (c >= b.base && c < b.base + b.bytes && bytes <= static_cast<std::size_t>(b.base + b.bytes - c)) return &b;
  return nullptr;
}

void RegisteredBuffers::release_all(SymmetricHeap& heap) {
  for (auto it = buffers_.rbegin(); it != buffers_.rend(); ++it) heap.free(it->base);
  buffers_.clear();
}

}  // namespace nvrar::gpu
