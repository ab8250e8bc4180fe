// MPI half of the bootstrap: only compiled when CMake found MPI (NVRAR_HAVE_MPI).
#include <mpi.h>

#include <cstdlib>
#include <string>

#include "gpu/runtime/bootstrap.h"
#include "nvrar/types.h"

namespace nvrar::gpu {

namespace {

bool g_we_initialised = false;

void finalize_at_exit() {
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized) MPI_Finalize();
}

void ensure_mpi() {
  int initialised = 0;
  MPI_Initialized(&initialised);
  if (initialised) return;
  int provided = 0;
  if (MPI_Init_thread(nullptr, nullptr, MPI_THREAD_SERIALIZED, &provided) != MPI_SUCCESS)
    throw Error("nvrar: bootstrap: MPI_Init_thread failed");
  g_we_initialised = true;
  std::atexit(finalize_at_exit);
}

}  // namespace

bool mpi_supported() { return true; }

int mpi_world_size() {
  ensure_mpi();
  int size = 0;
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  return size;
}

void mpi_broadcast_bytes(void* data, std::size_t bytes) {
  ensure_mpi();
  const int rc = MPI_Bcast(data, static_cast<int>(bytes), MPI_BYTE, 0, MPI_COMM_WORLD);
  if (rc != MPI_SUCCESS) throw Error("nvrar: bootstrap: MPI_Bcast of a unique id failed (code " + std::to_string(rc) + ")");
}

}  // namespace nvrar::gpu
