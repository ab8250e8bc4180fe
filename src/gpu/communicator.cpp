// The GPU communicator: bootstrap, topology, the symmetric heap and registered buffers, and each call = select, then
// launch. The algorithms live in algorithms/ (one entry each, registry.cpp lists them); the choice among them in
// select/ (selection.h: call > Options > settings > tuning table > cost model); every setting in config/settings.h.
//
// Setup (collective over all ranks): NCCL communicator (runtime/bootstrap.h) -> nodes by host name -> (virtual) node
// size G -> tuning table (every rank the same) -> each algorithm plans its capacity and area -> the sizes are compared
// across ranks -> NVSHMEM heap (runtime/nvshmem_heap.h) -> each algorithm sets up its areas, in registry order ->
// where no table applied and NVRAR_TUNE allows, the first-use tune measures one (first_use_tune.h) and the policy
// takes it.
#include <cuda_runtime_api.h>

#include <memory>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "config/settings.h"
#include "core/protocol.h"
#include "gpu/algorithms/hierarchical.h"  // kMaxBlocks
#include "gpu/device/residual_rmsnorm.h"
#include "gpu/algorithms/registry.h"
#include "gpu/runtime/bootstrap.h"
#include "gpu/runtime/device_failure.h"
#include "gpu/runtime/nvshmem_heap.h"
#include "gpu/runtime/nvshmem_runtime.h"
#include "gpu/runtime/registered_buffers.h"
#include "gpu/setup.h"
#include "select/selection.h"

namespace nvrar {
namespace gpu {
namespace {

class GpuCommunicator final : public Communicator {
 public:
  GpuCommunicator(ncclComm_t nccl, bool owns_nccl, std::string bootstrap, const Options& options)
      : nccl_(nccl), owns_nccl_(owns_nccl), bootstrap_(std::move(bootstrap)), options_(options) {
    NVRAR_NCCL_CHECK(-1, ncclCommUserRank(nccl_, &rank_));
    NVRAR_NCCL_CHECK(rank_, ncclCommCount(nccl_, &nranks_));
    const config::Settings& settings = agreed_settings(nccl_, rank_, nranks_);  // every rank's read, or all fail
    config::print_settings_if_debug(rank_);
    config::debug_stage(rank_, "NCCL communicator ready; discovering nodes");
    topo_ = discover_topology(
        nccl_, rank_, nranks_,
        options_.gpus_per_node > 0 ? options_.gpus_per_node : static_cast<int>(settings.gpus_per_node));
    if (options_.max_bytes == 0)
      throw Error(fmt::format("nvrar: rank {} setup: Options::max_bytes must be positive", rank_));
    timeout_ms_ = options_.timeout_ms > 0 ? options_.timeout_ms : static_cast<int>(settings.timeout_ms);
    int device = 0, sms = 0;
    NVRAR_CUDA_CHECK(rank_, cudaGetDevice(&device));
    NVRAR_CUDA_CHECK(rank_, cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device));
    failure_record_ = std::make_unique<DeviceFailure>(rank_);
    config::debug_stage(rank_, "tuning table");
    SelectionSetup selection = make_selection_policy(nccl_, rank_, nranks_, topo_, options_, settings, device);
    policy_ = std::move(selection.policy);
    tuning_source_ = std::move(selection.source);

