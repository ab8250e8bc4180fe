// How a kernel's failure reaches the host: the abort flag every kernel of a communicator watches, and the mapped
// record the first failing thread writes (device/device_wait.h). The host reads it without synchronising and turns it
// into a message naming the rank, the peer, the phase and the call.
#pragma once

#include <string>

#include "core/topology.h"
#include "gpu/device/device_wait.h"

namespace nvrar::gpu {

class DeviceFailure {
 public:
  explicit DeviceFailure(int rank);
  ~DeviceFailure();
  DeviceFailure(const DeviceFailure&) = delete;
  DeviceFailure& operator=(const DeviceFailure&) = delete;

  // The kernels' view: abort flag and record, with the timeout and poll back-off.
  WaitContext wait_context(long long timeout_ns, int poll_sleep_ns) const;
  // Whether a kernel has written the record (no synchronisation).
  bool pending() const;
  // The record as a message: "rank R (node N, local L) allreduce call C: timed out after T ms in PHASE ... waiting
  // for rank P ...", or the registered two-shot's argument mismatch.
  std::string describe(const core::Topology& topo, int timeout_ms) const;

 private:
  int rank_;
  int* abort_flag_ = nullptr;
  ErrorRecord* host_ = nullptr;
  ErrorRecord* device_ = nullptr;
};

}  // namespace nvrar::gpu
