// What every NVRAR kernel needs to fail instead of hang: the timeout, the abort flag that stops the other blocks,
// and the mapped record through which the host learns who waited for whom. Shared by all kernels of a
// communicator (one abort flag, one record), filled once at setup.
#pragma once

#include <cstdint>

namespace nvrar::gpu {

// Written once by the first thread that times out; read by the host through mapped pinned memory.
struct ErrorRecord {
  int code;  // 0: none; 1: timeout; 2: a peer called with other arguments (registered two-shot)
  int rank;
  int peer;
  int phase;  // core::Phase
  int step;
  int slice;
  long long unit;
  unsigned long long seq;
};

struct WaitContext {
  int rank;               // this rank, for the record
  int* abort_flag;        // device word: set when any wait timed out or a peer's arguments differed
  ErrorRecord* error;     // mapped host memory
  long long timeout_ns;
  int poll_sleep_ns;      // back-off between failed polls (0: spin)
};

// The kernel state every algorithm shares, filled once at setup and carried by value in each algorithm's Params.
struct KernelCommon {
  int rank = 0;
  int ranks = 1;
  WaitContext wait{};
  bool pdl = true;  // launch with programmatic dependent launch (NVRAR_PDL)
};

}  // namespace nvrar::gpu
