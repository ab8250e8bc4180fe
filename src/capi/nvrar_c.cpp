// The C ABI (include/nvrar/nvrar_c.h) over the C++ GPU communicator (include/nvrar/nvrar.h).
//
// Every entry point runs its body inside guarded(), which turns each exception into a status and records its message
// as this thread's last error, so no exception crosses into C. Arguments the C++ API cannot see (NULL handles and
// out-pointers, enum values outside their range, the options' struct_size) are checked here first and reported as
// NVRAR_ERROR_INVALID_ARGUMENT; everything the C++ API itself refuses arrives as its nvrar::Error, message unchanged.
//
// A handle owns its Communicator and, when it was created from a unique id, the NCCL communicator under it (created
// here, destroyed after the Communicator: nvrar::Communicator::from_nccl leaves the NCCL communicator to its owner).
#include "nvrar/nvrar_c.h"

#include <cuda_runtime_api.h>
#include <nccl.h>

#include <cstring>
#include <memory>
#include <new>
#include <stdexcept>
#include <string>

#include <fmt/format.h>

#include "gpu/runtime/bootstrap.h"
#include "nvrar/nvrar.h"

static_assert(sizeof(nvrar_unique_id_t) == sizeof(ncclUniqueId), "nvrar_unique_id_t must hold an ncclUniqueId");
static_assert(static_cast<int>(NVRAR_ALGO_PUSH) + 1 == nvrar::kAlgorithmCount,
              "nvrar_algorithm_t must list every nvrar::Algorithm");
static_assert(static_cast<int>(NVRAR_FLOAT16) == static_cast<int>(nvrar::DataType::kFloat16), "dtype values differ");

struct nvrar_comm {
  std::unique_ptr<nvrar::Communicator> comm;
  ncclComm_t owned_nccl = nullptr;  // created by nvrar_comm_create_from_unique_id
  std::string description;          // nvrar_comm_describe's text, kept alive with the handle

  ~nvrar_comm() {
    comm.reset();  // first: its teardown may still use the NCCL communicator
    if (owned_nccl != nullptr) ncclCommDestroy(owned_nccl);
  }
};

namespace {

// An argument refused by this layer (NVRAR_ERROR_INVALID_ARGUMENT).
class InvalidArgument : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

thread_local std::string last_error;

// Records the message of a failed call; never throws (an allocation failure leaves a fixed text instead).
thread_local const char* record_failure_text = nullptr;
void record(const char* message) noexcept {
  try {
    last_error = message;
    record_failure_text = nullptr;
  } catch (...) {
    record_failure_text = "nvrar: out of host memory while recording an error message";
  }
}

template <typename Body>
nvrar_status_t guarded(const char* call, Body&& body) noexcept {
  try {
    body();
    return NVRAR_SUCCESS;
  } catch (const InvalidArgument& e) {
    record(e.what());
    return NVRAR_ERROR_INVALID_ARGUMENT;
  } catch (const nvrar::Error& e) {
    record(e.what());
    return NVRAR_ERROR_RUNTIME;
  } catch (const std::bad_alloc&) {
    record("nvrar: out of host memory");
    return NVRAR_ERROR_OUT_OF_MEMORY;
  } catch (const std::exception& e) {
    try {
      record(fmt::format("nvrar: {}: internal error: {}", call, e.what()).c_str());
    } catch (...) {
      record("nvrar: internal error (and no memory to describe it)");
    }
    return NVRAR_ERROR_INTERNAL;
  } catch (...) {
    record("nvrar: internal error: an exception that is not a std::exception");
    return NVRAR_ERROR_INTERNAL;
  }
}

template <typename T>
void require_pointer(const T* p, const char* call, const char* name) {
  if (p == nullptr) throw InvalidArgument(fmt::format("nvrar: {}: {} is NULL", call, name));
}

nvrar::Communicator& handle(nvrar_comm_t comm, const char* call) {
  if (comm == nullptr || comm->comm == nullptr) throw InvalidArgument(fmt::format("nvrar: {}: comm is NULL", call));
  return *comm->comm;
}

nvrar::DataType to_dtype(int dtype, const char* call) {
  if (!nvrar::dtype_valid(static_cast<nvrar::DataType>(dtype)))
    throw InvalidArgument(fmt::format("nvrar: {}: dtype {} is not one of NVRAR_FLOAT32 (0), NVRAR_BFLOAT16 (1), "
                                      "NVRAR_FLOAT16 (2)",
                                      call, dtype));
  return static_cast<nvrar::DataType>(dtype);
}

nvrar::Algorithm to_algorithm(int algorithm, const char* call) {
  if (algorithm < 0 || algorithm >= nvrar::kAlgorithmCount)
    throw InvalidArgument(fmt::format("nvrar: {}: algorithm {} is not an nvrar_algorithm_t (0 to {})", call, algorithm,
                                      nvrar::kAlgorithmCount - 1));
  return static_cast<nvrar::Algorithm>(algorithm);
}

nvrar::Options to_options(const nvrar_options_t* o, const char* call) {
  nvrar::Options options;
  if (o == nullptr) return options;
  if (o->struct_size != sizeof(nvrar_options_t))
    throw InvalidArgument(fmt::format("nvrar: {}: options.struct_size is {}, this library's nvrar_options_t has {} "
                                      "bytes (fill the options with nvrar_options_init)",
                                      call, o->struct_size, sizeof(nvrar_options_t)));
  if (o->gpus_per_node < 0)
    throw InvalidArgument(fmt::format("nvrar: {}: options.gpus_per_node {} < 0", call, o->gpus_per_node));
  if (o->timeout_ms < 0)
    throw InvalidArgument(fmt::format("nvrar: {}: options.timeout_ms {} < 0", call, o->timeout_ms));
  options.max_bytes = o->max_bytes;
  options.gpus_per_node = o->gpus_per_node;
  options.timeout_ms = o->timeout_ms;
  options.algorithm = to_algorithm(o->algorithm, call);
  options.auto_may_use_nccl = o->auto_may_use_nccl != 0;
  options.oneshot_max_bytes = o->oneshot_max_bytes;
  options.ll128_max_bytes = o->ll128_max_bytes;
  options.buffer_bytes = o->buffer_bytes;
  if (o->tuning_file != nullptr) options.tuning_file = o->tuning_file;
  return options;
}

// Hands a new communicator to the caller's out-pointer.
void adopt(std::unique_ptr<nvrar_comm> made, nvrar_comm_t* out) {
  made->description = made->comm->describe();
  *out = made.release();
}

}  // namespace

