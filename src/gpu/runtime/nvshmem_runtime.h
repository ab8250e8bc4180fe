// The few NVSHMEM host calls NVRAR makes, behind plain functions so that the communicator (host C++) needs no
// NVSHMEM headers. Implemented in nvshmem_runtime.cu, compiled by nvcc into the library that holds the kernels,
// as NVSHMEM's device-state initialisation requires. In builds without NVSHMEM, available() is false and the
// other calls throw nvrar::Error.
#pragma once

#include <nccl.h>

#include <cstddef>
#include <string>

namespace nvrar::gpu::shmem {

bool available();
// Initialises NVSHMEM for this process on first use (unique id broadcast from rank 0 over `nccl`), with
// NVSHMEM_DISABLE_NVLS=1 and a symmetric heap of at least heap_bytes unless the user set those variables.
// Later calls check that the job is the same (rank, size) and count a reference.
void acquire(ncclComm_t nccl, int rank, int nranks, std::size_t heap_bytes);
// Drops a reference; the last one finalises NVSHMEM.
void release();
void* symmetric_malloc(std::size_t bytes);  // collective
void symmetric_free(void* p);               // collective
void* peer_pointer(void* symmetric, int pe);  // nullptr when pe is not load/store reachable
void barrier_all();
std::string version();

}  // namespace nvrar::gpu::shmem
