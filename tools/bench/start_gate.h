// The start of a timed replay in nvrar-bench's GPU backend: every rank's GPU begins the captured calls at about the
// same moment, so a replay's time is the calls' and not the launch of the graph or another rank's late host.
#pragma once

#include <cuda_runtime_api.h>

namespace nvrar::bench {

// Enqueues a one-thread kernel that spins for `ns` nanoseconds of the GPU's global timer: the host meanwhile queues
// what follows it (the gate all-reduce, the start event, the graph), so none of that host work lands in the timing.
cudaError_t launch_spin(cudaStream_t stream, unsigned long long ns);

}  // namespace nvrar::bench
