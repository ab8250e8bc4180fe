// NVRAR on GPUs: a communicator over all ranks of a job, one GPU per process.
//
//   auto comm = nvrar::Communicator::create();            // rank, size, local rank from mpirun/srun/torchrun
//   comm->allreduce(d_in, d_out, count, nvrar::DataType::kBFloat16, stream);
//   comm->synchronize(stream);                            // optional: waits and reports a failed call
//
// Calls are stream-ordered, need no host synchronisation and can be captured in CUDA graphs. A call whose
// peers do not answer within NVRAR_TIMEOUT_MS ends its kernel instead of hanging; the failure (rank, peer,
// phase, step, call number) is reported by the next call, synchronize() or check().
#pragma once

#include <cuda_runtime_api.h>
#include <nccl.h>

#include <cstddef>
#include <memory>
#include <string>

#include "nvrar/launch.h"
#include "nvrar/types.h"

namespace nvrar {

enum class Algorithm : int {
  kAuto = 0,          // NVRAR's choice by message size and topology (hierarchical, or NCCL above its range)
  kHierarchical = 1,  // reduce-scatter over NVLink, recursive doubling across nodes, all-gather over NVLink
  kNccl = 2,          // ncclAllReduce on the communicator's NCCL communicator
};
const char* algorithm_name(Algorithm a);
// Parses "auto", "hierarchical", "nccl"; throws nvrar::Error otherwise.
Algorithm parse_algorithm(const std::string& name);

struct Options {
  // Largest message (count x element size) the hierarchical kernel accepts; sizes the NVSHMEM heap.
  std::size_t max_bytes = std::size_t{64} << 20;
  // Ranks per (virtual) node; 0 takes NVRAR_GPUS_PER_NODE, else the launcher's local size.
  int gpus_per_node = 0;
  // Spin-wait limit in the kernels; 0 takes NVRAR_TIMEOUT_MS (default 30000).
  int timeout_ms = 0;
  // Algorithm used by allreduce() when the call does not name one; kAuto also honours NVRAR_ALGO.
  Algorithm algorithm = Algorithm::kAuto;
};

class Communicator {
 public:
  // Builds a communicator for this process from the launcher's environment. Unique ids are exchanged through
  // MPI when NVRAR was built with it and the job was started by an MPI launcher, otherwise through NCCL itself
  // (NCCL_COMM_ID from MASTER_ADDR/MASTER_PORT, as torchrun sets them). Selects GPU local_rank.
  static std::unique_ptr<Communicator> create(const Options& options = {});
  // Adopts an existing NCCL communicator (which the caller keeps owning): same ranks, its GPU must be current.
  static std::unique_ptr<Communicator> from_nccl(ncclComm_t nccl, const Options& options = {});

  virtual ~Communicator() = default;

  // Sum all-reduce of `count` elements, fp32 accumulation; in == out allowed; count 0 is a no-op.
  virtual void allreduce(const void* in, void* out, std::size_t count, DataType dtype, cudaStream_t stream,
                         Algorithm algorithm = Algorithm::kAuto) = 0;
  // Throws nvrar::Error if an earlier call's kernel reported a failure (timeout). Does not block.
  virtual void check() = 0;
  // cudaStreamSynchronize + check().
  virtual void synchronize(cudaStream_t stream) = 0;

  virtual int rank() const = 0;
  virtual int size() const = 0;
  virtual int nodes() const = 0;
  virtual int gpus_per_node() const = 0;
  virtual std::size_t max_bytes() const = 0;
  virtual ncclComm_t nccl() const = 0;
  // "P=4 (N=2 x G=2), NVSHMEM x.y.z, inter-node transport put"
  virtual std::string describe() const = 0;
};

// NCCL's type for an NVRAR element type; throws nvrar::Error for an invalid value.
ncclDataType_t nccl_data_type(DataType dtype);

// True when this build has the NVSHMEM transport (the GPU hierarchical algorithm).
bool built_with_nvshmem();

}  // namespace nvrar
