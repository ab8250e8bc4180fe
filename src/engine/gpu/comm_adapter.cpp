// The engine's all-reduce backend switch over NVRAR's public API (comm_adapter.h).
#include "engine/gpu/comm_adapter.h"

#include <exception>

#include <fmt/format.h>

namespace nvrar::engine::gpu {

AllReduceBackend parse_allreduce_backend(const std::string& name) {
  if (name == "nccl") return AllReduceBackend::kNccl;
  if (name == "nvrar") return AllReduceBackend::kNvrar;
  if (name == "auto") return AllReduceBackend::kAuto;
  throw Error("nvrar-llm: --allreduce '" + name + "' (nccl, nvrar, auto)");
}

const char* allreduce_backend_name(AllReduceBackend backend) {
  switch (backend) {
    case AllReduceBackend::kNccl:
      return "nccl";
    case AllReduceBackend::kNvrar:
      return "nvrar";
    case AllReduceBackend::kAuto:
      return "auto";
  }
  return "invalid";
}

Options communicator_options(AllReduceBackend backend, Options base) {
  if (backend == AllReduceBackend::kNvrar) base.auto_may_use_nccl = false;
  return base;
}

CommAdapter::CommAdapter(Communicator& comm, AllReduceBackend backend)
    : comm_(comm),
      backend_(backend),
      algorithm_(backend == AllReduceBackend::kNccl ? Algorithm::kNccl : Algorithm::kAuto),
      rank_(comm.rank()),
      size_(comm.size()) {}

CommAdapter::~CommAdapter() {
  if (std::uncaught_exceptions() != 0) return;
  for (auto it = registered_.rbegin(); it != registered_.rend(); ++it) {
    try {
      comm_.free_buffer(*it);
    } catch (const std::exception& e) {
      fmt::print(stderr, "nvrar-llm: rank {}: {}\n", rank_, e.what());
    }
  }
}

void* CommAdapter::allocate_io(std::size_t bytes, const char* what) {
  if (backend_ == AllReduceBackend::kNccl || size_ == 1 || !comm_.supports(Algorithm::kRegistered)) return nullptr;
  try {
    void* p = comm_.allocate_buffer(bytes);
    registered_.push_back(p);
    return p;
  } catch (const Error& e) {
    if (rank_ == 0) fmt::print(stderr, "nvrar-llm: {} in plain memory (copy-in all-reduce): {}\n", what, e.what());
  }
  return nullptr;
}

}  // namespace nvrar::engine::gpu
