// The engine's only door to NVRAR's layer all-reduces (public API, include/nvrar/nvrar.h): the run-time backend
// switch `--allreduce nccl|nvrar|auto`, the communicator Options each backend needs, the all-reduce's input and
// output buffers in NVRAR's symmetric heap, and the fused all-reduce + residual add + RMSNorm that follows o_proj and
// down_proj (two per layer), or the plain all-reduce where the engine adds an fp32 residual itself.
//
//   nccl   every call asks for Algorithm::kNccl;
//   nvrar  the communicator is built with Options::auto_may_use_nccl = false (communicator_options), so auto takes
//          one of NVRAR's kernels wherever one can run the call and NCCL only where none can;
//   auto   NVRAR's tuner, NVRAR or NCCL by size.
// On one rank the communicator runs the residual + RMSNorm kernel alone, whatever the backend.
#pragma once

#include <cuda_runtime_api.h>
#include <nccl.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "engine/gpu/layers.h"
#include "nvrar/nvrar.h"

namespace nvrar::engine::gpu {

enum class AllReduceBackend { kNccl, kNvrar, kAuto };
AllReduceBackend parse_allreduce_backend(const std::string& name);  // "nccl", "nvrar", "auto"; Error otherwise
const char* allreduce_backend_name(AllReduceBackend backend);

// `base` with what `backend` needs of the communicator: for kNvrar, auto_may_use_nccl = false.
Options communicator_options(AllReduceBackend backend, Options base = {});

class CommAdapter {
 public:
  // comm: the tensor-parallel group, created with communicator_options(backend).
  CommAdapter(Communicator& comm, AllReduceBackend backend);
  // Frees the buffers of allocate_io on the normal path (collective, like their allocation). Unwinding from an
  // error (this rank's alone, perhaps) leaves them to the communicator, which frees its buffers unless a call failed.
  ~CommAdapter();
  CommAdapter(const CommAdapter&) = delete;
  CommAdapter& operator=(const CommAdapter&) = delete;

  Communicator& communicator() const { return comm_; }
  int rank() const { return rank_; }
  int size() const { return size_; }
  AllReduceBackend backend() const { return backend_; }

  // Collective. `bytes` in NVRAR's symmetric heap for the all-reduce's input (partial sums) or output, where NVRAR
  // may run the all-reduce (not the nccl backend, more than one rank, registered buffers supported): the registered
  // two-shot then reads peers' partial sums in place and stores the sums straight into their outputs. nullptr where
  // not, or where the heap's room (Options::buffer_bytes) is too small (said once, by rank 0): the caller then
  // allocates plain memory (the copy-in path).
  void* allocate_io(std::size_t bytes, const char* what);

  // residual += allreduce(partial); out = rmsnorm(residual) * weight, over rows x hidden bf16 elements.
  void add_rmsnorm(const bf16_t* partial, bf16_t* residual, const bf16_t* weight, bf16_t* out, int64_t rows,
                   int64_t hidden, float eps, cudaStream_t stream) {
    comm_.allreduce_add_rmsnorm(partial, residual, weight, out, static_cast<std::size_t>(rows),
                                static_cast<std::size_t>(hidden), eps, DataType::kBFloat16, stream, algorithm_);
  }

  // data = allreduce(data) in place over `elems` bf16 elements with the backend's algorithm: the all-reduce half of
  // add_rmsnorm alone, for the engine's fp32 residual stream. Collective; a no-op on one rank (the sum is data).
  void allreduce(bf16_t* data, int64_t elems, cudaStream_t stream) {
    if (size_ > 1)
      comm_.allreduce(data, data, static_cast<std::size_t>(elems), DataType::kBFloat16, stream, algorithm_);
  }
  // The same over fp32 elements (NVRAR_LLM_ACTIVATIONS=fp32: the o_proj and down_proj sums stay fp32).
  void allreduce(float* data, int64_t elems, cudaStream_t stream) {
    if (size_ > 1)
      comm_.allreduce(data, data, static_cast<std::size_t>(elems), DataType::kFloat32, stream, algorithm_);
  }

 private:
  Communicator& comm_;
  AllReduceBackend backend_;
  Algorithm algorithm_;  // what every call asks for: kNccl for the nccl backend, else kAuto
  int rank_;
  int size_;
  std::vector<void*> registered_;  // buffers of allocate_io, in allocation order
};

}  // namespace nvrar::engine::gpu