    pdl_ = settings.pdl != 0;
    const KernelCommon common{rank_, nranks_,
                              failure_record_->wait_context(static_cast<long long>(timeout_ms_) * 1000000LL,
                                                            static_cast<int>(settings.poll_sleep_ns)),
                              settings.pdl != 0};
    AlgorithmSetup s = make_algorithm_setup(common, topo_, options_, policy_.get(), settings, sms);
    max_blocks_ = s.max_blocks;
    algorithms_ = make_algorithms();
    std::size_t heap_bytes = options_.buffer_bytes + (std::size_t{64} << 20);  // + NVSHMEM's granularity and own use
    NamedSizes sizes{{"Options::max_bytes", options_.max_bytes},
                     {"NVRAR_PUSH_PIECE_UNITS", static_cast<uint64_t>(settings.push_piece_units)}};
    for (auto& a : algorithms_) {
      heap_bytes += a->plan(s);
      sizes.emplace_back(std::string(a->name()) + " capacity", a->planned_capacity());
    }
    check_sizes_agree(nccl_, rank_, nranks_, sizes);  // before any rank can refuse below and leave the others waiting
    if (s.nvshmem) {
      config::debug_stage(rank_, "NVSHMEM init and symmetric heap");
      heap_ = std::make_unique<NvshmemHeap>(nccl_, rank_, nranks_, heap_bytes);
    }
    try {  // a rank that fails here alone must not finalize NVSHMEM (collective) while its peers wait in a barrier
      if (s.nvshmem) s.nvlink_gap = nvlink_domain_gap(*heap_, rank_, nranks_, topo_.nodes);
      for (auto& a : algorithms_) {
        config::debug_stage(rank_, fmt::format("{} area", a->name()));
        a->setup(s, *heap_or_none());
        by_id_[static_cast<int>(a->id())] = a.get();
      }
    } catch (...) {
      if (heap_ != nullptr) heap_->abandon();
      throw;
    }
    buffers_ = std::make_unique<RegisteredBuffers>(rank_, nranks_, options_.buffer_bytes);
    if (selection.tune.action == select::TableAction::kMeasure) {  // rank 0's decision, the same on every rank
      config::debug_stage(rank_, "first-use tune (NVRAR_TUNE)");
      tuning_source_ = finish_first_use_tune(*this, nccl_, selection.tune, topo_, settings, *policy_);
    }
    config::debug_stage(rank_, "ready: " + describe());
  }

  ~GpuCommunicator() override {
    // Freeing is collective: a communicator whose call failed skips it rather than wait for lost peers.
    if (heap_ != nullptr) {
      if (!failure_.empty() || failure_record_->pending()) {
        heap_->abandon();
      } else {
        cudaDeviceSynchronize();
        buffers_->release_all(*heap_);
        for (auto it = algorithms_.rbegin(); it != algorithms_.rend(); ++it) (*it)->release(*heap_);
      }
    }
    algorithms_.clear();
    heap_.reset();
    if (owns_nccl_ && nccl_ != nullptr) ncclCommDestroy(nccl_);
  }

  void allreduce(const void* in, void* out, std::size_t count, DataType dtype, cudaStream_t stream,
                 const Choice& requested) override {
    const CallArgs call = make_call("allreduce", in, out, count, dtype, stream);
    if (count == 0) return;
    run(choose(requested, call, "allreduce"), call);
  }

  void allreduce_add_rmsnorm(const void* x, void* residual, const void* weight, void* out, std::size_t rows,
                             std::size_t hidden, float eps, DataType dtype, cudaStream_t stream,
                             Algorithm algorithm) override {
    if (rows * hidden != 0 && (x == nullptr || residual == nullptr || weight == nullptr || out == nullptr))
      throw Error(fmt::format("nvrar: rank {} allreduce_add_rmsnorm: null pointer (x {}, residual {}, weight {}, out "
                              "{})",
                              rank_, x, residual, weight, out));
    const CallArgs call = make_call("allreduce_add_rmsnorm", x, out, rows * hidden, dtype, stream);
    if (call.count == 0) return;
    if ((hidden * dtype_size(dtype)) % core::kUnitBytes != 0)
      throw Error(fmt::format("nvrar: rank {} allreduce_add_rmsnorm: hidden size {} of {} is not a multiple of "
                              "16 bytes",
                              rank_, hidden, dtype_name(dtype)));
    if (!(eps >= 0.0f)) throw Error(fmt::format("nvrar: rank {} allreduce_add_rmsnorm: eps {} < 0", rank_, eps));
    const auto r64 = static_cast<int64_t>(rows), h64 = static_cast<int64_t>(hidden);
    if (nranks_ == 1 && (algorithm == Algorithm::kAuto || algorithm == Algorithm::kNccl)) {  // the sum is x itself
      NVRAR_CUDA_CHECK(rank_, launch_residual_rmsnorm(x, residual, weight, out, r64, h64, eps, dtype, stream, pdl_));
      return;
    }
    const Choice c = choose(Choice{algorithm}, call, "allreduce_add_rmsnorm");
    AllreduceAlgorithm* a = by_id_[static_cast<int>(c.algorithm)];
    cudaError_t e = cudaSuccess;
    if (a != nullptr && a->launch_add_rmsnorm(c, call, RmsNormArgs{residual, weight, rows, hidden, eps}, &e)) {
      NVRAR_CUDA_CHECK(rank_, e);
      return;
    }
    run(c, call);
    NVRAR_CUDA_CHECK(rank_, launch_residual_rmsnorm(out, residual, weight, out, r64, h64, eps, dtype, stream));
  }

