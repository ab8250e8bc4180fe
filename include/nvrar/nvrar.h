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

// Algorithm and Choice (an algorithm with its launch shape), algorithm_name and parse_algorithm: nvrar/types.h.

// Options::ll128_max_bytes's default: sized from the tuning table at setup (see there).
constexpr std::size_t kSizeFromTuning = ~std::size_t{0};

struct Options {
  // Largest message (count x element size) the hierarchical kernel accepts; sizes the NVSHMEM heap.
  std::size_t max_bytes = std::size_t{64} << 20;
  // Ranks per (virtual) node; 0 takes NVRAR_GPUS_PER_NODE, else the launcher's local size.
  int gpus_per_node = 0;
  // Spin-wait limit in the kernels; 0 takes NVRAR_TIMEOUT_MS (default 30000).
  int timeout_ms = 0;
  // Algorithm used by allreduce() when the call does not name one; kAuto also honours NVRAR_ALGO.
  Algorithm algorithm = Algorithm::kAuto;
  // Largest message of the one-shot algorithm (its exchange area takes 4 x ranks x this in each GPU's heap).
  std::size_t oneshot_max_bytes = std::size_t{1} << 20;
  // Largest message of the LL128 and push two-shots; their exchange areas take about 4 x 128 / 120 x this (LL128)
  // and 2 x (ranks - 1) / ranks x this (push) in each GPU's heap. kSizeFromTuning (default): for each of the two,
  // the larger of 16 MiB and the largest message the tuning table in use gives it (shipped H100 tables: LL128
  // 16 MiB, ~72 MB of area; push 64 MiB, 64 MB of area on 2 GPUs, 96 MB on 4). 0: neither.
  std::size_t ll128_max_bytes = kSizeFromTuning;
  // Tuning table (nvrar-bench --tune); empty: NVRAR_TUNING_FILE, else a table of NVRAR_TUNING_DIR (default: the
  // tables shipped with NVRAR) measured on this card and topology, else the cost model.
  std::string tuning_file;
  // Room in NVRAR's symmetric heap for allocate_buffer() (all buffers together); sizes the NVSHMEM heap when this
  // communicator is the first to initialise NVSHMEM in the process.
  std::size_t buffer_bytes = std::size_t{256} << 20;
  // Whether auto may hand a call to NCCL. false: auto takes one of NVRAR's own kernels wherever one can run the call
  // (within its capacity) and NCCL only where none can (the engine's --allreduce nvrar).
  bool auto_may_use_nccl = true;
  // Whether creation may measure a tuning table where none applies (NVRAR_TUNE, docs/algorithms.md "First-use
  // tuning"); false: never (nvrar-bench --tune, which measures its own).
  bool first_use_tune = true;
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
  void allreduce(const void* in, void* out, std::size_t count, DataType dtype, cudaStream_t stream,
                 Algorithm algorithm = Algorithm::kAuto) {
    allreduce(in, out, count, dtype, stream, Choice{algorithm});
  }
  virtual void allreduce(const void* in, void* out, std::size_t count, DataType dtype, cudaStream_t stream,
                         const Choice& choice) = 0;
  // Fused all-reduce + residual add + RMSNorm over rows x hidden elements (a transformer layer's epilogue):
  //   residual = residual + allreduce(x);  out = rmsnorm(residual, eps) * weight   (weight: hidden elements)
  // with Hugging Face LlamaRMSNorm's roundings. One kernel where the one-shot algorithm is chosen; otherwise the
  // chosen all-reduce into `out`, then one residual + RMSNorm kernel. On a communicator of one rank (the sum is x
  // itself) only the residual + RMSNorm kernel runs. x may alias out or residual.
  // hidden x element size must be a multiple of 16 bytes. On one rank with NVRAR_PDL=1 (the default) that kernel
  // starts while the stream's previous kernel drains and, for up to 64 rows, reads `weight` before that kernel has
  // finished: weight must not be written by the kernel launched just before this call (NVRAR_PDL=0 lifts this).
  virtual void allreduce_add_rmsnorm(const void* x, void* residual, const void* weight, void* out, std::size_t rows,
                                     std::size_t hidden, float eps, DataType dtype, cudaStream_t stream,
                                     Algorithm algorithm = Algorithm::kAuto) = 0;
  // What allreduce() with Algorithm::kAuto runs for a message of `bytes` (identical on every rank) with an input
  // outside (registered = false) or inside (true) a buffer from allocate_buffer() (input and output).
  virtual Choice resolve(std::size_t bytes, bool registered = false) const = 0;

  // Registered buffers (zero copy). allocate_buffer() returns `bytes` of device memory in NVRAR's symmetric heap,
  // 256-byte aligned; it is collective: every rank calls it with the same bytes, in the same order (and
  // free_buffer() likewise). An all-reduce whose input lies in such a buffer reads the peers' inputs where they are
  // instead of copying them into NVRAR's exchange area first (Algorithm::kRegistered, which auto takes on
  // one node from NVRAR_REGISTERED_MIN_BYTES, default 1 MiB, up, except where the tuning table picks the LL128
  // two-shot, which needs no copy either); if the output lies in one too, the sums are
  // stored straight into the peers' outputs. Every rank must then pass the same offsets into its buffers (checked
  // on the GPU when every rank runs the registered kernel: a mismatch fails the call on every rank and nothing is
  // written; a rank that passes a plain pointer instead makes the others time out). Throws nvrar::Error on every
  // rank when the build has no NVSHMEM, when any rank refuses (0 bytes, Options::buffer_bytes used up) or when the
  // sizes differ. Not during stream capture (it synchronises).
  virtual void* allocate_buffer(std::size_t bytes) = 0;
  // Frees a buffer of allocate_buffer() (collective; waits for the device first). CUDA graphs that use it hold its
  // address: do not replay them afterwards. Buffers still allocated go with the communicator. Not during capture.
  virtual void free_buffer(void* buffer) = 0;
  // Whether [p, p + bytes) lies inside one buffer of allocate_buffer().
  virtual bool is_registered(const void* p, std::size_t bytes) const = 0;
  // Where auto decisions come from: "tuning table FILE (card, date)" or "cost model PRESET".
  virtual std::string tuning_source() const = 0;
  // Throws nvrar::Error if an earlier call's kernel reported a failure (timeout). Does not block.
  virtual void check() = 0;
  // cudaStreamSynchronize + check().
  virtual void synchronize(cudaStream_t stream) = 0;

  virtual int rank() const = 0;
  virtual int size() const = 0;
  virtual int nodes() const = 0;
  virtual int gpus_per_node() const = 0;
  virtual std::size_t max_bytes() const = 0;
  virtual std::size_t oneshot_max_bytes() const = 0;
  virtual std::size_t ll128_max_bytes() const = 0;  // 0 where the LL128 two-shot cannot run
  virtual std::size_t push_max_bytes() const = 0;   // 0 where the push two-shot cannot run
  // Whether this communicator can run `algorithm` at all (NVSHMEM in the build, NVLink reach for one-shot, registered,
  // LL128 and push two-shot).
  virtual bool supports(Algorithm algorithm) const = 0;
  virtual ncclComm_t nccl() const = 0;
  // "P=4 (N=2 x G=2), NVSHMEM x.y.z, inter-node transport put"
  virtual std::string describe() const = 0;
};

// NCCL's type for an NVRAR element type; throws nvrar::Error for an invalid value.
ncclDataType_t nccl_data_type(DataType dtype);

// True when this build has the NVSHMEM transport (the GPU hierarchical algorithm).
bool built_with_nvshmem();

}  // namespace nvrar
