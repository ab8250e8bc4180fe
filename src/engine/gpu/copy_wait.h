// How the engine's Hopper prefill kernels fail instead of hanging when a wait on their shared-memory barriers never
// ends (a TMA copy that never lands, or a release that never comes): each wait is bounded by NVRAR_TIMEOUT_MS, the
// first thread to give up writes a record into mapped host memory, and every thread that gives up waits no more and
// traps at its kernel's end (wgmma.cuh). The trap loses the CUDA context; the host's next CUDA error (cuda_check,
// device_memory.h, and nvrar-llm's last catch) then carries the record as a message naming the GPU, the kernel, the
// wait, the block and the thread.
#pragma once

#include <cstdint>
#include <string>

namespace nvrar::engine::gpu {

// Which wait gave up (the record's site).
enum class CopyWaitSite : int {
  kNone = 0,
  kTmaTile = 1,           // wgmma-tma: a key tile's K and V copies
  kWsStageRelease = 2,    // wgmma-ws producer: the consumers' release of a stage before its refill
  kWsKeyTile = 3,         // wgmma-ws consumer: a K tile's copy
  kWsValueTile = 4,       // wgmma-ws consumer: a V tile's copy
  kSelfTest = 5,          // copy_wait_self_test: a barrier nobody arrives on
};

// Written once, by the first thread that gives up; read by the host without synchronising.
struct CopyWaitRecord {
  int site;                // CopyWaitSite; 0 while no wait has given up
  int block;               // blockIdx.x
  int thread;              // threadIdx.x
  int parity;              // the barrier phase's parity it waited for
  unsigned barrier;        // the barrier's shared-memory address
  int device;              // the CUDA device the kernel ran on
  uint32_t timeout_units;  // the bound it was given (CopyWaitBound)
};

// What a bounded wait needs, passed to the kernels by value (in their parameter space, read only once a wait is slow).
struct CopyWaitBound {
  CopyWaitRecord* record = nullptr;  // mapped host memory (device pointer)
  uint32_t timeout_units = 0;        // 2^20 ns (~1.05 ms) units, at least 1
  int device = 0;                    // the current CUDA device at launch
};

// The process's bound: the record (allocated once, mapped pinned host memory, portable across devices) and
// NVRAR_TIMEOUT_MS. `timeout_ms` > 0 overrides the setting (the self-test). Throws nvrar::Error if the host memory
// cannot be allocated.
CopyWaitBound copy_wait_bound(int64_t timeout_ms = 0);

// The message for a record ("" when its site is 0): the GPU, the kernel, the wait, the block, the thread, the timeout
// (the record's own, in ms).
std::string describe_copy_wait(const CopyWaitRecord& record);

// The process record's message, "" when no wait has given up (or no record was ever allocated).
std::string copy_wait_failure();

// Launches 8 blocks of 128 threads that all wait on their block's shared-memory barrier, which nobody arrives on,
// with this bound, and synchronises: the waits give up after timeout_ms (all on about the same tick, so the record
// must survive the race) and the call throws nvrar::Error with the record's message (the CUDA context is lost: call
// it in a process of its own). Compute capability 9.0 only (throws elsewhere).
void copy_wait_self_test(int64_t timeout_ms);

}  // namespace nvrar::engine::gpu
