// The GPU communicator: bootstrap, NVSHMEM symmetric heap, and dispatch of each all-reduce to the fused
// hierarchical kernel or to NCCL.
//
// Setup (collective over all ranks): NCCL communicator (bootstrap.h) -> node discovery by host name ->
// (virtual) node size G -> NVSHMEM initialised with a unique id broadcast over NCCL (nvshmem_runtime.h) ->
// one symmetric heap per communicator, zeroed before any peer may write to it -> peer pointers for the node's
// ranks and the inter-node partners.
#include <cuda_runtime_api.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>

#include <fmt/format.h>

#include "core/param.h"
#include "core/protocol.h"
#include "core/schedule.h"
#include "core/topology.h"
#include "gpu/bootstrap.h"
#include "gpu/hierarchical_allreduce.h"
#include "gpu/nvshmem_runtime.h"
#include "nvrar/nvrar.h"


namespace nvrar {

const char* algorithm_name(Algorithm a) {
  switch (a) {
    case Algorithm::kAuto:
      return "auto";
    case Algorithm::kHierarchical:
      return "hierarchical";
    case Algorithm::kNccl:
      return "nccl";
  }
  return "invalid";
}

Algorithm parse_algorithm(const std::string& name) {
  if (name == "auto") return Algorithm::kAuto;
  if (name == "hierarchical") return Algorithm::kHierarchical;
  if (name == "nccl") return Algorithm::kNccl;
  throw Error("nvrar: unknown algorithm '" + name + "' (auto, hierarchical, nccl)");
}

bool built_with_nvshmem() { return gpu::shmem::available(); }

ncclDataType_t nccl_data_type(DataType dtype) {
  switch (dtype) {
    case DataType::kFloat32:
      return ncclFloat32;
    case DataType::kBFloat16:
      return ncclBfloat16;
    case DataType::kFloat16:
      return ncclFloat16;
  }
  throw Error("nvrar: no NCCL type for dtype value " + std::to_string(static_cast<int>(dtype)));
}

namespace gpu {
namespace {

uint64_t host_hash() {
  char name[256] = {};
  gethostname(name, sizeof(name) - 1);
  return std::hash<std::string>{}(name);
}


class GpuCommunicator final : public Communicator {
 public:
  GpuCommunicator(ncclComm_t nccl, bool owns_nccl, std::string bootstrap, const Options& options)
      : nccl_(nccl), owns_nccl_(owns_nccl), bootstrap_(std::move(bootstrap)), options_(options) {
    NVRAR_NCCL_CHECK(-1, ncclCommUserRank(nccl_, &rank_));
    NVRAR_NCCL_CHECK(rank_, ncclCommCount(nccl_, &nranks_));
    setup_topology();
    max_bytes_ = options_.max_bytes;
    if (max_bytes_ == 0) throw Error(fmt::format("nvrar: rank {} setup: Options::max_bytes must be positive", rank_));
    layout_ = core::make_heap_layout(topo_, max_bytes_);
    const int timeout_ms = options_.timeout_ms > 0 ? options_.timeout_ms : static_cast<int>(core::param_TimeoutMs());
    if (timeout_ms <= 0) throw Error(fmt::format("nvrar: rank {} setup: timeout must be positive", rank_));
    timeout_ms_ = timeout_ms;
    int device = 0;
    NVRAR_CUDA_CHECK(rank_, cudaGetDevice(&device));
    int sms = 0;
    NVRAR_CUDA_CHECK(rank_, cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device));
    max_blocks_ = core::param_MaxBlocks() > 0 ? static_cast<int>(core::param_MaxBlocks()) : sms;
    if (max_blocks_ > kMaxBlocks) max_blocks_ = kMaxBlocks;

