// GPU backend of nvrar-bench, setup and teardown: the communicator, its stream, events and buffers, the notes that
// head the report (devices, versions, what the numbers mean), the buffers of the NCCL-symmetric anchor and of the
// registered algorithms, the stream wait and the small NCCL collectives over ranks that the rest builds on. The list
// of algorithms and the parsing of their names are in gpu_backend_algorithms.cpp; the timed loop and --check are in
// gpu_backend_measure.cpp.
//
// registered and nvrar-registered run on an input and an output of max_bytes from Communicator::allocate_buffer,
// allocated on first use (collective: every rank runs the same sweep) and freed at teardown.
//
// Failures: every CUDA and NCCL call is checked and reported as "nvrar-bench: rank R <call> failed at
// file:line: <cause>". After a failure inside run() the backend tears down locally only (peers may be gone or
// stuck) and leaks the communicator; the process then exits and the launcher ends the job.
#include "bench/gpu_backend.h"
#include "bench/gpu_backend_checks.h"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <thread>

#include <unistd.h>

#include <fmt/format.h>

#include "nvrar/launch.h"

namespace nvrar::bench {

namespace {

std::string version_text(int code, int major_div, int minor_div) {
  return fmt::format("{}.{}", code / major_div, (code % major_div) / minor_div);
}

// Length of a device name slot in the all-gather (cudaDeviceProp::name is char[256]).
constexpr std::size_t kNameBytes = sizeof(cudaDeviceProp::name);

}  // namespace

BackendDefaults gpu_backend_defaults() {
  BackendDefaults d;
  d.max_bytes = std::size_t{64} << 20;
  d.config.iters = 20;   // calls per CUDA graph
  d.config.rounds = 15;  // timed replays
  d.config.warmup = 3;   // untimed replays (first replay uploads the graph)
  return d;
}

int gpu_device_count(std::string* why) {
  int n = 0;
  const cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess) {
    if (why != nullptr) *why = fmt::format("cudaGetDeviceCount: {}", cudaGetErrorString(e));
    cudaGetLastError();
    return 0;
  }
  if (n == 0 && why != nullptr) *why = "cudaGetDeviceCount found 0 devices";
  return n;
}

