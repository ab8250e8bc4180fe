// Stand-in for builds without MPI: the bootstrap then always goes through NCCL_COMM_ID.
#include "gpu/runtime/bootstrap.h"
#include "nvrar/types.h"

namespace nvrar::gpu {

bool mpi_supported() { return false; }

int mpi_world_size() { return 0; }

void mpi_broadcast_bytes(void*, std::size_t) {
  throw Error("nvrar: bootstrap: this build has no MPI support (configure with MPI installed, or launch with "
              "MASTER_ADDR/MASTER_PORT set)");
}

}  // namespace nvrar::gpu