    NVRAR_CUDA_CHECK(rank_, cudaMalloc(&seq_counters_, sizeof(unsigned long long) * kMaxBlocks));
    NVRAR_CUDA_CHECK(rank_, cudaMemset(seq_counters_, 0, sizeof(unsigned long long) * kMaxBlocks));
    NVRAR_CUDA_CHECK(rank_, cudaMalloc(&abort_flag_, sizeof(int)));
    NVRAR_CUDA_CHECK(rank_, cudaMemset(abort_flag_, 0, sizeof(int)));
    NVRAR_CUDA_CHECK(rank_, cudaHostAlloc(&error_host_, sizeof(ErrorRecord), cudaHostAllocMapped));
    std::memset(error_host_, 0, sizeof(ErrorRecord));
    NVRAR_CUDA_CHECK(rank_, cudaHostGetDevicePointer(reinterpret_cast<void**>(&error_device_), error_host_, 0));
    setup_heap();
  }

  ~GpuCommunicator() override {
    // nvshmem_free is collective: a communicator whose call failed skips it rather than wait for lost peers.
    if (heap_ != nullptr && failure_.empty() && !error_pending()) {
      cudaDeviceSynchronize();
      shmem::symmetric_free(heap_);
      shmem::release();
    }
    if (error_host_ != nullptr) cudaFreeHost(error_host_);
    if (abort_flag_ != nullptr) cudaFree(abort_flag_);
    if (seq_counters_ != nullptr) cudaFree(seq_counters_);
    if (owns_nccl_ && nccl_ != nullptr) ncclCommDestroy(nccl_);
  }

  void allreduce(const void* in, void* out, std::size_t count, DataType dtype, cudaStream_t stream,
                 Algorithm algorithm) override {
    check();
    if (!dtype_valid(dtype))
      throw Error(fmt::format("nvrar: rank {} allreduce: unsupported dtype value {} (float32, bfloat16, float16 only)",
                              rank_, static_cast<int>(dtype)));
    if (count == 0) return;
    if (in == nullptr || out == nullptr)
      throw Error(fmt::format("nvrar: rank {} allreduce: {} pointer is null (count {})", rank_,
                              in == nullptr ? "input" : "output", count));
    const std::size_t bytes = count * dtype_size(dtype);
    const Algorithm chosen = choose(algorithm, bytes);
    if (chosen == Algorithm::kNccl) {
      NVRAR_NCCL_CHECK(rank_, ncclAllReduce(in, out, count, nccl_data_type(dtype), ncclSum, nccl_, stream));
      return;
    }
    if (count > max_bytes_ / dtype_size(dtype))
      throw Error(fmt::format("nvrar: rank {} allreduce: count {} of {} ({} bytes) exceeds the communicator's capacity "
                              "of {} bytes (Options::max_bytes)",
                              rank_, count, dtype_name(dtype), bytes, max_bytes_));
    HierarchicalParams p = params_;
    p.in = in;
    p.out = out;
    const int64_t units = core::ceil_div(static_cast<int64_t>(bytes), core::kUnitBytes);
    const int chunk_units = hierarchical_chunk_units(core::ceil_div(units, topo_.gpus_per_node), max_blocks_,
                                                     static_cast<int>(core::param_ChunkUnits()));
    p.shape = core::make_call_shape(static_cast<int64_t>(count), static_cast<int>(dtype_size(dtype)),
                                    topo_.gpus_per_node, chunk_units, core::param_BulkMinBytes());
    const int blocks = hierarchical_blocks(p.shape, max_blocks_);
    NVRAR_CUDA_CHECK(rank_, launch_hierarchical(p, dtype, blocks, stream));
  }

  void check() override {
    if (!failure_.empty())
      throw Error(fmt::format("nvrar: rank {} allreduce: communicator unusable after an earlier failure: {}", rank_,
                              failure_));
    if (!error_pending()) return;
    const ErrorRecord e = *const_cast<const ErrorRecord*>(error_host_);
    const auto phase = static_cast<core::Phase>(e.phase);
    const std::string step = phase == core::Phase::kDoubling ? fmt::format(" step {}", e.step) : std::string();
    failure_ = fmt::format(
        "rank {} (node {}, local {}) allreduce call {}: timed out after {} ms in {}{} waiting for rank {} (unit {} of "
        "slice {}); that rank did not reach this call, failed, or called with another count or dtype",
        e.rank, topo_.node, topo_.local, e.seq, timeout_ms_, core::phase_name(phase), step, e.peer, e.unit, e.slice);
    throw Error("nvrar: " + failure_);
  }

