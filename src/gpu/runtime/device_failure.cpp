#include "gpu/runtime/device_failure.h"

#include <cuda_runtime_api.h>

#include <cstring>

#include <fmt/format.h>

#include "core/protocol.h"
#include "gpu/runtime/bootstrap.h"

namespace nvrar::gpu {

DeviceFailure::DeviceFailure(int rank) : rank_(rank) {
  NVRAR_CUDA_CHECK(rank_, cudaMalloc(&abort_flag_, sizeof(int)));
  NVRAR_CUDA_CHECK(rank_, cudaMemset(abort_flag_, 0, sizeof(int)));
  NVRAR_CUDA_CHECK(rank_, cudaHostAlloc(&host_, sizeof(ErrorRecord), cudaHostAllocMapped));
  std::memset(host_, 0, sizeof(ErrorRecord));
  NVRAR_CUDA_CHECK(rank_, cudaHostGetDevicePointer(reinterpret_cast<void**>(&device_), host_, 0));
}

DeviceFailure::~DeviceFailure() {
  if (host_ != nullptr) cudaFreeHost(host_);
  if (abort_flag_ != nullptr) cudaFree(abort_flag_);
}

WaitContext DeviceFailure::wait_context(long long timeout_ns, int poll_sleep_ns) const {
  return WaitContext{rank_, abort_flag_, device_, timeout_ns, poll_sleep_ns};
}

bool DeviceFailure::pending() const { return *reinterpret_cast<volatile int*>(&host_->code) != 0; }

std::string DeviceFailure::describe(const core::Topology& topo, int timeout_ms) const {
  const ErrorRecord e = *const_cast<const ErrorRecord*>(host_);
  if (e.code == 2)
    return fmt::format(
        "rank {} allreduce call {} (registered two-shot): rank {} called with another count, type, grid or place "
        "(buffer or offset) of the input or output than this rank; every rank must pass the same offsets into its "
        "buffers of allocate_buffer() and the same count and type. Nothing was written",
        e.rank, e.seq, e.peer);
  const auto phase = static_cast<core::Phase>(e.phase);
  const std::string step = phase == core::Phase::kDoubling ? fmt::format(" step {}", e.step) : std::string();
  const bool registered = phase == core::Phase::kRegisteredReady || phase == core::Phase::kRegisteredDone;
  const bool ll128 = phase == core::Phase::kLl128ReduceScatter || phase == core::Phase::kLl128AllGather;
  const bool push = phase == core::Phase::kPushReduceScatter || phase == core::Phase::kPushAllGather;
  const std::string where = registered ? fmt::format(" (block {})", e.unit)
                            : ll128    ? fmt::format(" (128-byte line {} of slice {})", e.unit, e.slice)
                            : push     ? fmt::format(" (piece {} of slice {})", e.unit, e.slice)
                                       : fmt::format(" (unit {} of slice {})", e.unit, e.slice);
  return fmt::format(
      "rank {} (node {}, local {}) allreduce call {}: timed out after {} ms in {}{} waiting for rank {}{}; that rank "
      "did not reach this call, failed, or called with another count or dtype",
      e.rank, topo.node, topo.local, e.seq, timeout_ms, core::phase_name(phase), step, e.peer, where);
}

}  // namespace nvrar::gpu
