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
#include <filesystem>
#include <cstring>
#include <algorithm>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "core/auto_choice.h"
#include "core/hash.h"
#include "core/param.h"
#include "core/protocol.h"
#include "core/schedule.h"
#include "core/topology.h"
#include "gpu/runtime/bootstrap.h"
#include "gpu/algorithms/hierarchical.h"
#include "gpu/algorithms/ll128.h"
#include "gpu/algorithms/oneshot.h"
#include "gpu/algorithms/registered.h"
#include "gpu/algorithms/push.h"
#include "core/tuning.h"
#include "gpu/runtime/nvshmem_runtime.h"
#include "nvrar/nvrar.h"


namespace nvrar {

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
    core::debug_stage(rank_, "NCCL communicator ready; discovering nodes");
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
    NVRAR_CUDA_CHECK(rank_, cudaMalloc(&oneshot_seq_, sizeof(unsigned long long) * kMaxOneShotBlocks));
    NVRAR_CUDA_CHECK(rank_, cudaMemset(oneshot_seq_, 0, sizeof(unsigned long long) * kMaxOneShotBlocks));
    NVRAR_CUDA_CHECK(rank_, cudaMalloc(&registered_seq_, sizeof(unsigned long long) * kMaxRegisteredBlocks));
    NVRAR_CUDA_CHECK(rank_, cudaMemset(registered_seq_, 0, sizeof(unsigned long long) * kMaxRegisteredBlocks));
    NVRAR_CUDA_CHECK(rank_, cudaMalloc(&ll128_seq_, sizeof(unsigned long long) * kMaxLl128Blocks));
    NVRAR_CUDA_CHECK(rank_, cudaMemset(ll128_seq_, 0, sizeof(unsigned long long) * kMaxLl128Blocks));
    NVRAR_CUDA_CHECK(rank_, cudaMalloc(&push_seq_, sizeof(unsigned long long) * kMaxPushBlocks));
    NVRAR_CUDA_CHECK(rank_, cudaMemset(push_seq_, 0, sizeof(unsigned long long) * kMaxPushBlocks));
    NVRAR_CUDA_CHECK(rank_, cudaMalloc(&abort_flag_, sizeof(int)));
    NVRAR_CUDA_CHECK(rank_, cudaMemset(abort_flag_, 0, sizeof(int)));
    NVRAR_CUDA_CHECK(rank_, cudaHostAlloc(&error_host_, sizeof(ErrorRecord), cudaHostAllocMapped));
    std::memset(error_host_, 0, sizeof(ErrorRecord));
    NVRAR_CUDA_CHECK(rank_, cudaHostGetDevicePointer(reinterpret_cast<void**>(&error_device_), error_host_, 0));
    core::debug_stage(rank_, "tuning table");
    setup_tuning();  // before the heap: the table sizes the LL128 and push areas (Options::ll128_max_bytes)
    ll128_max_bytes_ = resolve_capacity(Algorithm::kLl128);
    push_max_bytes_ = resolve_capacity(Algorithm::kPush);
    push_piece_units_ = core::param_PushPieceUnits();
    check_sizes_agree();  // first, so that a value one rank refuses below cannot leave the others waiting here
    if (push_piece_units_ < kPushRoundUnits || push_piece_units_ % kPushRoundUnits != 0 ||
        push_piece_units_ > (1 << 20))
      throw Error(fmt::format("nvrar: rank {} setup: NVRAR_PUSH_PIECE_UNITS={} (a multiple of {} up to 1048576)", rank_,
                              push_piece_units_, kPushRoundUnits));
    core::debug_stage(rank_, "NVSHMEM init and symmetric heap");
    setup_heap();
    core::debug_stage(rank_, "one-shot area");
    setup_oneshot();
    core::debug_stage(rank_, "registered two-shot area");
    setup_registered();
    core::debug_stage(rank_, "LL128 two-shot area");
    setup_ll128();
    core::debug_stage(rank_, "push two-shot area");
    setup_push();
    core::debug_stage(rank_, "ready: " + describe());
  }

  ~GpuCommunicator() override {
    // nvshmem_free is collective: a communicator whose call failed skips it rather than wait for lost peers.
    if (heap_ != nullptr && failure_.empty() && !error_pending()) {
      cudaDeviceSynchronize();
      for (auto it = buffers_.rbegin(); it != buffers_.rend(); ++it) shmem::symmetric_free(it->base);
      if (registered_gather_ != nullptr) shmem::symmetric_free(registered_gather_);
      if (registered_sync_ != nullptr) shmem::symmetric_free(registered_sync_);
      if (push_area_ != nullptr) shmem::symmetric_free(push_area_);
      if (ll128_heap_ != nullptr) shmem::symmetric_free(ll128_heap_);
      if (oneshot_heap_ != nullptr) shmem::symmetric_free(oneshot_heap_);
      shmem::symmetric_free(heap_);
      shmem::release();
    }
    if (error_host_ != nullptr) cudaFreeHost(error_host_);
    if (abort_flag_ != nullptr) cudaFree(abort_flag_);
    if (seq_counters_ != nullptr) cudaFree(seq_counters_);
    if (oneshot_seq_ != nullptr) cudaFree(oneshot_seq_);
    if (registered_seq_ != nullptr) cudaFree(registered_seq_);
    if (ll128_seq_ != nullptr) cudaFree(ll128_seq_);
    if (push_seq_ != nullptr) cudaFree(push_seq_);
    if (owns_nccl_ && nccl_ != nullptr) ncclCommDestroy(nccl_);
  }

  void allreduce(const void* in, void* out, std::size_t count, DataType dtype, cudaStream_t stream,
                 const Choice& requested) override {
    check();
    validate_call("allreduce", dtype, count);
    if (count == 0) return;
    if (in == nullptr || out == nullptr)
      throw Error(fmt::format("nvrar: rank {} allreduce: {} pointer is null (count {})", rank_,
                              in == nullptr ? "input" : "output", count));
    const std::size_t bytes = count * dtype_size(dtype);
    const Buffer* in_buffer = find_buffer(in, bytes);
    const Buffer* out_buffer = find_buffer(out, bytes);
    const Choice c = choose(requested, bytes, "allreduce", in_buffer != nullptr, out_buffer != nullptr);
    switch (c.algorithm) {
      case Algorithm::kNccl:
        NVRAR_NCCL_CHECK(rank_, ncclAllReduce(in, out, count, nccl_data_type(dtype), ncclSum, nccl_, stream));
        return;
      case Algorithm::kOneShot:
        NVRAR_CUDA_CHECK(rank_, launch_oneshot(oneshot_params(in, out, count, dtype), dtype,
                                               oneshot_blocks(c, bytes), oneshot_threads(c), stream));
        return;
      case Algorithm::kRegistered:
        launch_registered_call(in, out, *in_buffer, out_buffer, count, dtype, c, stream);
        return;
      case Algorithm::kLl128:
        NVRAR_CUDA_CHECK(rank_, launch_ll128(ll128_params(in, out, count, dtype), dtype, ll128_blocks(c, bytes, dtype),
                                             ll128_threads(c), stream));
        return;
      case Algorithm::kPush:
        NVRAR_CUDA_CHECK(rank_, launch_push(push_params(in, out, count, dtype, c), dtype, push_blocks(c, bytes, dtype),
                                            push_threads(c), stream));
        return;
      default:
        launch_hierarchical_call(in, out, count, dtype, c, stream);
        return;
    }
  }

  void allreduce_add_rmsnorm(const void* x, void* residual, const void* weight, void* out, std::size_t rows,
                             std::size_t hidden, float eps, DataType dtype, cudaStream_t stream,
                             Algorithm algorithm) override {
    check();
    const std::size_t count = rows * hidden;
    validate_call("allreduce_add_rmsnorm", dtype, count);
    if (count == 0) return;
    if (x == nullptr || residual == nullptr || weight == nullptr || out == nullptr)
      throw Error(fmt::format("nvrar: rank {} allreduce_add_rmsnorm: null pointer (x {}, residual {}, weight {}, "
                              "out {})",
                              rank_, x, residual, weight, out));
    if ((hidden * dtype_size(dtype)) % core::kUnitBytes != 0)
      throw Error(fmt::format("nvrar: rank {} allreduce_add_rmsnorm: hidden size {} of {} is not a multiple of 16 "
                              "bytes",
                              rank_, hidden, dtype_name(dtype)));
    if (!(eps >= 0.0f)) throw Error(fmt::format("nvrar: rank {} allreduce_add_rmsnorm: eps {} < 0", rank_, eps));
    const std::size_t bytes = count * dtype_size(dtype);
    const Choice c = choose(Choice{algorithm}, bytes, "allreduce_add_rmsnorm", find_buffer(x, bytes) != nullptr,
                            find_buffer(out, bytes) != nullptr);
    if (c.algorithm == Algorithm::kOneShot) {
      OneShotParams p = oneshot_params(x, out, count, dtype);
      p.residual = residual;
      p.weight = weight;
      p.rows = static_cast<int64_t>(rows);
      p.hidden = static_cast<int64_t>(hidden);
      p.eps = eps;
      const int64_t row_units = static_cast<int64_t>(hidden * dtype_size(dtype) / core::kUnitBytes);
      const int threads = static_cast<int>(std::min<int64_t>(kOneShotMaxThreads, core::ceil_div(row_units, 32) * 32));
      const int blocks = static_cast<int>(std::min<std::size_t>(rows, kMaxOneShotBlocks));
      NVRAR_CUDA_CHECK(rank_, launch_oneshot_rmsnorm(p, dtype, blocks, threads, stream));
      return;
    }
    allreduce(x, out, count, dtype, stream, c);
    NVRAR_CUDA_CHECK(rank_, launch_residual_rmsnorm(out, residual, weight, out, static_cast<int64_t>(rows),
                                                    static_cast<int64_t>(hidden), eps, dtype, stream));
  }

  Choice resolve(std::size_t bytes, bool registered) const override {
    return choose(Choice{}, bytes, "resolve", registered, registered);
  }

  void* allocate_buffer(std::size_t bytes) override {
    check();
    if (!hierarchical_available_)
      throw Error(fmt::format("nvrar: rank {} allocate_buffer: registered buffers live in NVSHMEM's symmetric heap, "
                              "and this build has no NVSHMEM",
                              rank_));
    // nvshmem_malloc is collective, and different sizes on different ranks would corrupt the heap or hang: every rank
    // says what it will allocate (0: it refuses) and all go on only if all agree.
    const std::size_t rounded = (bytes + 255) / 256 * 256;
    std::string refusal;
    if (bytes == 0)
      refusal = "0 bytes";
    else if (buffer_bytes_used_ + rounded > options_.buffer_bytes)
      refusal = fmt::format("{} bytes more would exceed Options::buffer_bytes ({} bytes, {} in use)", rounded,
                            options_.buffer_bytes, buffer_bytes_used_);
    agree("allocate_buffer", rounded, refusal, "asks for {} bytes", "same bytes");
    char* base = static_cast<char*>(shmem::symmetric_malloc(rounded));
    if (base == nullptr)
      throw Error(fmt::format("nvrar: rank {} allocate_buffer: nvshmem_malloc of {} bytes failed (symmetric heap "
                              "full; NVSHMEM_SYMMETRIC_SIZE or Options::buffer_bytes sizes it)",
                              rank_, rounded));
    Buffer b{base, rounded, next_buffer_id_++, {}};
    if (registered_available_)
      for (int r = 0; r < nranks_; ++r) b.peers[r] = static_cast<char*>(shmem::peer_pointer(base, r));
    buffers_.push_back(b);
    buffer_bytes_used_ += rounded;
    return base;
  }

  void free_buffer(void* buffer) override {
    const auto it = std::find_if(buffers_.begin(), buffers_.end(), [&](const Buffer& b) { return b.base == buffer; });
    if (!failure_.empty() || error_pending()) {
      // After a failed call peers may be gone: no collective. The memory stays with NVSHMEM (not finalised then).
      if (it == buffers_.end())
        throw Error(fmt::format("nvrar: rank {} free_buffer: {} is not a buffer of allocate_buffer()", rank_, buffer));
      buffer_bytes_used_ -= it->bytes;
      buffers_.erase(it);
      return;
    }
    // nvshmem_free is collective: every rank says which buffer it frees (0: it refuses) before any frees.
    std::string refusal;
    if (it == buffers_.end()) {
      refusal = fmt::format("{} is not a buffer of allocate_buffer()", buffer);
    } else {
      const cudaError_t e = cudaDeviceSynchronize();  // no call still using it
      if (e != cudaSuccess) refusal = fmt::format("cudaDeviceSynchronize failed: {}", cudaGetErrorString(e));
    }
    agree("free_buffer", refusal.empty() ? it->id : 0, refusal, "frees its buffer number {}", "same buffers");
    shmem::symmetric_free(it->base);
    buffer_bytes_used_ -= it->bytes;
    buffers_.erase(it);
  }

  bool is_registered(const void* p, std::size_t bytes) const override { return find_buffer(p, bytes) != nullptr; }

  std::string tuning_source() const override { return tuning_source_; }

  void check() override {
    if (!failure_.empty())
      throw Error(fmt::format("nvrar: rank {} allreduce: communicator unusable after an earlier failure: {}", rank_,
                              failure_));
    if (!error_pending()) return;
    const ErrorRecord e = *const_cast<const ErrorRecord*>(error_host_);
    if (e.code == 2) {
      failure_ = fmt::format(
          "rank {} allreduce call {} (registered two-shot): rank {} called with another count, type, grid or place "
          "(buffer or offset) of the input or output than this rank; every rank must pass the same offsets into its "
          "buffers of allocate_buffer() and the same count and type. Nothing was written",
          e.rank, e.seq, e.peer);
      throw Error("nvrar: " + failure_);
    }
    const auto phase = static_cast<core::Phase>(e.phase);
    const std::string step = phase == core::Phase::kDoubling ? fmt::format(" step {}", e.step) : std::string();
    const bool registered = phase == core::Phase::kRegisteredReady || phase == core::Phase::kRegisteredDone;
    const bool ll128 = phase == core::Phase::kLl128ReduceScatter || phase == core::Phase::kLl128AllGather;
    const bool push = phase == core::Phase::kPushReduceScatter || phase == core::Phase::kPushAllGather;
    const std::string where = registered ? fmt::format(" (block {})", e.unit)
                              : ll128    ? fmt::format(" (128-byte line {} of slice {})", e.unit, e.slice)
                              : push     ? fmt::format(" (piece {} of slice {})", e.unit, e.slice)
                                         : fmt::format(" (unit {} of slice {})", e.unit, e.slice);
    failure_ = fmt::format(
        "rank {} (node {}, local {}) allreduce call {}: timed out after {} ms in {}{} waiting for rank {}{}; that rank "
        "did not reach this call, failed, or called with another count or dtype",
        e.rank, topo_.node, topo_.local, e.seq, timeout_ms_, core::phase_name(phase), step, e.peer, where);
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
  std::size_t oneshot_max_bytes() const override { return oneshot_available_ ? options_.oneshot_max_bytes : 0; }
  std::size_t ll128_max_bytes() const override { return ll128_available_ ? ll128_max_bytes_ : 0; }
  std::size_t push_max_bytes() const override { return push_available_ ? push_max_bytes_ : 0; }
  bool supports(Algorithm a) const override {
    switch (a) {
      case Algorithm::kAuto:
      case Algorithm::kNccl:
        return true;
      case Algorithm::kHierarchical:
        return hierarchical_available_;
      case Algorithm::kOneShot:
        return oneshot_available_;
      case Algorithm::kRegistered:
        return registered_available_;
      case Algorithm::kLl128:
        return ll128_available_;
      case Algorithm::kPush:
        return push_available_;
    }
    return false;
  }
  ncclComm_t nccl() const override { return nccl_; }

  std::string describe() const override {
    const std::string transport =
        shmem::available() ? fmt::format("NVSHMEM {}, inter-node {}", shmem::version(),
                                         core::param_InterNodeStores() ? "stores where NVLink-reachable" : "puts")
                           : std::string("no NVSHMEM in this build: NCCL only");
    return fmt::format("{}, bootstrap {}, {}, one-shot {}, registered two-shot {}, LL128 two-shot {}, push two-shot "
                       "{}, {} blocks max",
                       core::describe(topo_), bootstrap_, transport,
                       oneshot_available_ ? fmt::format("up to {} bytes", options_.oneshot_max_bytes)
                                          : "off (" + oneshot_unavailable_ + ")",
                       registered_available_ ? "on" : "off (" + registered_unavailable_ + ")",
                       ll128_available_ ? fmt::format("up to {} bytes", ll128_max_bytes_)
                                        : "off (" + ll128_unavailable_ + ")",
                       push_available_
                           ? fmt::format("up to {} bytes, {}-unit pieces", push_max_bytes_, push_piece_units_)
                           : "off (" + push_unavailable_ + ")",
                       max_blocks_);
  }

 private:
  bool error_pending() const { return *reinterpret_cast<volatile int*>(&error_host_->code) != 0; }

  void validate_call(const char* call, DataType dtype, std::size_t count) const {
    if (!dtype_valid(dtype))
      throw Error(fmt::format("nvrar: rank {} {}: unsupported dtype value {} (float32, bfloat16, float16 only)", rank_,
                              call, static_cast<int>(dtype)));
    if (count > (std::size_t{1} << 40))
      throw Error(fmt::format("nvrar: rank {} {}: count {} is not a plausible element count", rank_, call, count));
  }

  bool oneshot_fits(std::size_t bytes) const { return oneshot_available_ && bytes <= options_.oneshot_max_bytes; }
  bool ll128_fits(std::size_t bytes) const { return ll128_available_ && bytes <= ll128_max_bytes_; }
  bool push_fits(std::size_t bytes) const { return push_available_ && bytes <= push_max_bytes_; }
  // Whether setup_ll128 / setup_push can turn LL128 / push on (one NVLink domain, few enough ranks, a capacity): the
  // heap reserves their areas only then.
  bool ll128_possible() const { return topo_.nodes == 1 && nranks_ <= kMaxLl128Ranks && ll128_max_bytes_ > 0; }
  bool push_possible() const { return topo_.nodes == 1 && nranks_ <= kMaxPushRanks && push_max_bytes_ > 0; }

  // The algorithm and launch shape of a call. Explicit requests are honoured or refused with the reason; auto
  // follows options, NVRAR_ALGO, the tuning table, then the cost model, and never picks what cannot run.
  // registered_in / registered_out: the input / output lies in a buffer of allocate_buffer().
  Choice choose(const Choice& requested, std::size_t bytes, const char* call, bool registered_in,
                bool registered_out) const {
    Choice c = requested;
    if (c.algorithm == Algorithm::kAuto) c.algorithm = options_.algorithm;
    if (c.algorithm == Algorithm::kAuto) c.algorithm = env_algorithm_;
    const bool registered_runs = registered_in && registered_available_ && (registered_out || bytes <= max_bytes_);
    if (c.algorithm == Algorithm::kRegistered && !registered_runs && requested.algorithm == Algorithm::kAuto)
      c.algorithm = Algorithm::kAuto;  // a default (Options, NVRAR_ALGO) that this call cannot take: auto instead
    if (c.algorithm == Algorithm::kLl128 && !ll128_fits(bytes) && requested.algorithm == Algorithm::kAuto)
      c.algorithm = Algorithm::kAuto;  // likewise (e.g. NVRAR_ALGO=ll128 and a prefill above ll128_max_bytes)
    if (c.algorithm == Algorithm::kPush && !push_fits(bytes) && requested.algorithm == Algorithm::kAuto)
      c.algorithm = Algorithm::kAuto;
    if (c.algorithm == Algorithm::kAuto) {
      // The table's pick, adjusted to what this call can run; the zero-copy two-shot where the input allows it and
      // the size pays for its handshakes (the table, measured on arbitrary pointers, says nothing about it), unless
      // the table picked the LL128 or push two-shot below NVRAR_REGISTERED_OVER_LL128_BYTES (core/auto_choice.h).
      core::CallReach reach;
      reach.registered = registered_runs;
      reach.oneshot = oneshot_fits(bytes);
      reach.ll128 = ll128_fits(bytes);
      reach.ll128_too_big = ll128_available_ && bytes > ll128_max_bytes_;
      reach.push = push_fits(bytes);
      reach.push_too_big = push_available_ && bytes > push_max_bytes_;
      reach.hierarchical = hierarchical_available_ && bytes <= max_bytes_;
      return core::settle_auto_choice(auto_choice(bytes), static_cast<int64_t>(bytes), reach, registered_rule_);
    }
    if (c.algorithm == Algorithm::kRegistered) {
      if (!registered_available_)
        throw Error(fmt::format("nvrar: rank {} {}: the registered two-shot needs NVSHMEM and every rank load/store "
                                "reachable over NVLink (one host, at most {} ranks); not so here: {}",
                                rank_, call, kMaxRegisteredRanks, registered_unavailable_));
      if (!registered_in)
        throw Error(fmt::format("nvrar: rank {} {}: the registered two-shot reads peers' inputs in place: the input "
                                "({} bytes) must lie inside one buffer of allocate_buffer()",
                                rank_, call, bytes));
      if (!registered_out && bytes > max_bytes_)
        throw Error(fmt::format("nvrar: rank {} {}: {} bytes exceed the gather area of {} bytes (Options::max_bytes); "
                                "an output inside a buffer of allocate_buffer() has no such limit",
                                rank_, call, bytes, max_bytes_));
      if (c.threads != 0 && (c.threads < 32 || c.threads % 32 != 0 || c.threads > kRegisteredMaxThreads))
        throw Error(fmt::format("nvrar: rank {} {}: registered two-shot threads {} (a multiple of 32, at most {})",
                                rank_, call, c.threads, kRegisteredMaxThreads));
      return c;
    }
    if (c.algorithm == Algorithm::kLl128) {
      if (!ll128_available_)
        throw Error(fmt::format("nvrar: rank {} {}: the LL128 two-shot needs NVSHMEM and every rank load/store "
                                "reachable over NVLink (one host, at most {} ranks); not so here: {}",
                                rank_, call, kMaxLl128Ranks, ll128_unavailable_));
      if (bytes > ll128_max_bytes_)
        throw Error(fmt::format("nvrar: rank {} {}: {} bytes exceed the LL128 two-shot capacity of {} bytes "
                                "(Options::ll128_max_bytes)",
                                rank_, call, bytes, ll128_max_bytes_));
      if (c.threads != 0 && (c.threads < 32 || c.threads % 32 != 0 || c.threads > kLl128MaxThreads))
        throw Error(fmt::format("nvrar: rank {} {}: LL128 two-shot threads {} (a multiple of 32, at most {})", rank_,
                                call, c.threads, kLl128MaxThreads));
      return c;
    }
    if (c.algorithm == Algorithm::kPush) {
      if (!push_available_)
        throw Error(fmt::format("nvrar: rank {} {}: the push two-shot needs NVSHMEM and every rank load/store "
                                "reachable over NVLink (one host, at most {} ranks); not so here: {}",
                                rank_, call, kMaxPushRanks, push_unavailable_));
      if (bytes > push_max_bytes_)
        throw Error(fmt::format("nvrar: rank {} {}: {} bytes exceed the push two-shot capacity of {} bytes "
                                "(Options::ll128_max_bytes, else the tuning table's largest push size)",
                                rank_, call, bytes, push_max_bytes_));
      if (c.threads != 0 && (c.threads < 32 || c.threads % 32 != 0 || c.threads > kPushMaxThreads))
        throw Error(fmt::format("nvrar: rank {} {}: push two-shot threads {} (a multiple of 32, at most {})", rank_,
                                call, c.threads, kPushMaxThreads));
      if (c.piece_units != 0 && (c.piece_units < kPushRoundUnits || c.piece_units % kPushRoundUnits != 0))
        throw Error(fmt::format("nvrar: rank {} {}: push two-shot piece units {} (a positive multiple of {})", rank_,
                                call, c.piece_units, kPushRoundUnits));
      return c;
    }
    if (c.algorithm == Algorithm::kHierarchical && !hierarchical_available_)
      throw Error(fmt::format("nvrar: rank {} {}: the hierarchical algorithm needs NVSHMEM, and this build has none "
                              "(configure with NVSHMEM_HOME or the nvidia-nvshmem wheel)",
                              rank_, call));
    if (c.algorithm == Algorithm::kHierarchical && bytes > max_bytes_)
      throw Error(fmt::format("nvrar: rank {} {}: {} bytes exceed the communicator's capacity of {} bytes "
                              "(Options::max_bytes)",
                              rank_, call, bytes, max_bytes_));
    if (c.algorithm == Algorithm::kOneShot && !oneshot_available_)
      throw Error(fmt::format("nvrar: rank {} {}: the one-shot algorithm needs NVSHMEM and every rank load/store "
                              "reachable over NVLink (at most {} ranks on one host); not so here: {}",
                              rank_, call, kMaxOneShotRanks, oneshot_unavailable_));
    if (c.algorithm == Algorithm::kOneShot && bytes > options_.oneshot_max_bytes)
      throw Error(fmt::format("nvrar: rank {} {}: {} bytes exceed the one-shot capacity of {} bytes "
                              "(Options::oneshot_max_bytes)",
                              rank_, call, bytes, options_.oneshot_max_bytes));
    return c;
  }

  Choice auto_choice(std::size_t bytes) const {
    if (tuning_) {
      const core::TuningEntry* e = tuning_->lookup(static_cast<int64_t>(bytes));
      if (e == nullptr) return Choice{Algorithm::kNccl};
      return Choice{parse_algorithm(e->algorithm), e->threads, e->blocks, e->bulk, e->piece_units};
    }
    return Choice{parse_algorithm(core::decide_by_model(model_preset_, topo_.nodes, topo_.gpus_per_node,
                                                        oneshot_available_, static_cast<int64_t>(bytes)))};
  }

  OneShotParams oneshot_params(const void* in, void* out, std::size_t count, DataType dtype) const {
    OneShotParams p = oneshot_params_;
    p.in = in;
    p.out = out;
    p.count = static_cast<int64_t>(count);
    p.units = core::ceil_div(static_cast<int64_t>(count * dtype_size(dtype)), core::kUnitBytes);
    p.rows = 0;
    return p;
  }
  int oneshot_threads(const Choice& c) const { return c.threads > 0 ? c.threads : 128; }
  Ll128Params ll128_params(const void* in, void* out, std::size_t count, DataType dtype) const {
    Ll128Params p = ll128_params_;
    p.in = in;
    p.out = out;
    p.count = static_cast<int64_t>(count);
    p.bytes = static_cast<int64_t>(count * dtype_size(dtype));
    p.lines = ll128_lines(p.bytes, nranks_);
    return p;
  }
  int ll128_threads(const Choice& c) const { return c.threads > 0 ? c.threads : 512; }
  // Default: enough warps for 4 lines each (a warp's lines per pass), at most max_blocks_ and never more than fit on
  // the device at once (ll128_resident_, measured at setup; 0: unknown, then max_blocks_ alone).
  int ll128_blocks(const Choice& c, std::size_t bytes, DataType dtype) const {
    int limit = std::min(max_blocks_, kMaxLl128Blocks);
    const int resident = ll128_resident_[static_cast<int>(dtype) % 3][ll128_threads(c) / 32];
    if (resident > 0) limit = std::min(limit, resident);
    if (c.blocks > 0) return std::min(c.blocks, limit);
    const int64_t lines = ll128_lines(static_cast<int64_t>(bytes), nranks_);
    const int64_t lines_per_block = static_cast<int64_t>(ll128_threads(c) / 32) * 4;
    return static_cast<int>(std::min<int64_t>(core::ceil_div(lines, lines_per_block), limit));
  }
  PushParams push_params(const void* in, void* out, std::size_t count, DataType dtype, const Choice& c) const {
    PushParams p = push_params_;
    if (c.piece_units > 0) p.piece_units = c.piece_units;
    p.in = in;
    p.out = out;
    p.count = static_cast<int64_t>(count);
    p.units = core::ceil_div(static_cast<int64_t>(count * dtype_size(dtype)), core::kUnitBytes);
    return p;
  }
  int push_threads(const Choice& c) const { return c.threads > 0 ? c.threads : 256; }
  // Default: a warp per piece of the largest slice, at most max_blocks_ and never more than fit at once.
  int push_blocks(const Choice& c, std::size_t bytes, DataType dtype) const {
    int limit = std::min(max_blocks_, kMaxPushBlocks);
    const int resident = push_resident_[static_cast<int>(dtype) % 3][std::min(push_threads(c), kPushMaxThreads) / 32];
    if (resident > 0) limit = std::min(limit, resident);
    if (c.blocks > 0) return std::min(c.blocks, limit);
    const int64_t units = core::ceil_div(static_cast<int64_t>(bytes), core::kUnitBytes);
    const int64_t piece = c.piece_units > 0 ? c.piece_units : push_piece_units_;
    const int64_t pieces = core::ceil_div(core::ceil_div(units, static_cast<int64_t>(nranks_)), piece);
    const int64_t warps_per_block = push_threads(c) / 32;
    return static_cast<int>(std::min<int64_t>(core::ceil_div(pieces, warps_per_block), limit));
  }
  int oneshot_blocks(const Choice& c, std::size_t bytes) const {
    if (c.blocks > 0) return std::min(c.blocks, kMaxOneShotBlocks);
    const int64_t units = core::ceil_div(static_cast<int64_t>(bytes), core::kUnitBytes);
    return static_cast<int>(std::min<int64_t>(core::ceil_div(units, oneshot_threads(c)), max_blocks_));
  }

  struct Buffer {
    char* base;
    std::size_t bytes;
    unsigned long long id;                // allocation number, the same on every rank
    char* peers[kMaxRegisteredRanks];     // every rank's copy, as load/store pointers (registered two-shot only)
  };
  // Before a collective NVSHMEM allocation or free: every rank contributes `value` (nonzero) or refuses (`refusal`
  // not empty); all go on only if all values are equal, otherwise every rank throws, naming the refusal or the rank
  // that differs. what_rank_does: "asks for {} bytes" style text for a rank's value; same: what must be the same.
  void agree(const char* call, uint64_t value, const std::string& refusal, const char* what_rank_does,
             const char* same) const {
    const auto all = nccl_allgather_u64(nccl_, rank_, nranks_, refusal.empty() ? value : 0);
    if (!refusal.empty()) throw Error(fmt::format("nvrar: rank {} {}: {}", rank_, call, refusal));
    for (int r = 0; r < nranks_; ++r)
      if (all[r] != value)
        throw Error(fmt::format("nvrar: rank {} {}: rank {} {}, this rank {}; the call is collective ({}, same order "
                                "on every rank)",
                                rank_, call, r,
                                all[r] == 0 ? std::string("refused (see its message)")
                                            : fmt::format(fmt::runtime(what_rank_does), all[r]),
                                fmt::format(fmt::runtime(what_rank_does), value), same));
  }

  // The buffer of allocate_buffer() that holds [p, p + bytes), or nullptr (valid until the next allocate/free).
  const Buffer* find_buffer(const void* p, std::size_t bytes) const {
    const char* c = static_cast<const char*>(p);
    for (const Buffer& b : buffers_)
      if (c >= b.base && c < b.base + b.bytes && bytes <= static_cast<std::size_t>(b.base + b.bytes - c)) return &b;
    return nullptr;
  }

  void launch_registered_call(const void* in, void* out, const Buffer& in_buffer, const Buffer* out_buffer,
                              std::size_t count, DataType dtype, const Choice& c, cudaStream_t stream) {
    const std::size_t bytes = count * dtype_size(dtype);
    const char* in_c = static_cast<const char*>(in);
    char* out_c = static_cast<char*>(out);
    if (in_c != out_c && in_c < out_c + bytes && out_c < in_c + bytes)
      throw Error(fmt::format("nvrar: rank {} allreduce: input and output overlap without being the same ({} bytes "
                              "at {} and {})",
                              rank_, bytes, in, out));
    RegisteredParams p = registered_params_;
    const std::size_t in_offset = static_cast<std::size_t>(in_c - in_buffer.base);
    for (int r = 0; r < nranks_; ++r) p.in[r] = in_buffer.peers[r] + in_offset;
    p.out = out_c;
    p.direct = out_buffer != nullptr;
    std::size_t out_offset = 0;
    if (p.direct) {
      out_offset = static_cast<std::size_t>(out_c - out_buffer->base);
      for (int r = 0; r < nranks_; ++r) p.out_peers[r] = out_buffer->peers[r] + out_offset;
    }
    p.count = static_cast<int64_t>(count);
    p.units = core::ceil_div(static_cast<int64_t>(bytes), core::kUnitBytes);
    const int threads = c.threads > 0 ? c.threads : 256;
    const int blocks = c.blocks > 0 ? std::min(c.blocks, kMaxRegisteredBlocks)
                                    : registered_blocks(p.units, nranks_, threads, max_blocks_);
    p.agreement = registered_agreement(
        (in_buffer.id << 40) | in_offset, p.direct ? (out_buffer->id << 40) | out_offset : ~0ULL,
        (static_cast<unsigned long long>(count) << 20) | (static_cast<unsigned long long>(dtype) << 16) |
            static_cast<unsigned long long>(blocks));
    NVRAR_CUDA_CHECK(rank_, launch_registered(p, dtype, blocks, threads, stream));
  }

  void launch_hierarchical_call(const void* in, void* out, std::size_t count, DataType dtype, const Choice& c,
                                cudaStream_t stream) {
    HierarchicalParams p = params_;
    p.in = in;
    p.out = out;
    const std::size_t bytes = count * dtype_size(dtype);
    const int64_t units = core::ceil_div(static_cast<int64_t>(bytes), core::kUnitBytes);
    const int max_blocks = c.blocks > 0 ? std::min(c.blocks, kMaxBlocks) : max_blocks_;
    const int forced_chunk = c.threads > 0 ? c.threads : static_cast<int>(core::param_ChunkUnits());
    const int chunk_units = hierarchical_chunk_units(core::ceil_div(units, topo_.gpus_per_node), max_blocks, forced_chunk);
    const int64_t bulk_min = c.bulk == 1 ? 0 : c.bulk == 0 ? core::kNeverBulk : core::param_BulkMinBytes();
    p.shape = core::make_call_shape(static_cast<int64_t>(count), static_cast<int>(dtype_size(dtype)),
                                    topo_.gpus_per_node, chunk_units, bulk_min);
    const int blocks = hierarchical_blocks(p.shape, max_blocks);
    NVRAR_CUDA_CHECK(rank_, launch_hierarchical(p, dtype, blocks, stream));
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

  // The sizes of the exchange areas must be equal on every rank: peers store at offsets computed from their own
  // values (a larger layout on one rank would write past the area of another). Compared after the LL128 capacity is
  // resolved from the tuning table (kSizeFromTuning), so an explicit value equal to another rank's resolved default
  // passes.
  void check_sizes_agree() const {
    const uint64_t h = core::fnv1a64_words({static_cast<uint64_t>(options_.max_bytes),
                                            static_cast<uint64_t>(options_.oneshot_max_bytes),
                                            static_cast<uint64_t>(ll128_max_bytes_),
                                            static_cast<uint64_t>(push_max_bytes_),
                                            static_cast<uint64_t>(push_piece_units_)});
    const auto all = nccl_allgather_u64(nccl_, rank_, nranks_, h);
    for (int r = 0; r < nranks_; ++r)
      if (all[r] != h)
        throw Error(fmt::format("nvrar: rank {} setup: rank {} was created with other Options::max_bytes, "
                                "oneshot_max_bytes or ll128_max_bytes (LL128 and push capacities after sizing from the "
                                "tuning table), or another NVRAR_PUSH_PIECE_UNITS, than this rank ({}, {}, {} and {}, "
                                "{}); they size the exchange areas and must be the same on every rank",
                                rank_, r, options_.max_bytes, options_.oneshot_max_bytes, ll128_max_bytes_,
                                push_max_bytes_, push_piece_units_));
  }

  void setup_heap() {
    params_ = HierarchicalParams{};
    params_.topo = topo_;
    params_.layout = layout_;
    params_.seq_counters = seq_counters_;
    params_.wait = WaitContext{rank_, abort_flag_, error_device_, static_cast<long long>(timeout_ms_) * 1000000LL,
                               static_cast<int>(core::param_PollSleepNs())};
    params_.bulk_sync = static_cast<int>(core::param_BulkSync());
    params_.pdl = core::param_Pdl() != 0;
    if (params_.bulk_sync != 0 && params_.bulk_sync != 1)
      throw Error(fmt::format("nvrar: rank {} setup: NVRAR_BULK_SYNC={} (0 or 1)", rank_, params_.bulk_sync));
    for (int s = 0; s < kMaxInterSteps; ++s) params_.inter_pe[s] = -1;
    if (!shmem::available()) return;  // NCCL only
    if (core::inter_step_count(topo_) > kMaxInterSteps)
      throw Error(fmt::format("nvrar: rank {} setup: {} nodes need more doubling steps than supported", rank_,
                              topo_.nodes));
    oneshot_layout_.ranks = nranks_;
    oneshot_layout_.slot_units =
        std::max<int64_t>(1, core::ceil_div(static_cast<int64_t>(options_.oneshot_max_bytes), core::kUnitBytes));
    // Both areas, plus NVSHMEM's own allocation granularity and internal use.
    // ... the registered two-shot's sync and gather areas, the LL128 area and the room for allocate_buffer().
    shmem::acquire(nccl_, rank_, nranks_,
                   layout_.total_bytes + oneshot_layout_.total_bytes() + RegisteredSyncLayout::total_bytes() +
                       max_bytes_ +
                       (ll128_possible() ? ll128_layout(ll128_max_bytes_, nranks_).total_bytes() : 0) +
                       (push_possible() ? push_layout(push_max_bytes_, nranks_).total_bytes() : 0) +
                       options_.buffer_bytes + (std::size_t{64} << 20));
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

  // The one-shot exchange area: collective, allocated only on one (virtual) node whose ranks all reach each other by
  // NVLink loads and stores.
  void setup_oneshot() {
    oneshot_params_ = OneShotParams{};
    oneshot_params_.rank = rank_;
    oneshot_params_.ranks = nranks_;
    oneshot_params_.layout = oneshot_layout_;
    oneshot_params_.seq_counters = oneshot_seq_;
    oneshot_params_.wait = params_.wait;
    oneshot_params_.pdl = params_.pdl;
    if (!hierarchical_available_) {
      oneshot_unavailable_ = "no NVSHMEM in this build";
      return;
    }
    // One NVLink domain only: with virtual nodes the (pretend) nodes stand for hosts that share no NVLink.
    if (topo_.nodes > 1) {
      oneshot_unavailable_ = fmt::format("{} (virtual) nodes", topo_.nodes);
      return;
    }
    uint64_t reachable = nranks_ <= kMaxOneShotRanks ? 1 : 0;
    for (int r = 0; r < nranks_ && reachable; ++r)
      if (shmem::peer_pointer(heap_, r) == nullptr) reachable = 0;
    const auto all = nccl_allgather_u64(nccl_, rank_, nranks_, reachable);
    for (int r = 0; r < nranks_; ++r)
      if (all[r] == 0) {
        oneshot_unavailable_ = nranks_ > kMaxOneShotRanks
                                   ? fmt::format("{} ranks", nranks_)
                                   : fmt::format("rank {} cannot reach every other rank by NVLink", r);
        return;
      }
    oneshot_heap_ = static_cast<char*>(shmem::symmetric_malloc(oneshot_layout_.total_bytes()));
    if (oneshot_heap_ == nullptr)
      throw Error(fmt::format("nvrar: rank {} setup: nvshmem_malloc of {} bytes for the one-shot area failed", rank_,
                              oneshot_layout_.total_bytes()));
    NVRAR_CUDA_CHECK(rank_, cudaMemset(oneshot_heap_, 0, oneshot_layout_.total_bytes()));
    NVRAR_CUDA_CHECK(rank_, cudaDeviceSynchronize());
    shmem::barrier_all();
    for (int r = 0; r < nranks_; ++r) oneshot_params_.heaps[r] = static_cast<char*>(shmem::peer_pointer(oneshot_heap_, r));
    oneshot_available_ = true;
  }

  // The LL128 two-shot's exchange area: where the one-shot runs (one NVLink domain), at most kMaxLl128Ranks ranks.
  void setup_ll128() {
    ll128_params_ = Ll128Params{};
    ll128_params_.rank = rank_;
    ll128_params_.ranks = nranks_;
    ll128_params_.seq_counters = ll128_seq_;
    ll128_params_.wait = params_.wait;
    ll128_params_.pdl = params_.pdl;
    if (!oneshot_available_) {
      ll128_unavailable_ = oneshot_unavailable_;
      return;
    }
    if (nranks_ > kMaxLl128Ranks) {
      ll128_unavailable_ = fmt::format("{} ranks", nranks_);
      return;
    }
    if (ll128_max_bytes_ == 0) {
      ll128_unavailable_ = "Options::ll128_max_bytes is 0";
      return;
    }
    // Every block of the kernel must be resident at once: how many fit, per type and block size (setup, not during
    // a capture).
    for (int d = 0; d < 3; ++d)
      for (int w = 1; w <= kLl128MaxThreads / 32; ++w)
        ll128_resident_[d][w] = ll128_resident_blocks(static_cast<DataType>(d), 32 * w);
    ll128_layout_ = ll128_layout(ll128_max_bytes_, nranks_);
    // Lines must be 128-byte aligned (one line, one aligned 128-byte block).
    ll128_heap_ = allocate_area(ll128_layout_.total_bytes(), kLl128LineBytes, "LL128", ll128_params_.heaps,
                                ll128_unavailable_);
    if (ll128_heap_ == nullptr) return;
    ll128_params_.layout = ll128_layout_;
    ll128_available_ = true;
  }
  // A collective exchange area of `bytes`: allocated in the symmetric heap, checked for `align`-byte alignment
  // (NVSHMEM's allocations are 512-byte aligned in the versions seen, and the offset is the same on every rank, so
  // every rank reaches the same verdict), zeroed on every rank before any peer may write into it; every rank's copy
  // as a peer pointer in peers[0..ranks). nullptr, with the reason in `unavailable`, if the heap is full (e.g. sized
  // by an earlier communicator).
  char* allocate_area(std::size_t bytes, std::size_t align, const char* what, char** peers, std::string& unavailable) {
    char* area = static_cast<char*>(shmem::symmetric_malloc(bytes));
    if (area == nullptr) {
      unavailable = fmt::format("nvshmem_malloc of {} bytes for its area failed (symmetric heap full)", bytes);
      return nullptr;
    }
    if (reinterpret_cast<std::uintptr_t>(area) % align != 0)
      throw Error(fmt::format("nvrar: rank {} setup: nvshmem_malloc returned {} for the {} area, not {}-byte aligned",
                              rank_, static_cast<void*>(area), what, align));
    NVRAR_CUDA_CHECK(rank_, cudaMemset(area, 0, bytes));
    NVRAR_CUDA_CHECK(rank_, cudaDeviceSynchronize());
    shmem::barrier_all();
    for (int r = 0; r < nranks_; ++r) peers[r] = static_cast<char*>(shmem::peer_pointer(area, r));
    return area;
  }
  // The push two-shot's exchange area: where the one-shot runs (one NVLink domain), at most kMaxPushRanks ranks.
  void setup_push() {
    push_params_ = PushParams{};
    push_params_.rank = rank_;
    push_params_.ranks = nranks_;
    push_params_.piece_units = push_piece_units_;
    push_params_.seq_counters = push_seq_;
    push_params_.wait = params_.wait;
    push_params_.pdl = params_.pdl;
    if (!oneshot_available_) {
      push_unavailable_ = oneshot_unavailable_;
      return;
    }
    if (nranks_ > kMaxPushRanks || push_max_bytes_ == 0) {
      push_unavailable_ = nranks_ > kMaxPushRanks ? fmt::format("{} ranks", nranks_) : "Options::ll128_max_bytes is 0";
      return;
    }
    for (int d = 0; d < 3; ++d)
      for (int w = 1; w <= kPushMaxThreads / 32; ++w)
        push_resident_[d][w] = push_resident_blocks(static_cast<DataType>(d), nranks_, 32 * w);
    push_params_.layout = push_layout(push_max_bytes_, nranks_);
    // At least one unit: one rank has no slots (nothing to exchange), and NVSHMEM may refuse 0 bytes. Zeroed flags
    // carry no call's sequence number.
    const std::size_t bytes = std::max<std::size_t>(push_params_.layout.total_bytes(), core::kUnitBytes);
    push_area_ = allocate_area(bytes, core::kUnitBytes, "push", push_params_.areas, push_unavailable_);
    if (push_area_ == nullptr) return;
    push_available_ = true;
  }
  static Ll128Layout ll128_layout(std::size_t max_bytes, int ranks) {
    Ll128Layout l;
    l.ranks = ranks;
    l.lines_max = ll128_lines(static_cast<int64_t>(max_bytes), ranks);
    l.slice_lines_max = core::ceil_div(l.lines_max, static_cast<int64_t>(ranks));
    return l;
  }

  // The registered two-shot's areas (sync slots, gather area of max_bytes): where the one-shot runs (one NVLink
  // domain), at most kMaxRegisteredRanks ranks.
  void setup_registered() {
    registered_params_ = RegisteredParams{};
    registered_params_.rank = rank_;
    registered_params_.ranks = nranks_;
    registered_params_.seq_counters = registered_seq_;
    registered_params_.wait = params_.wait;
    registered_params_.pdl = params_.pdl;
    if (!oneshot_available_) {
      registered_unavailable_ = oneshot_unavailable_;
      return;
    }
    if (nranks_ > kMaxRegisteredRanks) {
      registered_unavailable_ = fmt::format("{} ranks", nranks_);
      return;
    }
    registered_sync_ = static_cast<char*>(shmem::symmetric_malloc(RegisteredSyncLayout::total_bytes()));
    registered_gather_ = static_cast<char*>(shmem::symmetric_malloc((max_bytes_ + 255) / 256 * 256));  // whole units
    if (registered_sync_ == nullptr || registered_gather_ == nullptr) {  // e.g. a heap sized by an earlier communicator
      if (registered_gather_ != nullptr) shmem::symmetric_free(registered_gather_);
      if (registered_sync_ != nullptr) shmem::symmetric_free(registered_sync_);
      registered_sync_ = registered_gather_ = nullptr;
      registered_unavailable_ = fmt::format("nvshmem_malloc of {} bytes for its areas failed (symmetric heap full)",
                                            RegisteredSyncLayout::total_bytes() + max_bytes_);
      return;
    }
    NVRAR_CUDA_CHECK(rank_, cudaMemset(registered_sync_, 0, RegisteredSyncLayout::total_bytes()));
    NVRAR_CUDA_CHECK(rank_, cudaDeviceSynchronize());
    shmem::barrier_all();
    for (int r = 0; r < nranks_; ++r) {
      registered_params_.sync[r] = static_cast<char*>(shmem::peer_pointer(registered_sync_, r));
      registered_params_.gather[r] = static_cast<char*>(shmem::peer_pointer(registered_gather_, r));
    }
    registered_available_ = true;
  }

  // Options::ll128_max_bytes, kSizeFromTuning resolved for `a` (LL128 or push): the larger of 16 MiB and the tuning
  // table's largest message of that algorithm. The same on every rank (the tables' fingerprints agree, setup_tuning).
  std::size_t resolve_capacity(Algorithm a) const {
    if (options_.ll128_max_bytes != kSizeFromTuning) return options_.ll128_max_bytes;
    std::size_t bytes = std::size_t{16} << 20;
    if (tuning_)
      for (const core::TuningEntry& e : tuning_->entries)
        if (parse_algorithm(e.algorithm) == a) bytes = std::max(bytes, static_cast<std::size_t>(e.max_bytes));
    return bytes;
  }

  // Tuning table: Options, NVRAR_TUNING_FILE, or a shipped table for this card and topology; else the cost model.
  // Every rank must decide alike: the tables' fingerprints are compared across ranks.
  void setup_tuning() {
    env_algorithm_ = parse_algorithm(core::read_env_string("NVRAR_ALGO", "auto"));
    registered_rule_.min_bytes = core::param_RegisteredMinBytes();
    registered_rule_.over_ll128_bytes = core::param_RegisteredOverLl128Bytes();
    model_preset_ = core::read_env_string("NVRAR_MODEL_PRESET", "h100-ndr400");
    std::string file = options_.tuning_file.empty() ? core::read_env_string("NVRAR_TUNING_FILE", "") : options_.tuning_file;
    const bool explicit_file = !file.empty();
    int device = 0;
    NVRAR_CUDA_CHECK(rank_, cudaGetDevice(&device));
    cudaDeviceProp prop{};
    NVRAR_CUDA_CHECK(rank_, cudaGetDeviceProperties(&prop, device));
    const std::string card = prop.name;
    if (!explicit_file) file = find_shipped_table(card);
    if (!file.empty()) {
      core::TuningTable t = core::load_tuning_table(file);
      if (!t.matches(nranks_, topo_.nodes, topo_.gpus_per_node)) {
        if (explicit_file)
          throw Error(fmt::format("nvrar: rank {} setup: tuning table {} is for {} ranks as {} x {}, this job is {} x "
                                  "{}",
                                  rank_, file, t.ranks, t.nodes, t.gpus_per_node, topo_.nodes, topo_.gpus_per_node));
      } else {
        tuning_ = std::make_shared<core::TuningTable>(std::move(t));
      }
    }
    const auto prints = nccl_allgather_u64(nccl_, rank_, nranks_, tuning_ ? tuning_->fingerprint() : 0);
    for (int r = 0; r < nranks_; ++r)
      if (prints[r] != prints[0])
        throw Error(fmt::format("nvrar: rank {} setup: ranks 0 and {} use different tuning tables (this rank: {}); "
                                "every rank must read the same file",
                                rank_, r, tuning_ ? file : std::string("none, cost model")));
    tuning_source_ = tuning_ ? fmt::format("tuning table {} ({}, {})", file, tuning_->card, tuning_->created)
                             : fmt::format("cost model {}", model_preset_);
  }

  // NVRAR_TUNING_DIR, else the repository's tuning/ folder (build tree) and the installed share/nvrar/tuning, hold
  // tables; the first whose card and topology match is used.
  std::string find_shipped_table(const std::string& card) const {
    const std::string env = core::read_env_string("NVRAR_TUNING_DIR", "");
    const std::vector<std::string> dirs =
        env.empty() ? std::vector<std::string>{NVRAR_DEFAULT_TUNING_DIR, NVRAR_INSTALLED_TUNING_DIR}
                    : std::vector<std::string>{env};
    for (const std::string& dir : dirs) {
      std::error_code ec;
      if (dir.empty() || !std::filesystem::is_directory(dir, ec)) continue;
      std::vector<std::filesystem::path> files;
      for (const auto& entry : std::filesystem::directory_iterator(dir, ec))
        if (entry.path().extension() == ".json") files.push_back(entry.path());
      std::sort(files.begin(), files.end());  // the same choice on every rank
      for (const auto& path : files) {
        try {
          const core::TuningTable t = core::load_tuning_table(path.string());
          if (t.card == card && t.matches(nranks_, topo_.nodes, topo_.gpus_per_node)) return path.string();
        } catch (const Error&) {
          // Not a tuning table: skip it.
        }
      }
    }
    return {};
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
  // one-shot
  bool oneshot_available_ = false;
  std::string oneshot_unavailable_ = "not set up";
  OneShotLayout oneshot_layout_{};
  OneShotParams oneshot_params_{};
  char* oneshot_heap_ = nullptr;
  unsigned long long* oneshot_seq_ = nullptr;
  // registered buffers and the registered two-shot
  std::vector<Buffer> buffers_;
  unsigned long long next_buffer_id_ = 1;
  std::size_t buffer_bytes_used_ = 0;
  bool registered_available_ = false;
  std::string registered_unavailable_ = "not set up";
  char* registered_sync_ = nullptr;
  char* registered_gather_ = nullptr;
  unsigned long long* registered_seq_ = nullptr;
  RegisteredParams registered_params_{};
  // LL128 two-shot
  bool ll128_available_ = false;
  std::string ll128_unavailable_ = "not set up";
  Ll128Layout ll128_layout_{};
  Ll128Params ll128_params_{};
  int ll128_resident_[3][kLl128MaxThreads / 32 + 1] = {};  // [dtype][threads / 32]: blocks that fit at once
  char* ll128_heap_ = nullptr;
  unsigned long long* ll128_seq_ = nullptr;
  bool push_available_ = false;
  std::string push_unavailable_ = "not set up";
  PushParams push_params_{};
  int push_resident_[3][kPushMaxThreads / 32 + 1] = {};  // [dtype][threads / 32]: blocks that fit at once
  char* push_area_ = nullptr;
  unsigned long long* push_seq_ = nullptr;
  int64_t push_piece_units_ = 0;  // NVRAR_PUSH_PIECE_UNITS, checked at setup
  // tuner
  Algorithm env_algorithm_ = Algorithm::kAuto;
  std::string model_preset_;
  std::shared_ptr<core::TuningTable> tuning_;
  std::size_t ll128_max_bytes_ = 0;  // Options::ll128_max_bytes resolved for LL128 (resolve_capacity)
  std::size_t push_max_bytes_ = 0;   // and for push
  core::RegisteredRule registered_rule_;  // NVRAR_REGISTERED_MIN_BYTES, NVRAR_REGISTERED_OVER_LL128_BYTES (setup)
  std::string tuning_source_;
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
  core::debug_stage(launch.rank, "NCCL bootstrap (launcher " + launch.launcher + ")");
  gpu::NcclBootstrap b = gpu::bootstrap_nccl(launch);
  return std::make_unique<gpu::GpuCommunicator>(b.comm, /*owns_nccl=*/true, b.method, options);
}

std::unique_ptr<Communicator> Communicator::from_nccl(ncclComm_t nccl, const Options& options) {
  if (nccl == nullptr) throw Error("nvrar: from_nccl: the NCCL communicator is null");
  return std::make_unique<gpu::GpuCommunicator>(nccl, /*owns_nccl=*/false, "existing NCCL communicator", options);
}

}  // namespace nvrar
