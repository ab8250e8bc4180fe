// The CPU executor: NVRAR's hierarchical all-reduce with ranks as threads of one process.
//
// It runs the same schedule (slices, chunks, partners, heap layout) and protocol (flagged cells, epochs) as the
// GPU kernels, over a host symmetric heap with NVSHMEM-like semantics (puts land asynchronously, in any
// order). It exists so that machines without GPUs, CI above all, test the real algorithm, and so that the
// algorithm can be studied with a debugger.
//
//   nvrar::HostGroup group({.ranks = 12, .gpus_per_node = 4});
//   // in thread r:
//   group.comm(r).allreduce(in, out, count, nvrar::DataType::kBFloat16);
#pragma once

#include <cstddef>
#include <memory>

#include "nvrar/types.h"

namespace nvrar {

struct HostGroupOptions {
  int ranks = 1;
  // Ranks per (virtual) node; 0 takes NVRAR_GPUS_PER_NODE, or all ranks (one node) when that is unset.
  int gpus_per_node = 0;
  // Largest message (count x element size) a call may pass; sizes the symmetric heap.
  std::size_t max_bytes = std::size_t{64} << 20;
  // Spin-wait limit before a call fails naming the peer; 0 takes NVRAR_TIMEOUT_MS (default 30000).
  int timeout_ms = 0;
  // 16-byte units per chunk; 0 takes NVRAR_HOST_CHUNK_UNITS (default 64).
  int chunk_units = 0;
  // Calls of at least this many bytes move their intra-node phases in bulk form (plain data + a flag per chunk)
  // instead of flagged cells; 0 takes NVRAR_BULK_MIN_BYTES (default 1 MiB).
  std::size_t bulk_min_bytes = 0;
  // Deliver inter-node puts from a background thread in random order (NVSHMEM semantics). false delivers
  // them inside the call.
  bool async_puts = true;
};

class HostGroup;

// One rank's handle. Each rank's calls come from one thread at a time; all ranks make the same calls in
// the same order with the same count and dtype (as with any collective).
class HostCommunicator {
 public:
  // Sums `count` elements of `in` over all ranks into `out` (in == out allowed), fp32 accumulation.
  // count 0 is a no-op. Throws nvrar::Error on bad arguments or when a peer does not answer in time.
  void allreduce(const void* in, void* out, std::size_t count, DataType dtype);
  int rank() const;
  int size() const;
  std::size_t max_bytes() const;

  struct State;  // opaque per-rank state, defined by the executor

 private:
  friend class HostGroup;
  explicit HostCommunicator(State* state) : state_(state) {}
  State* state_;
};

class HostGroup {
 public:
  explicit HostGroup(const HostGroupOptions& options);
  ~HostGroup();
  HostGroup(const HostGroup&) = delete;
  HostGroup& operator=(const HostGroup&) = delete;

  HostCommunicator& comm(int rank);
  int size() const;
  int gpus_per_node() const;
  int nodes() const;
  std::size_t max_bytes() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace nvrar
