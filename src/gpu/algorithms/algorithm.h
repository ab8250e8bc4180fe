// The interface every all-reduce algorithm implements, and what it is given. An algorithm is one entry: its kernel
// (<name>.cu), its launch interface (<name>.h) and a host class (<name>_entry.cpp) deriving from AllreduceAlgorithm,
// listed once in registry.cpp. The communicator sets entries up in registry order, asks them what a call can run
// (the selection module decides), and launches the chosen one. docs/algorithms.md: "Adding an algorithm".
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "core/topology.h"
#include "gpu/device/device_wait.h"
#include "gpu/runtime/symmetric_heap.h"
#include "nvrar/nvrar.h"

namespace nvrar::select {
class Policy;
}

namespace nvrar::gpu {

// What setup gives every algorithm.
struct AlgorithmSetup {
  KernelCommon common;
  core::Topology topo;
  const Options* options = nullptr;
  const select::Policy* policy = nullptr;  // the tuning table sizes some areas (Options::ll128_max_bytes)
  std::size_t max_bytes = 0;               // Options::max_bytes
  int max_blocks = 1;                      // the SM count or NVRAR_MAX_BLOCKS, at most kMaxBlocks
  bool nvshmem = false;                    // the build has NVSHMEM: there is a symmetric heap
  // Settings the kernels' launch shapes follow (src/config/settings.h; the harness sets them directly).
  bool inter_node_stores = false;             // NVRAR_INTER_NODE_STORES: store through NVLink to inter-node partners
  int64_t push_piece_units = 512;             // NVRAR_PUSH_PIECE_UNITS
  int chunk_units = 0;                        // NVRAR_CHUNK_UNITS (hierarchical; 0: by size)
  int64_t bulk_min_bytes = int64_t{1} << 20;  // NVRAR_BULK_MIN_BYTES (hierarchical)
  int bulk_sync = 0;                          // NVRAR_BULK_SYNC (hierarchical)
  // "" when every rank reaches every other by NVLink loads and stores on one (virtual) node; else why not (the
  // NVLink-domain algorithms are off then). Filled by the communicator once the heap exists.
  std::string nvlink_gap = "not checked";
};

// A registered buffer (Communicator::allocate_buffer): every rank's copy, as load/store pointers.
struct RegisteredBuffer {
  char* base = nullptr;
  std::size_t bytes = 0;
  unsigned long long id = 0;  // allocation number, the same on every rank
  char* peers[kMaxPeers] = {};
};

// One call.
struct CallArgs {
  const void* in = nullptr;
  void* out = nullptr;
  std::size_t count = 0;
  DataType dtype = DataType::kBFloat16;
  std::size_t bytes = 0;
  const RegisteredBuffer* in_buffer = nullptr;   // the registered buffer holding the input, if any
  const RegisteredBuffer* out_buffer = nullptr;  // and the output
  cudaStream_t stream = nullptr;
};

// The fused epilogue of allreduce_add_rmsnorm.
struct RmsNormArgs {
  void* residual = nullptr;
  const void* weight = nullptr;
  std::size_t rows = 0;
  std::size_t hidden = 0;
  float eps = 0;
};

// Options::ll128_max_bytes resolved for `a` (LL128 or push): the value itself, or for kSizeFromTuning the larger of
// 16 MiB and the tuning table's largest message of `a`. The same on every rank (the tables agree, setup checks it).
std::size_t nvlink_twoshot_capacity(const AlgorithmSetup& s, Algorithm a);

class AllreduceAlgorithm {
 public:
  explicit AllreduceAlgorithm(Algorithm id) : id_(id) {}
  virtual ~AllreduceAlgorithm();
  AllreduceAlgorithm(const AllreduceAlgorithm&) = delete;
  AllreduceAlgorithm& operator=(const AllreduceAlgorithm&) = delete;

  Algorithm id() const { return id_; }
  const char* name() const { return algorithm_name(id_); }

  // Before the heap exists: resolves the capacity and returns the symmetric-heap bytes setup() will ask for (0: none).
  virtual std::size_t plan(const AlgorithmSetup& s) = 0;
  // Collective (every rank, registry order): allocates the areas; an algorithm that cannot run here says why in
  // unavailable_ and allocates nothing.
  virtual void setup(const AlgorithmSetup& s, SymmetricHeap& heap) = 0;
  // Collective: returns its areas to the heap (before the heap goes).
  void release(SymmetricHeap& heap);

  bool available() const { return unavailable_.empty(); }
  const std::string& unavailable() const { return unavailable_; }
  // Largest message (0 when off). Part of the setup agreement: peers compute offsets from their own value.
  std::size_t capacity() const { return available() ? capacity_ : 0; }
  std::size_t planned_capacity() const { return capacity_; }

  // Whether it runs this call in its default launch shape. Called on every auto call: no formatting, no allocation.
  virtual bool runs(const CallArgs& call) const { return available() && call.bytes <= capacity_; }
  // Why it cannot run this call with shape `c`, "" when it can (explicit requests only).
  virtual std::string refusal(const Choice& c, const CallArgs& call) const;
  virtual cudaError_t launch(const Choice& c, const CallArgs& call) = 0;
  // The all-reduce fused with residual + RMSNorm in one kernel, where the algorithm has that form (false: it has
  // none, and the communicator runs the all-reduce, then the residual + RMSNorm kernel).
  virtual bool launch_add_rmsnorm(const Choice& c, const CallArgs& call, const RmsNormArgs& norm, cudaError_t* e);
  // "up to N bytes" or "off (why)".
  virtual std::string describe() const;

 protected:
  // The long name in messages, what it needs to run, and which option sets its capacity.
  virtual const char* long_name() const = 0;
  virtual std::string needs() const = 0;
  virtual const char* capacity_option() const = 0;
  // Largest threads per block of its kernel (forced shapes are multiples of 32 up to this); 0: not checked here (the
  // kernel's launch function rounds or refuses).
  virtual int max_threads() const = 0;
  // Why this call's size (or placement) does not fit, "" when it does; refusal() checks availability before it and
  // the launch shape after it.
  virtual std::string size_refusal(const CallArgs& call) const;
  // The availability check every NVLink-domain algorithm starts its setup with: a heap, every rank an NVLink peer of
  // every other on one node, at most max_ranks ranks. Says why not in unavailable_ (and returns false), else clears it.
  bool nvlink_domain_allows(const AlgorithmSetup& s, int max_ranks);
  // Per-block sequence counters of its kernel (device words, zeroed): the number of calls each block has made.
  unsigned long long* allocate_sequence_counters(int rank, int count);
  // An area of the heap, remembered for release().
  SymmetricArea allocate_area(SymmetricHeap& heap, std::size_t bytes, std::size_t align, const char* what);

  std::string unavailable_ = "not set up";
  std::size_t capacity_ = 0;
  unsigned long long* seq_counters_ = nullptr;

 private:
  Algorithm id_;
  std::vector<char*> areas_;
};

}  // namespace nvrar::gpu