extern "C" {

int nvrar_abi_version(void) { return NVRAR_C_ABI_VERSION; }
const char* nvrar_version(void) { return NVRAR_VERSION_STRING; }
int nvrar_built_with_nvshmem(void) { return nvrar::built_with_nvshmem() ? 1 : 0; }

const char* nvrar_status_name(nvrar_status_t s) {
  switch (s) {
    case NVRAR_SUCCESS:
      return "NVRAR_SUCCESS";
    case NVRAR_ERROR_INVALID_ARGUMENT:
      return "NVRAR_ERROR_INVALID_ARGUMENT";
    case NVRAR_ERROR_RUNTIME:
      return "NVRAR_ERROR_RUNTIME";
    case NVRAR_ERROR_OUT_OF_MEMORY:
      return "NVRAR_ERROR_OUT_OF_MEMORY";
    case NVRAR_ERROR_INTERNAL:
      return "NVRAR_ERROR_INTERNAL";
  }
  return "unknown status";
}

const char* nvrar_algorithm_name(int algorithm) {
  if (algorithm < 0 || algorithm >= nvrar::kAlgorithmCount) return nullptr;
  return nvrar::algorithm_name(static_cast<nvrar::Algorithm>(algorithm));
}

const char* nvrar_last_error(void) { return record_failure_text != nullptr ? record_failure_text : last_error.c_str(); }

nvrar_status_t nvrar_options_init(nvrar_options_t* options) {
  return guarded("nvrar_options_init", [&] {
    require_pointer(options, "nvrar_options_init", "options");
    const nvrar::Options defaults;
    std::memset(options, 0, sizeof(*options));
    options->struct_size = sizeof(nvrar_options_t);
    options->max_bytes = defaults.max_bytes;
    options->gpus_per_node = defaults.gpus_per_node;
    options->timeout_ms = defaults.timeout_ms;
    options->algorithm = static_cast<int>(defaults.algorithm);
    options->auto_may_use_nccl = defaults.auto_may_use_nccl ? 1 : 0;
    options->oneshot_max_bytes = defaults.oneshot_max_bytes;
    options->ll128_max_bytes = defaults.ll128_max_bytes;
    options->buffer_bytes = defaults.buffer_bytes;
    options->tuning_file = nullptr;
  });
}

nvrar_status_t nvrar_parse_algorithm(const char* name, nvrar_algorithm_t* algorithm) {
  return guarded("nvrar_parse_algorithm", [&] {
    require_pointer(name, "nvrar_parse_algorithm", "name");
    require_pointer(algorithm, "nvrar_parse_algorithm", "algorithm");
    try {
      *algorithm = static_cast<nvrar_algorithm_t>(nvrar::parse_algorithm(name));
    } catch (const nvrar::Error& e) {
      throw InvalidArgument(e.what());
    }
  });
}

nvrar_status_t nvrar_comm_create(const nvrar_options_t* options, nvrar_comm_t* comm) {
  return guarded("nvrar_comm_create", [&] {
    require_pointer(comm, "nvrar_comm_create", "comm");
    *comm = nullptr;
    const nvrar::Options o = to_options(options, "nvrar_comm_create");
    auto made = std::make_unique<nvrar_comm>();
    made->comm = nvrar::Communicator::create(o);
    adopt(std::move(made), comm);
  });
}

nvrar_status_t nvrar_get_unique_id(nvrar_unique_id_t* id) {
  return guarded("nvrar_get_unique_id", [&] {
    require_pointer(id, "nvrar_get_unique_id", "id");
    ncclUniqueId nccl_id;
    NVRAR_NCCL_CHECK(-1, ncclGetUniqueId(&nccl_id));
    std::memcpy(id->internal, &nccl_id, sizeof(nccl_id));
  });
}

nvrar_status_t nvrar_comm_create_from_unique_id(const nvrar_unique_id_t* id, int rank, int size, int device,
                                                const nvrar_options_t* options, nvrar_comm_t* comm) {
  constexpr const char* kCall = "nvrar_comm_create_from_unique_id";
  return guarded(kCall, [&] {
    require_pointer(comm, kCall, "comm");
    *comm = nullptr;
    require_pointer(id, kCall, "id");
    if (size < 1 || rank < 0 || rank >= size)
      throw InvalidArgument(fmt::format("nvrar: {}: rank {} of size {} (want 0 <= rank < size)", kCall, rank, size));
    if (device < -1) throw InvalidArgument(fmt::format("nvrar: {}: device {} (want -1 or a GPU index)", kCall, device));
    const nvrar::Options o = to_options(options, kCall);
    if (device >= 0) NVRAR_CUDA_CHECK(rank, cudaSetDevice(device));
    ncclUniqueId nccl_id;
    std::memcpy(&nccl_id, id->internal, sizeof(nccl_id));
    auto made = std::make_unique<nvrar_comm>();
    NVRAR_NCCL_CHECK(rank, ncclCommInitRank(&made->owned_nccl, size, nccl_id, rank));
    try {
      made->comm = nvrar::Communicator::from_nccl(made->owned_nccl, o);
    } catch (...) {
      // Setup failed on this rank: its peers may still wait in a collective, which a destroy would join.
      ncclCommAbort(made->owned_nccl);
      made->owned_nccl = nullptr;
      throw;
    }
    adopt(std::move(made), comm);
  });
}

nvrar_status_t nvrar_comm_create_from_nccl(struct ncclComm* nccl, const nvrar_options_t* options,
                                           nvrar_comm_t* comm) {
  return guarded("nvrar_comm_create_from_nccl", [&] {
    require_pointer(comm, "nvrar_comm_create_from_nccl", "comm");
    *comm = nullptr;
    require_pointer(nccl, "nvrar_comm_create_from_nccl", "nccl");
    const nvrar::Options o = to_options(options, "nvrar_comm_create_from_nccl");
    auto made = std::make_unique<nvrar_comm>();
    made->comm = nvrar::Communicator::from_nccl(nccl, o);
    adopt(std::move(made), comm);
  });
}

nvrar_status_t nvrar_comm_destroy(nvrar_comm_t comm) {
  return guarded("nvrar_comm_destroy", [&] { delete comm; });
}

nvrar_status_t nvrar_comm_rank(nvrar_comm_t comm, int* rank) {
  return guarded("nvrar_comm_rank", [&] {
    require_pointer(rank, "nvrar_comm_rank", "rank");
    *rank = handle(comm, "nvrar_comm_rank").rank();
  });
}

nvrar_status_t nvrar_comm_size(nvrar_comm_t comm, int* size) {
  return guarded("nvrar_comm_size", [&] {
    require_pointer(size, "nvrar_comm_size", "size");
    *size = handle(comm, "nvrar_comm_size").size();
  });
}

nvrar_status_t nvrar_comm_nodes(nvrar_comm_t comm, int* nodes) {
  return guarded("nvrar_comm_nodes", [&] {
    require_pointer(nodes, "nvrar_comm_nodes", "nodes");
    *nodes = handle(comm, "nvrar_comm_nodes").nodes();
  });
}

nvrar_status_t nvrar_comm_gpus_per_node(nvrar_comm_t comm, int* gpus_per_node) {
  return guarded("nvrar_comm_gpus_per_node", [&] {
    require_pointer(gpus_per_node, "nvrar_comm_gpus_per_node", "gpus_per_node");
    *gpus_per_node = handle(comm, "nvrar_comm_gpus_per_node").gpus_per_node();
  });
}

nvrar_status_t nvrar_comm_max_bytes(nvrar_comm_t comm, size_t* bytes) {
  return guarded("nvrar_comm_max_bytes", [&] {
    require_pointer(bytes, "nvrar_comm_max_bytes", "bytes");
    *bytes = handle(comm, "nvrar_comm_max_bytes").max_bytes();
  });
}

nvrar_status_t nvrar_comm_describe(nvrar_comm_t comm, const char** text) {
  return guarded("nvrar_comm_describe", [&] {
    require_pointer(text, "nvrar_comm_describe", "text");
    handle(comm, "nvrar_comm_describe");
    *text = comm->description.c_str();
  });
}

nvrar_status_t nvrar_comm_supports(nvrar_comm_t comm, int algorithm, int* supported) {
  return guarded("nvrar_comm_supports", [&] {
    require_pointer(supported, "nvrar_comm_supports", "supported");
    const nvrar::Algorithm a = to_algorithm(algorithm, "nvrar_comm_supports");
    *supported = handle(comm, "nvrar_comm_supports").supports(a) ? 1 : 0;
  });
}

nvrar_status_t nvrar_comm_resolve(nvrar_comm_t comm, size_t bytes, int registered, nvrar_algorithm_t* algorithm) {
  return guarded("nvrar_comm_resolve", [&] {
    require_pointer(algorithm, "nvrar_comm_resolve", "algorithm");
    const nvrar::Choice c = handle(comm, "nvrar_comm_resolve").resolve(bytes, registered != 0);
    *algorithm = static_cast<nvrar_algorithm_t>(c.algorithm);
  });
}

nvrar_status_t nvrar_allreduce(nvrar_comm_t comm, const void* in, void* out, size_t count, nvrar_dtype_t dtype,
                               struct CUstream_st* stream, nvrar_algorithm_t algorithm) {
  return guarded("nvrar_allreduce", [&] {
    const nvrar::DataType t = to_dtype(dtype, "nvrar_allreduce");
    const nvrar::Algorithm a = to_algorithm(algorithm, "nvrar_allreduce");
    handle(comm, "nvrar_allreduce").allreduce(in, out, count, t, stream, a);
  });
}

nvrar_status_t nvrar_allreduce_add_rmsnorm(nvrar_comm_t comm, const void* x, void* residual, const void* weight,
                                           void* out, size_t rows, size_t hidden, float eps, nvrar_dtype_t dtype,
                                           struct CUstream_st* stream, nvrar_algorithm_t algorithm) {
  constexpr const char* kCall = "nvrar_allreduce_add_rmsnorm";
  return guarded(kCall, [&] {
    const nvrar::DataType t = to_dtype(dtype, kCall);
    const nvrar::Algorithm a = to_algorithm(algorithm, kCall);
    handle(comm, kCall).allreduce_add_rmsnorm(x, residual, weight, out, rows, hidden, eps, t, stream, a);
  });
}

nvrar_status_t nvrar_comm_check(nvrar_comm_t comm) {
  return guarded("nvrar_comm_check", [&] { handle(comm, "nvrar_comm_check").check(); });
}

nvrar_status_t nvrar_comm_synchronize(nvrar_comm_t comm, struct CUstream_st* stream) {
  return guarded("nvrar_comm_synchronize", [&] { handle(comm, "nvrar_comm_synchronize").synchronize(stream); });
}

nvrar_status_t nvrar_buffer_allocate(nvrar_comm_t comm, size_t bytes, void** buffer) {
  return guarded("nvrar_buffer_allocate", [&] {
    require_pointer(buffer, "nvrar_buffer_allocate", "buffer");
    *buffer = nullptr;
    *buffer = handle(comm, "nvrar_buffer_allocate").allocate_buffer(bytes);
  });
}

nvrar_status_t nvrar_buffer_free(nvrar_comm_t comm, void* buffer) {
  return guarded("nvrar_buffer_free", [&] {
    nvrar::Communicator& c = handle(comm, "nvrar_buffer_free");
    require_pointer(buffer, "nvrar_buffer_free", "buffer");
    c.free_buffer(buffer);
  });
}

nvrar_status_t nvrar_buffer_is_registered(nvrar_comm_t comm, const void* p, size_t bytes, int* registered) {
  return guarded("nvrar_buffer_is_registered", [&] {
    require_pointer(registered, "nvrar_buffer_is_registered", "registered");
    *registered = handle(comm, "nvrar_buffer_is_registered").is_registered(p, bytes) ? 1 : 0;
  });
}

}  // extern "C"
