// Bootstrap of a GPU job: one NCCL communicator over all ranks, built from the launcher's environment, and
// small host-side collectives over it (used to hand out the NVSHMEM unique id and to discover nodes).
#pragma once

#include <cuda_runtime_api.h>
#include <nccl.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "nvrar/launch.h"

namespace nvrar::gpu {

// Throws nvrar::Error "nvrar: rank R <what> failed at file:line: <reason>" on a CUDA or NCCL error.
void check_cuda(cudaError_t e, int rank, const char* what, const char* file, int line);
void check_nccl(ncclResult_t r, int rank, const char* what, const char* file, int line);
#define NVRAR_CUDA_CHECK(rank, call) ::nvrar::gpu::check_cuda((call), (rank), #call, __FILE__, __LINE__)
#define NVRAR_NCCL_CHECK(rank, call) ::nvrar::gpu::check_nccl((call), (rank), #call, __FILE__, __LINE__)

struct NcclBootstrap {
  ncclComm_t comm = nullptr;
  std::string method;  // "mpi", "nccl-comm-id", "single"
};

// Creates the NCCL communicator of all launch.size ranks. The NCCL unique id travels through MPI when this
// build has MPI and the launcher is an MPI launcher (OpenMPI, PMI, Slurm); otherwise every rank derives it from
// NCCL_COMM_ID, set from MASTER_ADDR:MASTER_PORT when the user did not set it. The current device must be set.
NcclBootstrap bootstrap_nccl(const LaunchInfo& launch);

// Host-side collectives over an NCCL communicator (synchronous; for setup, not for the data path).
void nccl_broadcast_bytes(ncclComm_t comm, int rank, void* data, std::size_t bytes, int root);
std::vector<uint64_t> nccl_allgather_u64(ncclComm_t comm, int rank, int nranks, uint64_t value);

// Whether MPI support was compiled in, and MPI broadcast of bytes from rank 0 (initialises MPI on first use;
// finalised at exit).
bool mpi_supported();
void mpi_broadcast_bytes(void* data, std::size_t bytes);
// MPI_COMM_WORLD's size (initialising MPI if needed); 0 without MPI support. A launcher's environment and MPI can
// disagree, e.g. srun with an MPI lacking Slurm's PMI: every process is then a singleton of size 1.
int mpi_world_size();

}  // namespace nvrar::gpu