  void synchronize(cudaStream_t stream) override {
    const cudaError_t e = cudaStreamSynchronize(stream);
    check();
    NVRAR_CUDA_CHECK(rank_, e);
  }

  int rank() const override { return rank_; }
  int size() const override { return nranks_; }
  int nodes() const override { return topo_.nodes; }
  int gpus_per_node() const override { return topo_.gpus_per_node; }
  std::size_t max_bytes() const override { return max_bytes_; }
  ncclComm_t nccl() const override { return nccl_; }

  std::string describe() const override {
    const std::string transport =
        shmem::available() ? fmt::format("NVSHMEM {}, inter-node {}", shmem::version(),
                                         core::param_InterNodeStores() ? "stores where NVLink-reachable" : "puts")
                           : std::string("no NVSHMEM in this build: NCCL only");
    return fmt::format("{}, bootstrap {}, {}, {} blocks max", core::describe(topo_), bootstrap_, transport,
                       max_blocks_);
  }

 private:
  bool error_pending() const { return *reinterpret_cast<volatile int*>(&error_host_->code) != 0; }

  Algorithm choose(Algorithm requested, std::size_t bytes) const {
    Algorithm a = requested != Algorithm::kAuto ? requested : options_.algorithm;
    if (a == Algorithm::kAuto) a = parse_algorithm(core::read_env_string("NVRAR_ALGO", "auto"));
    if (a == Algorithm::kHierarchical && !hierarchical_available_)
      throw Error(fmt::format("nvrar: rank {} allreduce: the hierarchical algorithm needs NVSHMEM, and this build "
                              "has none (configure with NVSHMEM_HOME or the nvidia-nvshmem wheel)",
                              rank_));
    if (a != Algorithm::kAuto) return a;
    if (hierarchical_available_ && bytes <= max_bytes_ && bytes <= static_cast<std::size_t>(core::param_AutoMaxBytes()))
      return Algorithm::kHierarchical;
    return Algorithm::kNccl;
  }

  // Nodes are hosts (by host name) unless G says smaller virtual nodes; a (virtual) node never spans hosts.
  void setup_topology() {
    const auto hashes = nccl_allgather_u64(nccl_, rank_, nranks_, host_hash());
    int host_ranks = 0;
    for (uint64_t h : hashes) host_ranks += h == hashes[rank_] ? 1 : 0;
    int G = options_.gpus_per_node;
    if (G == 0) G = static_cast<int>(core::param_GpusPerNode());
    if (G == 0) G = host_ranks;
    topo_ = core::make_topology(nranks_, G, rank_);
    if (G > kMaxGpusPerNode)
      throw Error(fmt::format("nvrar: rank {} setup: {} GPUs per node exceeds the supported {}", rank_, G,
                              kMaxGpusPerNode));
    for (int l = 0; l < G; ++l) {
      const int peer = topo_.rank_of(topo_.node, l);
      if (hashes[peer] != hashes[rank_])
        throw Error(fmt::format("nvrar: rank {} setup: node {} of {} GPUs would span hosts (rank {} is on another "
                                "host); ranks must be numbered host by host and NVRAR_GPUS_PER_NODE must divide the "
                                "GPUs per host",
                                rank_, topo_.node, G, peer));
    }
  }

