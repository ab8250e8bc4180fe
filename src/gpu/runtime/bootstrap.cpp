#include "gpu/runtime/bootstrap.h"

#include <cstdlib>
#include <cstring>
#include <string>

#include <fmt/format.h>

#include "config/settings.h"
#include "gpu/runtime/nvshmem_runtime.h"
#include "nvrar/nvrar.h"
#include "nvrar/types.h"

namespace nvrar::gpu {

void check_cuda(cudaError_t e, int rank, const char* what, const char* file, int line) {
  if (e == cudaSuccess) return;
  throw Error(fmt::format("nvrar: rank {} {} failed at {}:{}: {}", rank, what, file, line, cudaGetErrorString(e)));
}

void check_nccl(ncclResult_t r, int rank, const char* what, const char* file, int line) {
  if (r == ncclSuccess) return;
  throw Error(fmt::format("nvrar: rank {} {} failed at {}:{}: {} ({})", rank, what, file, line,
                          ncclGetErrorString(r), ncclGetLastError(nullptr)));
}

// Whether MPI_COMM_WORLD is the job the launcher describes. If not (srun with an MPI built without Slurm's PMI makes
// each process a singleton), the NCCL_COMM_ID path takes over when MASTER_ADDR/MASTER_PORT are set; otherwise the
// mismatch is an error here rather than a hang in a broadcast nobody else joins.
bool mpi_world_matches(const LaunchInfo& launch) {
  const int size = mpi_world_size();
  if (size == launch.size) return true;
  const std::string why = fmt::format(
      "nvrar: rank {} bootstrap: launched by {} as one of {} processes, but MPI_COMM_WORLD has {} (is this MPI "
      "built with the launcher's PMI, e.g. srun --mpi=pmix?)",
      launch.rank, launch.launcher, launch.size, size);
  if (std::getenv("NCCL_COMM_ID") == nullptr && (launch.master_addr.empty() || launch.master_port == 0))
    throw Error(why + "; set MASTER_ADDR and MASTER_PORT to bootstrap through NCCL instead");
  config::debug_stage(launch.rank, why + "; bootstrapping through NCCL_COMM_ID / MASTER_ADDR instead");
  return false;
}

NcclBootstrap bootstrap_nccl(const LaunchInfo& launch) {
  NcclBootstrap b;
  bool set_comm_id = false;  // NCCL_COMM_ID set here for this one init, then removed
  ncclUniqueId id;
  std::memset(&id, 0, sizeof(id));
  const bool mpi_launcher = launch.launcher == "openmpi" || launch.launcher == "pmi" || launch.launcher == "slurm";
  if (launch.size == 1) {
    b.method = "single";
    NVRAR_NCCL_CHECK(launch.rank, ncclGetUniqueId(&id));
  } else if (mpi_launcher && mpi_supported() && mpi_world_matches(launch)) {
    b.method = "mpi";
    if (launch.rank == 0) NVRAR_NCCL_CHECK(launch.rank, ncclGetUniqueId(&id));
    mpi_broadcast_bytes(&id, sizeof(id));
  } else {
    b.method = "nccl-comm-id";
    set_comm_id = std::getenv("NCCL_COMM_ID") == nullptr;
    if (set_comm_id) {
      if (launch.master_addr.empty() || launch.master_port == 0)
        throw Error(fmt::format(
            "nvrar: rank {} bootstrap: launched by {} without MPI support in this build, and neither NCCL_COMM_ID "
            "nor MASTER_ADDR/MASTER_PORT is set; set MASTER_ADDR and MASTER_PORT (torchrun does) to the address of "
            "rank 0",
            launch.rank, launch.launcher));
      // MASTER_PORT itself is taken under torchrun (its rendezvous store listens there): NCCL's root takes the next.
      const int port = launch.master_port < 65535 ? launch.master_port + 1 : launch.master_port - 1;
      const std::string comm_id = fmt::format("{}:{}", launch.master_addr, port);
      setenv("NCCL_COMM_ID", comm_id.c_str(), 0);
    }
    // With NCCL_COMM_ID set, every rank gets the same id; rank 0's ncclCommInitRank listens at that address.
    NVRAR_NCCL_CHECK(launch.rank, ncclGetUniqueId(&id));
  }
  const char* comm_id = std::getenv("NCCL_COMM_ID");
  config::debug_stage(launch.rank, "ncclCommInitRank (" + b.method +
                                     (comm_id ? std::string(", NCCL_COMM_ID=") + comm_id : std::string()) + ")");
  const ncclResult_t init = ncclCommInitRank(&b.comm, launch.size, id, launch.rank);
  // Left set, NCCL_COMM_ID would make every later ncclGetUniqueId in this process (NVSHMEM's NCCL teams, the
  // application's own communicators) return this same root address, which is no longer listening.
  if (set_comm_id) unsetenv("NCCL_COMM_ID");
  NVRAR_NCCL_CHECK(launch.rank, init);
  return b;
}

void nccl_broadcast_bytes(ncclComm_t comm, int rank, void* data, std::size_t bytes, int root) {
  void* d = nullptr;
  cudaStream_t stream = nullptr;
  NVRAR_CUDA_CHECK(rank, cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  NVRAR_CUDA_CHECK(rank, cudaMalloc(&d, bytes));
  NVRAR_CUDA_CHECK(rank, cudaMemcpy(d, data, bytes, cudaMemcpyHostToDevice));
  NVRAR_NCCL_CHECK(rank, ncclBroadcast(d, d, bytes, ncclUint8, root, comm, stream));
  NVRAR_CUDA_CHECK(rank, cudaStreamSynchronize(stream));
  NVRAR_CUDA_CHECK(rank, cudaMemcpy(data, d, bytes, cudaMemcpyDeviceToHost));
  cudaFree(d);
  cudaStreamDestroy(stream);
}

std::vector<uint64_t> nccl_allgather_u64(ncclComm_t comm, int rank, int nranks, uint64_t value) {
  uint64_t* d = nullptr;
  cudaStream_t stream = nullptr;
  std::vector<uint64_t> all(static_cast<std::size_t>(nranks));
  NVRAR_CUDA_CHECK(rank, cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  NVRAR_CUDA_CHECK(rank, cudaMalloc(&d, sizeof(uint64_t) * nranks));
  NVRAR_CUDA_CHECK(rank, cudaMemcpy(d + rank, &value, sizeof(uint64_t), cudaMemcpyHostToDevice));
  NVRAR_NCCL_CHECK(rank, ncclAllGather(d + rank, d, 1, ncclUint64, comm, stream));
  NVRAR_CUDA_CHECK(rank, cudaStreamSynchronize(stream));
  NVRAR_CUDA_CHECK(rank, cudaMemcpy(all.data(), d, sizeof(uint64_t) * nranks, cudaMemcpyDeviceToHost));
  cudaFree(d);
  cudaStreamDestroy(stream);
  return all;
}

}  // namespace nvrar::gpu

namespace nvrar {

bool built_with_nvshmem() { return gpu::shmem::available(); }

ncclDataType_t nccl_data_type(DataType dtype) {
  switch (dtype) {
    case DataType::kFloat32:
      return ncclFloat32;
    case DataType::kBFloat16:
      return ncclBfloat16;
    case DataType::kFloat16:
      return ncclFloat16;
  }
  throw Error("nvrar: no NCCL type for dtype value " + std::to_string(static_cast<int>(dtype)));
}

}  // namespace nvrar
