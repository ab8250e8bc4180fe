#include "gpu/runtime/nvshmem_runtime.h"

#include <cstdlib>
#include <mutex>
#include <string>

#include "config/settings.h"
#include "gpu/runtime/bootstrap.h"
#include "nvrar/types.h"

#if NVRAR_HAVE_NVSHMEM
#include <nvshmem.h>
#include <nvshmemx.h>
#endif

namespace nvrar::gpu::shmem {

#if NVRAR_HAVE_NVSHMEM

namespace {
std::mutex g_mu;
int g_users = 0;

std::string rank_prefix(int rank) { return "nvrar: rank " + std::to_string(rank) + " setup: "; }
}  // namespace

bool available() { return true; }

void acquire(ncclComm_t nccl, int rank, int nranks, std::size_t heap_bytes) {
  std::lock_guard<std::mutex> lock(g_mu);
  if (g_users > 0) {
    if (nvshmem_my_pe() != rank || nvshmem_n_pes() != nranks)
      throw Error(rank_prefix(rank) + "NVSHMEM is already initialised as PE " + std::to_string(nvshmem_my_pe()) +
                  " of " + std::to_string(nvshmem_n_pes()) + ", but this communicator is rank " +
                  std::to_string(rank) + " of " + std::to_string(nranks) + "; one NVSHMEM job per process");
    ++g_users;
    return;
  }
  // NVRAR never uses NVLink multicast; the symmetric heap must hold our regions (NVSHMEM's default is 1 GiB).
  setenv("NVSHMEM_DISABLE_NVLS", "1", 0);
  // NVRAR uses NVSHMEM's heap, peer pointers and puts only; NVSHMEM's own NCCL communicators are not needed.
  setenv("NVSHMEM_DISABLE_NCCL", "1", 0);
  const std::size_t want = heap_bytes + (std::size_t{256} << 20);
  setenv("NVSHMEM_SYMMETRIC_SIZE", std::to_string(want).c_str(), 0);
  nvshmemx_uniqueid_t id = NVSHMEMX_UNIQUEID_INITIALIZER;
  config::debug_stage(rank, "NVSHMEM unique id (rank 0), then its broadcast over NCCL");
  if (rank == 0 && nvshmemx_get_uniqueid(&id) != 0) throw Error(rank_prefix(rank) + "nvshmemx_get_uniqueid failed");
  nccl_broadcast_bytes(nccl, rank, &id, sizeof(id), 0);
  config::debug_stage(rank, "nvshmemx_init_attr (unique-id bootstrap)");
  nvshmemx_init_attr_t attr = NVSHMEMX_INIT_ATTR_INITIALIZER;
  if (nvshmemx_set_attr_uniqueid_args(rank, nranks, &id, &attr) != 0)
    throw Error(rank_prefix(rank) + "nvshmemx_set_attr_uniqueid_args failed");
  if (nvshmemx_init_attr(NVSHMEMX_INIT_WITH_UNIQUEID, &attr) != 0)
    throw Error(rank_prefix(rank) + "nvshmemx_init_attr failed");
  if (nvshmem_my_pe() != rank || nvshmem_n_pes() != nranks)
    throw Error(rank_prefix(rank) + "NVSHMEM made this process PE " + std::to_string(nvshmem_my_pe()) + " of " +
                std::to_string(nvshmem_n_pes()));
  g_users = 1;
  config::debug_stage(rank, "NVSHMEM initialised");
}

void release() {
  std::lock_guard<std::mutex> lock(g_mu);
  if (g_users > 0 && --g_users == 0) nvshmem_finalize();
}

void* symmetric_malloc(std::size_t bytes) { return nvshmem_malloc(bytes); }
void symmetric_free(void* p) { nvshmem_free(p); }
void* peer_pointer(void* symmetric, int pe) { return nvshmem_ptr(symmetric, pe); }
void barrier_all() { nvshmem_barrier_all(); }

std::string version() {
  int major = 0, minor = 0, patch = 0;
  nvshmemx_vendor_get_version_info(&major, &minor, &patch);
  return std::to_string(major) + "." + std::to_string(minor) + "." + std::to_string(patch);
}

#else  // no NVSHMEM in this build

namespace {
[[noreturn]] void unavailable() {
  throw Error("nvrar: this build has no NVSHMEM (configure with NVSHMEM_HOME or the nvidia-nvshmem wheel)");
}
}  // namespace

bool available() { return false; }
void acquire(ncclComm_t, int, int, std::size_t) { unavailable(); }
void release() {}
void* symmetric_malloc(std::size_t) { unavailable(); }
void symmetric_free(void*) {}
void* peer_pointer(void*, int) { unavailable(); }
void barrier_all() { unavailable(); }
std::string version() { return "none"; }

#endif

}  // namespace nvrar::gpu::shmem