  void setup_heap() {
    params_ = HierarchicalParams{};
    params_.topo = topo_;
    params_.layout = layout_;
    params_.seq_counters = seq_counters_;
    params_.abort_flag = abort_flag_;
    params_.error = error_device_;
    params_.timeout_ns = static_cast<long long>(timeout_ms_) * 1000000LL;
    params_.poll_sleep_ns = static_cast<int>(core::param_PollSleepNs());
    for (int s = 0; s < kMaxInterSteps; ++s) params_.inter_pe[s] = -1;
    if (!shmem::available()) return;  // NCCL only
    if (core::inter_step_count(topo_) > kMaxInterSteps)
      throw Error(fmt::format("nvrar: rank {} setup: {} nodes need more doubling steps than supported", rank_,
                              topo_.nodes));
    shmem::acquire(nccl_, rank_, nranks_, layout_.total_bytes);
    heap_ = static_cast<char*>(shmem::symmetric_malloc(layout_.total_bytes));
    if (heap_ == nullptr)
      throw Error(fmt::format("nvrar: rank {} setup: nvshmem_malloc of {} bytes failed (NVSHMEM_SYMMETRIC_SIZE too "
                              "small? Options::max_bytes {} sizes it)",
                              rank_, layout_.total_bytes, max_bytes_));
    NVRAR_CUDA_CHECK(rank_, cudaMemset(heap_, 0, layout_.total_bytes));
    NVRAR_CUDA_CHECK(rank_, cudaDeviceSynchronize());
    shmem::barrier_all();  // nobody writes into a heap before its owner has zeroed it
    params_.heap = heap_;
    for (int l = 0; l < topo_.gpus_per_node; ++l) {
      const int peer = topo_.rank_of(topo_.node, l);
      params_.local_heaps[l] = static_cast<char*>(shmem::peer_pointer(heap_, peer));
      if (params_.local_heaps[l] == nullptr)
        throw Error(fmt::format("nvrar: rank {} setup: rank {} of the same node is not reachable by NVLink loads and "
                                "stores (nvshmem_ptr returned null)",
                                rank_, peer));
    }
    auto set_step = [&](int step, int partner_node) {
      const int pe = topo_.rank_of(partner_node, topo_.local);
      params_.inter_pe[step] = pe;
      params_.inter_direct[step] =
          core::param_InterNodeStores() ? static_cast<char*>(shmem::peer_pointer(heap_, pe)) : nullptr;
    };
    if (topo_.nodes > 1) {
      if (topo_.is_excess_node() || topo_.has_fold_partner()) {
        set_step(core::fold_in_step(), topo_.fold_partner_node());
        set_step(core::fold_out_step(topo_), topo_.fold_partner_node());
      }
      if (!topo_.is_excess_node())
        for (int k = 0; k < topo_.doubling_steps; ++k)
          set_step(core::doubling_step_index(k), topo_.doubling_partner_node(k));
    }
    hierarchical_available_ = true;
  }

  ncclComm_t nccl_;
  bool owns_nccl_;
  std::string bootstrap_;
  Options options_;
  int rank_ = 0;
  int nranks_ = 1;
  core::Topology topo_;
  core::HeapLayout layout_;
  std::size_t max_bytes_ = 0;
  int timeout_ms_ = 0;
  int max_blocks_ = 1;
  bool hierarchical_available_ = false;
  char* heap_ = nullptr;
  unsigned long long* seq_counters_ = nullptr;
  int* abort_flag_ = nullptr;
  ErrorRecord* error_host_ = nullptr;
  ErrorRecord* error_device_ = nullptr;
  HierarchicalParams params_{};
  std::string failure_;
};

}  // namespace
}  // namespace gpu

std::unique_ptr<Communicator> Communicator::create(const Options& options) {
  const LaunchInfo launch = detect_launch();
  int devices = 0;
  const cudaError_t e = cudaGetDeviceCount(&devices);
  if (e != cudaSuccess || devices == 0)
    throw Error(fmt::format("nvrar: rank {} setup: no CUDA device visible ({})", launch.rank,
                            e != cudaSuccess ? cudaGetErrorString(e) : "device count 0"));
  NVRAR_CUDA_CHECK(launch.rank, cudaSetDevice(launch.local_rank % devices));
  gpu::NcclBootstrap b = gpu::bootstrap_nccl(launch);
  return std::make_unique<gpu::GpuCommunicator>(b.comm, /*owns_nccl=*/true, b.method, options);
}

std::unique_ptr<Communicator> Communicator::from_nccl(ncclComm_t nccl, const Options& options) {
  if (nccl == nullptr) throw Error("nvrar: from_nccl: the NCCL communicator is null");
  return std::make_unique<gpu::GpuCommunicator>(nccl, /*owns_nccl=*/false, "existing NCCL communicator", options);
}

}  // namespace nvrar
