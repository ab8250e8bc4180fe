// Spin kernel of the timed-replay gate (start_gate.h).
//
// Purpose: hold the stream for a fixed time while the host queues the work behind it.
// Algorithm: one thread reads the GPU's global timer until `ns` have passed.
// Launch: 1 block x 1 thread. Sync: none (stream order only).
#include "bench/start_gate.h"

#include "gpu/device/device_units.cuh"

namespace nvrar::bench {

namespace {

__global__ void spin_kernel(unsigned long long ns) {
  const unsigned long long start = gpu::dev::global_timer_ns();
  while (gpu::dev::global_timer_ns() - start < ns) {
  }
}

}  // namespace

cudaError_t launch_spin(cudaStream_t stream, unsigned long long ns) {
  spin_kernel<<<1, 1, 0, stream>>>(ns);
  return cudaGetLastError();
}

}  // namespace nvrar::bench