GpuBackend::GpuBackend(const BackendOptions& options)
    : max_bytes_(options.max_bytes), start_gate_(options.start_gate) {
  try {
    rank_ = detect_launch().rank;
  } catch (const Error&) {
    rank_ = 0;  // Communicator::create reports the launcher's problem below, with a better message
  }
  std::string why;
  if (gpu_device_count(&why) == 0)
    throw Error(fmt::format(
        "nvrar-bench: rank {}: the gpu backend found no usable CUDA device ({}); run it on a GPU machine, one "
        "process per GPU (e.g. mpirun -np 4 nvrar-bench --backend gpu), or use --backend host",
        rank_, why));
  if (max_bytes_ == 0) throw Error("nvrar-bench: gpu backend: max_bytes is 0");

  Options comm_options;
  comm_options.max_bytes = max_bytes_;
  // The registered algorithms' input and output (max_bytes_ each), with room for the allocator's alignment.
  comm_options.buffer_bytes = 2 * max_bytes_ + (std::size_t{4} << 20);
  comm_options.gpus_per_node = options.gpus_per_node;
  if (options.ll128_max_bytes) comm_options.ll128_max_bytes = *options.ll128_max_bytes;
  comm_options.first_use_tune = options.first_use_tune;
  comm_ = Communicator::create(comm_options);  // selects this rank's GPU
  rank_ = comm_->rank();

  try {
    const int p = comm_->size();
    BENCH_CUDA_CHECK(rank_, cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
    BENCH_CUDA_CHECK(rank_, cudaEventCreate(&start_));
    BENCH_CUDA_CHECK(rank_, cudaEventCreate(&stop_));
    BENCH_CUDA_CHECK(rank_, cudaMalloc(&in_, max_bytes_));
    BENCH_CUDA_CHECK(rank_, cudaMalloc(&out_, max_bytes_));
    scratch_bytes_ = static_cast<std::size_t>(p) * kNameBytes;  // also holds P hashes and one double
    BENCH_CUDA_CHECK(rank_, cudaMalloc(&scratch_, scratch_bytes_));
    BENCH_CUDA_CHECK(rank_, cudaMalloc(&gate_, sizeof(int)));
    BENCH_CUDA_CHECK(rank_, cudaMemset(gate_, 0, sizeof(int)));

    // Device names of all ranks, so that a job on mixed cards says so.
    int dev = 0;
    BENCH_CUDA_CHECK(rank_, cudaGetDevice(&dev));
    cudaDeviceProp prop{};
    BENCH_CUDA_CHECK(rank_, cudaGetDeviceProperties(&prop, dev));
    card_ = prop.name;
    std::vector<char> names(scratch_bytes_, '\0');
    std::memcpy(names.data() + static_cast<std::size_t>(rank_) * kNameBytes, prop.name, kNameBytes - 1);
    char* slot = static_cast<char*>(scratch_) + static_cast<std::size_t>(rank_) * kNameBytes;
    BENCH_CUDA_CHECK(rank_, cudaMemcpyAsync(slot, names.data() + static_cast<std::size_t>(rank_) * kNameBytes,
                                            kNameBytes, cudaMemcpyHostToDevice, stream_));
    BENCH_NCCL_CHECK(rank_, ncclAllGather(slot, scratch_, kNameBytes, ncclChar, comm_->nccl(), stream_));
    BENCH_CUDA_CHECK(rank_, cudaMemcpyAsync(names.data(), scratch_, scratch_bytes_, cudaMemcpyDeviceToHost, stream_));
    wait();
    std::vector<std::pair<std::string, int>> kinds;  // name, how many ranks, in rank order of first appearance
    for (int r = 0; r < p; ++r) {
      const char* begin = names.data() + static_cast<std::size_t>(r) * kNameBytes;
      const std::string name(begin, strnlen(begin, kNameBytes));
      auto it = std::find_if(kinds.begin(), kinds.end(), [&](const auto& k) { return k.first == name; });
      if (it == kinds.end())
        kinds.emplace_back(name, 1);
      else
        ++it->second;
    }
    for (const auto& [name, n] : kinds) device_ += fmt::format("{}{} x {}", device_.empty() ? "" : " + ", n, name);

    int nccl_version = 0;
    int runtime_version = 0;
    int driver_version = 0;
    BENCH_NCCL_CHECK(rank_, ncclGetVersion(&nccl_version));
    BENCH_CUDA_CHECK(rank_, cudaRuntimeGetVersion(&runtime_version));
    BENCH_CUDA_CHECK(rank_, cudaDriverGetVersion(&driver_version));
    // Hosts (by host name), so that the cost model's network fit can tell real nodes from virtual ones.
    char host[256] = {};
    gethostname(host, sizeof host - 1);
    std::vector<uint64_t> host_hashes = all_gather(std::hash<std::string>{}(host));
    std::sort(host_hashes.begin(), host_hashes.end());
    hosts_ = static_cast<int>(std::unique(host_hashes.begin(), host_hashes.end()) - host_hashes.begin());
    notes_.push_back(fmt::format("communicator: {}", comm_->describe()));
    notes_.push_back(fmt::format("nvrar (auto) decides by: {}", comm_->tuning_source()));
    notes_.push_back(fmt::format("NCCL {}.{}.{}, CUDA runtime {}, driver {}", nccl_version / 10000,
                                 (nccl_version % 10000) / 100, nccl_version % 100,
                                 version_text(runtime_version, 1000, 10), version_text(driver_version, 1000, 10)));
    const char* nvls = std::getenv("NCCL_NVLS_ENABLE");
    notes_.push_back(
        fmt::format("NCCL_NVLS_ENABLE={} (the BENCHMARKING.md anchors have NVLS off: set it to 0 to "
                    "compare with them)",
                    nvls != nullptr ? nvls : "unset"));
    notes_.push_back(
        "time: iters calls captured in one CUDA graph, warm-up replays, then rounds timed replays (CUDA events); "
        "per call = max over ranks of the per-rank median of replay time / iters");
    notes_.push_back(
        "--check: every algorithm against the float64 reference (NCCL's and nvrar's with P roundings of slack for "
        "NCCL's ring); bitwise agreement with rank 0 for NVRAR's algorithms (nvrar, oneshot, hierarchical, "
        "registered, nvrar-registered)");
    if (!built_with_nvshmem())
      notes_.push_back("no NVSHMEM in this build: 'hierarchical' is not offered and 'nvrar' runs NCCL");
    if (!comm_->supports(Algorithm::kRegistered))
      notes_.push_back(
          "'registered' and 'nvrar-registered' are not offered: the registered two-shot needs NVSHMEM, one node and "
          "NVLink between all ranks");
  } catch (...) {
    // Peers may not have reached the same point: free locally, leave the communicator alone.
    release(false);
    throw;
  }
}

GpuBackend::~GpuBackend() { release(!failed_); }

void GpuBackend::release(bool collective) noexcept {
  if (stream_ != nullptr && collective) cudaStreamSynchronize(stream_);
  if (collective && comm_ != nullptr) {
    // Deregistration is collective; it must come before the NCCL communicator goes.
    if (symmetric_out_window_ != nullptr) ncclCommWindowDeregister(comm_->nccl(), symmetric_out_window_);
    if (symmetric_in_window_ != nullptr) ncclCommWindowDeregister(comm_->nccl(), symmetric_in_window_);
    if (symmetric_out_ != nullptr) ncclMemFree(symmetric_out_);
    if (symmetric_in_ != nullptr) ncclMemFree(symmetric_in_);
    // free_buffer is collective too (and may throw); in reverse order of allocation.
    try {
      if (registered_out_ != nullptr) comm_->free_buffer(registered_out_);
      if (registered_in_ != nullptr) comm_->free_buffer(registered_in_);
    } catch (const std::exception&) {
      // Nothing to report to from a destructor; the heap goes with the communicator below.
    }
  }
  // Without a collective teardown the symmetric buffers stay registered with NCCL, hence allocated, and the
  // registered ones stay in NVRAR's heap, which the leaked communicator keeps.
  symmetric_out_window_ = symmetric_in_window_ = nullptr;
  symmetric_out_ = symmetric_in_ = nullptr;
  registered_out_ = registered_in_ = nullptr;
  if (gate_ != nullptr) cudaFree(gate_);
  if (scratch_ != nullptr) cudaFree(scratch_);
  if (out_ != nullptr) cudaFree(out_);
  if (in_ != nullptr) cudaFree(in_);
  if (stop_ != nullptr) cudaEventDestroy(stop_);
  if (start_ != nullptr) cudaEventDestroy(start_);
  if (stream_ != nullptr) cudaStreamDestroy(stream_);
  gate_ = scratch_ = out_ = in_ = nullptr;
  stop_ = start_ = nullptr;
  stream_ = nullptr;
  if (collective) {
    comm_.reset();
  } else {
    // Deliberately leaked: its teardown talks to peers that may never answer.
    static_cast<void>(comm_.release());
  }
}

void GpuBackend::wait() {
  for (;;) {
    const cudaError_t e = cudaStreamQuery(stream_);
    if (e == cudaSuccess) break;
    if (e != cudaErrorNotReady)
      throw_call_error(rank_, "cudaStreamQuery(stream_)", __FILE__, __LINE__, cudaGetErrorString(e));
    // NCCL reports a failed peer connection or proxy here; cudaStreamSynchronize would wait forever.
    ncclResult_t async = ncclSuccess;
    BENCH_NCCL_CHECK(rank_, ncclCommGetAsyncError(comm_->nccl(), &async));
    if (async != ncclSuccess && async != ncclInProgress)
      throw_call_error(rank_, "ncclCommGetAsyncError(comm_->nccl())", __FILE__, __LINE__, nccl_cause(async));
    std::this_thread::sleep_for(std::chrono::microseconds(20));
  }
  // cudaErrorNotReady is a status, not a failure: make sure no later cudaGetLastError mistakes it for one.
  if (cudaPeekAtLastError() == cudaErrorNotReady) cudaGetLastError();
  comm_->synchronize(stream_);  // the stream is idle: returns at once, or reports an NVRAR kernel failure
}

void GpuBackend::allocate_symmetric() {
  // Windows must have the same size on every rank and a size aligned as NCCL requires.
  symmetric_bytes_ =
      (max_bytes_ + NCCL_WIN_REQUIRED_ALIGNMENT - 1) / NCCL_WIN_REQUIRED_ALIGNMENT * NCCL_WIN_REQUIRED_ALIGNMENT;
  BENCH_NCCL_CHECK(rank_, ncclMemAlloc(&symmetric_in_, symmetric_bytes_));
  BENCH_NCCL_CHECK(rank_, ncclMemAlloc(&symmetric_out_, symmetric_bytes_));
  BENCH_NCCL_CHECK(rank_, ncclCommWindowRegister(comm_->nccl(), symmetric_in_, symmetric_bytes_, &symmetric_in_window_,
                                                 NCCL_WIN_COLL_SYMMETRIC));
  BENCH_NCCL_CHECK(rank_, ncclCommWindowRegister(comm_->nccl(), symmetric_out_, symmetric_bytes_,
                                                 &symmetric_out_window_, NCCL_WIN_COLL_SYMMETRIC));
}

void GpuBackend::allocate_registered() {
  // Collective: every rank runs the same sweep, so every rank gets here at the same algorithm and size. Every rank
  // then passes the same offsets (0) into these buffers, as the registered two-shot requires.
  registered_in_ = comm_->allocate_buffer(max_bytes_);
  registered_out_ = comm_->allocate_buffer(max_bytes_);
}

double GpuBackend::max_over_ranks(double value) {
  BENCH_CUDA_CHECK(rank_, cudaMemcpyAsync(scratch_, &value, sizeof value, cudaMemcpyHostToDevice, stream_));
  BENCH_NCCL_CHECK(rank_, ncclAllReduce(scratch_, scratch_, 1, ncclFloat64, ncclMax, comm_->nccl(), stream_));
  BENCH_CUDA_CHECK(rank_, cudaMemcpyAsync(&value, scratch_, sizeof value, cudaMemcpyDeviceToHost, stream_));
  wait();
  return value;
}

uint64_t GpuBackend::sum_over_ranks(uint64_t value) {
  BENCH_CUDA_CHECK(rank_, cudaMemcpyAsync(scratch_, &value, sizeof value, cudaMemcpyHostToDevice, stream_));
  BENCH_NCCL_CHECK(rank_, ncclAllReduce(scratch_, scratch_, 1, ncclUint64, ncclSum, comm_->nccl(), stream_));
  BENCH_CUDA_CHECK(rank_, cudaMemcpyAsync(&value, scratch_, sizeof value, cudaMemcpyDeviceToHost, stream_));
  wait();
  return value;
}

std::vector<uint64_t> GpuBackend::all_gather(uint64_t value) {
  const auto p = static_cast<std::size_t>(comm_->size());
  std::vector<uint64_t> values(p, 0);
  uint64_t* slots = static_cast<uint64_t*>(scratch_);
  BENCH_CUDA_CHECK(rank_, cudaMemcpyAsync(slots + rank_, &value, sizeof value, cudaMemcpyHostToDevice, stream_));
  BENCH_NCCL_CHECK(rank_, ncclAllGather(slots + rank_, slots, 1, ncclUint64, comm_->nccl(), stream_));
  BENCH_CUDA_CHECK(rank_, cudaMemcpyAsync(values.data(), slots, p * sizeof value, cudaMemcpyDeviceToHost, stream_));
  wait();
  return values;
}

}  // namespace nvrar::bench
