// nvrar-bench on GPUs: one process per GPU (started by mpirun, srun or torchrun), one nvrar::Communicator over all of
// them. Algorithms (GpuBackend::entries() in gpu_backend_algorithms.cpp; nvrar-bench --help lists them): nvrar (NVRAR's
// own choice), NVRAR's kernels forced under the library's names (oneshot, hierarchical, ll128, push), registered (the
// zero-copy two-shot forced) and nvrar-registered (NVRAR's own choice) on input and output buffers from
// Communicator::allocate_buffer (one NVLink domain only), nccl (ncclAllReduce on cudaMalloc buffers) and nccl-symmetric
// (ncclAllReduce on ncclMemAlloc buffers registered as NCCL_WIN_COLL_SYMMETRIC windows), all on the communicator's NCCL
// communicator.
//
// Defined in three files: gpu_backend.cpp (setup, teardown, the stream wait and the collectives over ranks),
// gpu_backend_algorithms.cpp (the list of names, their parsing and enqueue), gpu_backend_measure.cpp (the timed loop
// and --check); gpu_backend_checks.h holds their CUDA and NCCL check macros.
//
// Every member below except the accessors is collective: all ranks call it in the same order with the same
// arguments (the driver guarantees this by running the same sweep on every rank).
#pragma once

#include <cuda_runtime_api.h>
#include <nccl.h>

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "bench/backend.h"
#include "check/verify.h"
#include "nvrar/nvrar.h"

namespace nvrar::bench {

// 4 KB to 64 MB (BENCHMARKING.md), 20 calls per CUDA graph, 15 timed replays after 3 warm-up replays.
BackendDefaults gpu_backend_defaults();

// CUDA devices this process can see; 0 when there are none or the runtime cannot start (no driver). `why`, when
// given, receives the reason for 0.
int gpu_device_count(std::string* why = nullptr);

class GpuBackend : public Backend {
 public:
  // Throws nvrar::Error when no CUDA device is visible, before touching the launcher or NCCL.
  explicit GpuBackend(const BackendOptions& options);
  ~GpuBackend() override;
  GpuBackend(const GpuBackend&) = delete;
  GpuBackend& operator=(const GpuBackend&) = delete;

  // Every name run() may accept (entries() projected), with their --help text; no GPU needed.
  static std::vector<AlgorithmName> algorithm_names();

  std::string name() const override { return "gpu"; }
  std::string device() const override { return device_; }
  int ranks() const override { return comm_->size(); }
  int gpus_per_node() const override { return comm_->gpus_per_node(); }
  int nodes() const override { return comm_->nodes(); }
  std::size_t max_bytes() const override { return max_bytes_; }
  std::vector<std::string> algorithms() const override;
  bool is_root() const override { return comm_->rank() == 0; }
  std::vector<std::string> notes() const override { return notes_; }
  int hosts() const override { return hosts_; }

  Measurement run(const std::string& algorithm, std::size_t count, DataType dtype, const RunConfig& config) override;
  std::vector<std::string> tuning_candidates(std::size_t bytes) const override;
  std::size_t max_bytes_for(const std::string& algorithm) const override;
  std::string card() const override { return card_; }

 private:
  // What an algorithm name (with its shape options) runs.
  struct Target {
    enum Kind { kNvrar, kNccl, kNcclSymmetric } kind = kNvrar;
    Choice choice;            // kNvrar: algorithm (kAuto for "nvrar" and "nvrar-registered") and launch shape
    bool registered = false;  // kNvrar: on the allocate_buffer buffers ("registered", "nvrar-registered")
  };
  // One name of the backend's list (gpu_backend_algorithms.cpp): the single place that says which names exist, what
  // each runs, when it is offered and how --help describes it.
  struct Entry {
    AlgorithmName name;
    Target target;  // with the kernel's own launch shape; parse_target adds the spec's options
    Algorithm needs = Algorithm::kAuto;  // offered where comm_->supports(needs); kAuto: always
  };
  static const std::vector<Entry>& entries();
  Target parse_target(const std::string& algorithm) const;

  Measurement measure(const Target& algo, std::size_t count, DataType dtype, const RunConfig& config);
  // Enqueues one all-reduce of `algo` on stream_ (eagerly or into a capture).
  void enqueue(const Target& algo, const void* in, void* out, std::size_t count, DataType dtype);
  // One eager, verified call; returns the wrong elements summed over ranks.
  std::size_t checked_call(const Target& algo, const void* in, void* out, std::size_t count, DataType dtype,
                           const RunConfig& config);
  // The float64 reference of the check input for (count, dtype), built once and kept for the other algorithms.
  const check::Reference& reference(std::size_t count, DataType dtype, uint64_t seed);
  // Waits for stream_, turning an NCCL asynchronous error or an NVRAR kernel failure into an nvrar::Error.
  void wait();
  void allocate_symmetric();
  void allocate_registered();
  // Frees everything. collective = false (after a failure, peers may be gone) skips the calls that need every
  // rank (window deregistration, communicator teardown) and leaks what they guard; the process is about to exit.
  void release(bool collective) noexcept;

  // NCCL collectives on the small scratch buffer, for the numbers every rank must agree on.
  double max_over_ranks(double value);
  uint64_t sum_over_ranks(uint64_t value);
  std::vector<uint64_t> all_gather(uint64_t value);

  std::unique_ptr<Communicator> comm_;
  int rank_ = 0;  // for messages; the launcher's rank until the communicator exists
  std::size_t max_bytes_ = 0;
  std::string device_;
  std::string card_;  // cudaDeviceProp::name of this rank's GPU
  std::vector<std::string> notes_;
  int hosts_ = 1;  // distinct host names among the ranks
  bool failed_ = false;  // a collective failed on this rank: tear down locally only

  cudaStream_t stream_ = nullptr;
  cudaEvent_t start_ = nullptr;
  cudaEvent_t stop_ = nullptr;
  void* in_ = nullptr;  // cudaMalloc, max_bytes_: nvrar, oneshot, hierarchical, nccl
  void* out_ = nullptr;
  void* scratch_ = nullptr;  // cudaMalloc, scratch_bytes_: device names, hashes, max and sum over ranks
  void* gate_ = nullptr;     // cudaMalloc, one int: the start gate's all-reduce
  bool start_gate_ = true;   // BackendOptions::start_gate
  // The start gate's spin: longer than the host needs to queue the gate all-reduce, an event and a graph launch.
  static constexpr unsigned long long kGateSpinNs = 100'000;
  std::size_t scratch_bytes_ = 0;
  void* symmetric_in_ = nullptr;  // ncclMemAlloc, symmetric_bytes_, registered on first use of nccl-symmetric
  void* symmetric_out_ = nullptr;
  ncclWindow_t symmetric_in_window_ = nullptr;
  ncclWindow_t symmetric_out_window_ = nullptr;
  std::size_t symmetric_bytes_ = 0;
  void* registered_in_ = nullptr;  // comm_->allocate_buffer, max_bytes_, on first use of a registered algorithm
  void* registered_out_ = nullptr;

  std::vector<std::byte> host_in_;
  std::vector<std::byte> host_out_;
  std::map<std::pair<std::size_t, DataType>, check::Reference> references_;
};

}  // namespace nvrar::bench