  Choice resolve(std::size_t bytes, bool registered) const override {
    // A stand-in call of `bytes`: a registered one lies in a buffer whose size has no bearing on the choice.
    RegisteredBuffer stand_in;
    CallArgs call;
    call.bytes = bytes;
    call.in_buffer = call.out_buffer = registered ? &stand_in : nullptr;
    return choose(Choice{}, call, "resolve");
  }

  void* allocate_buffer(std::size_t bytes) override {
    check();
    if (heap_ == nullptr)
      throw Error(
          fmt::format("nvrar: rank {} allocate_buffer: registered buffers live in NVSHMEM's symmetric heap, "
                      "and this build has no NVSHMEM",
                      rank_));
    return buffers_->allocate(*heap_, bytes, supports(Algorithm::kRegistered));
  }

  void free_buffer(void* buffer) override {
    if (heap_ == nullptr) throw Error(fmt::format("nvrar: rank {} free_buffer: this build has no NVSHMEM", rank_));
    buffers_->free(*heap_, buffer, !failure_.empty() || failure_record_->pending());
  }

  bool is_registered(const void* p, std::size_t bytes) const override { return buffers_->find(p, bytes) != nullptr; }
  std::string tuning_source() const override { return tuning_source_; }

  void check() override {
    if (!failure_.empty())
      throw Error(
          fmt::format("nvrar: rank {} allreduce: communicator unusable after an earlier failure: {}", rank_, failure_));
    if (!failure_record_->pending()) return;
    failure_ = failure_record_->describe(topo_, timeout_ms_);
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
  std::size_t max_bytes() const override { return options_.max_bytes; }
  std::size_t oneshot_max_bytes() const override { return capacity(Algorithm::kOneShot); }
  std::size_t ll128_max_bytes() const override { return capacity(Algorithm::kLl128); }
  std::size_t push_max_bytes() const override { return capacity(Algorithm::kPush); }
  bool supports(Algorithm a) const override { return a == Algorithm::kAuto || available(a); }
  ncclComm_t nccl() const override { return nccl_; }

  std::string describe() const override { return describe_setup(topo_, bootstrap_, algorithms_, max_blocks_); }


 private:
  // The algorithms' answers about one call, for the selection module (built per call: choose() stays pure).
  class View final : public select::CallView {
   public:
    View(const GpuCommunicator& c, const CallArgs& call) : c_(c), call_(call) {}
    bool available(Algorithm a) const override { return c_.available(a); }
    bool runs(Algorithm a) const override { return a == Algorithm::kNccl || (c_.entry(a) && c_.entry(a)->runs(call_)); }
    std::string refusal(const Choice& ch) const override {
      return c_.entry(ch.algorithm) ? c_.entry(ch.algorithm)->refusal(ch, call_) : "unknown algorithm";
    }

   private:
    const GpuCommunicator& c_;
    const CallArgs& call_;
  };

  const AllreduceAlgorithm* entry(Algorithm a) const {
    const int i = static_cast<int>(a);
    return i >= 0 && i < kAlgorithmCount ? by_id_[i] : nullptr;
  }
  bool available(Algorithm a) const { return a == Algorithm::kNccl || (entry(a) && entry(a)->available()); }
  SymmetricHeap* heap_or_none() { return heap_ != nullptr ? static_cast<SymmetricHeap*>(heap_.get()) : &no_heap_; }
  std::size_t capacity(Algorithm a) const { return entry(a) ? entry(a)->capacity() : 0; }

  CallArgs make_call(const char* name, const void* in, void* out, std::size_t count, DataType dtype,
                     cudaStream_t stream) {
    check();
    if (!dtype_valid(dtype))
      throw Error(fmt::format("nvrar: rank {} {}: unsupported dtype value {} (float32, bfloat16, float16 only)", rank_,
                              name, static_cast<int>(dtype)));
    if (count > (std::size_t{1} << 40))
      throw Error(fmt::format("nvrar: rank {} {}: count {} is not a plausible element count", rank_, name, count));
    if (count != 0 && (in == nullptr || out == nullptr))
      throw Error(fmt::format("nvrar: rank {} {}: {} pointer is null (count {})", rank_, name,
                              in == nullptr ? "input" : "output", count));
    CallArgs call{in, out, count, dtype, count * dtype_size(dtype), nullptr, nullptr, stream};
    call.in_buffer = buffers_->find(in, call.bytes);
    call.out_buffer = buffers_->find(out, call.bytes);
    return call;
  }

  Choice choose(const Choice& requested, const CallArgs& call, const char* name) const {
    const View view(*this, call);
    select::Request r{
        requested, options_.algorithm, options_.auto_may_use_nccl, static_cast<int64_t>(call.bytes), rank_, name};
    return select::select(r, *policy_, view);
  }

  void run(const Choice& c, const CallArgs& call) {
    if (c.algorithm == Algorithm::kNccl) {
      NVRAR_NCCL_CHECK(
          rank_, ncclAllReduce(call.in, call.out, call.count, nccl_data_type(call.dtype), ncclSum, nccl_, call.stream));
      return;
    }
    NVRAR_CUDA_CHECK(rank_, by_id_[static_cast<int>(c.algorithm)]->launch(c, call));
  }

  ncclComm_t nccl_;
  bool owns_nccl_;
  std::string bootstrap_;
  Options options_;
  int rank_ = 0;
  int nranks_ = 1;
  bool pdl_ = true;  // NVRAR_PDL: programmatic dependent launch (also the one-rank residual + RMSNorm's)
  core::Topology topo_;
  int timeout_ms_ = 0;
  int max_blocks_ = 1;
  std::string failure_;
  std::string tuning_source_;
  std::unique_ptr<DeviceFailure> failure_record_;
  std::unique_ptr<select::Policy> policy_;
  std::unique_ptr<NvshmemHeap> heap_;
  NoHeap no_heap_;  // where the build has no NVSHMEM: the algorithms set up against it to say why they are off
  std::vector<std::unique_ptr<AllreduceAlgorithm>> algorithms_;
  AllreduceAlgorithm* by_id_[kAlgorithmCount] = {};
  std::unique_ptr<RegisteredBuffers> buffers_;
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
  config::debug_stage(launch.rank, "NCCL bootstrap (launcher " + launch.launcher + ")");
  gpu::NcclBootstrap b = gpu::bootstrap_nccl(launch);
  return std::make_unique<gpu::GpuCommunicator>(b.comm, /*owns_nccl=*/true, b.method, options);
}

std::unique_ptr<Communicator> Communicator::from_nccl(ncclComm_t nccl, const Options& options) {
  if (nccl == nullptr) throw Error("nvrar: from_nccl: the NCCL communicator is null");
  return std::make_unique<gpu::GpuCommunicator>(nccl, /*owns_nccl=*/false, "existing NCCL communicator", options);
}

}  // namespace nvrar
