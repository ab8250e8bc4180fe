/* NVRAR's C ABI: the GPU communicator (nvrar/nvrar.h) for callers that are not C++ (Python through ctypes, other
 * languages' FFIs). Library: libnvrar_c.so. Every function returns an nvrar_status_t; on failure
 * nvrar_last_error() gives the message (the same text the C++ API's nvrar::Error carries: rank, call, cause).
 * No C++ exception crosses this boundary.
 *
 *   nvrar_comm_t comm;
 *   if (nvrar_comm_create(NULL, &comm) != NVRAR_SUCCESS) fprintf(stderr, "%s\n", nvrar_last_error());
 *   nvrar_allreduce(comm, d_in, d_out, count, NVRAR_BFLOAT16, stream, NVRAR_ALGO_AUTO);
 *   nvrar_comm_destroy(comm);
 *
 * Versioning: NVRAR_C_ABI_VERSION changes whenever a declaration here changes incompatibly (a removed or reordered
 * field or function, a changed enum value); callers compare it with nvrar_abi_version() of the library they loaded.
 * Additions keep the version: nvrar_options_t grows only at its end, and struct_size tells the library which
 * fields the caller knows.
 *
 * Streams are cudaStream_t (struct CUstream_st*) and NCCL communicators ncclComm_t (struct ncclComm*), named by
 * their struct tags so that this header needs neither CUDA's nor NCCL's headers. Calls that enqueue work are
 * stream-ordered and can be captured in CUDA graphs, as in C++. */
#ifndef NVRAR_NVRAR_C_H_
#define NVRAR_NVRAR_C_H_

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#define NVRAR_C_ABI_VERSION 1

struct CUstream_st;
struct ncclComm;

typedef enum nvrar_status {
  NVRAR_SUCCESS = 0,
  NVRAR_ERROR_INVALID_ARGUMENT = 1, /* refused by this C layer: a NULL handle or out-pointer, an unknown enum value,
                                       a rank outside [0, size), options of an unknown struct_size */
  NVRAR_ERROR_RUNTIME = 2,          /* an nvrar::Error: a CUDA or NCCL failure, a peer that timed out, a call the
                                       communicator refuses (capacity, alignment, ranks that disagree) */
  NVRAR_ERROR_OUT_OF_MEMORY = 3,    /* host memory ran out (std::bad_alloc) */
  NVRAR_ERROR_INTERNAL = 4          /* any other exception: a bug in NVRAR; the message says what was thrown */
} nvrar_status_t;

/* Element types (nvrar::DataType's values). The sum is always accumulated in fp32. */
typedef enum nvrar_dtype { NVRAR_FLOAT32 = 0, NVRAR_BFLOAT16 = 1, NVRAR_FLOAT16 = 2 } nvrar_dtype_t;

/* Algorithms (nvrar::Algorithm's values; docs/algorithms.md). NVRAR_ALGO_AUTO lets the tuner choose. */
typedef enum nvrar_algorithm {
  NVRAR_ALGO_AUTO = 0,
  NVRAR_ALGO_HIERARCHICAL = 1,
  NVRAR_ALGO_NCCL = 2,
  NVRAR_ALGO_ONESHOT = 3,
  NVRAR_ALGO_REGISTERED = 4,
  NVRAR_ALGO_LL128 = 5,
  NVRAR_ALGO_PUSH = 6
} nvrar_algorithm_t;

/* nvrar::Options. Fill with nvrar_options_init() (the C++ defaults), then change fields. A NULL options pointer
 * means the defaults. Sizes are bytes. */
typedef struct nvrar_options {
  size_t struct_size;         /* sizeof(nvrar_options_t), set by nvrar_options_init() */
  size_t max_bytes;           /* largest message of the hierarchical kernel */
  int gpus_per_node;          /* ranks per (virtual) node; 0: NVRAR_GPUS_PER_NODE, else the launcher's local size */
  int timeout_ms;             /* spin-wait limit; 0: NVRAR_TIMEOUT_MS */
  int algorithm;              /* an nvrar_algorithm_t: what calls naming NVRAR_ALGO_AUTO run (auto: the tuner) */
  int auto_may_use_nccl;      /* 0: auto runs NVRAR's own kernels wherever one can run the call */
  size_t oneshot_max_bytes;   /* largest message of the one-shot algorithm */
  size_t ll128_max_bytes;     /* largest message of the LL128 and push two-shots; (size_t)-1 sizes from the table */
  size_t buffer_bytes;        /* room for nvrar_buffer_allocate() (all buffers together) */
  const char* tuning_file;    /* NULL or "": NVRAR_TUNING_FILE, else the shipped tables; copied at create */
} nvrar_options_t;

/* The 128 opaque bytes of an NCCL unique id (ncclUniqueId), passed from one rank to the others by any means. */
typedef struct nvrar_unique_id {
  char internal[128];
} nvrar_unique_id_t;

typedef struct nvrar_comm* nvrar_comm_t;

/* ---- library facts and errors (never fail, thread-safe) ---- */
int nvrar_abi_version(void);                        /* NVRAR_C_ABI_VERSION of the library */
const char* nvrar_version(void);                    /* NVRAR's release, "0.1.0" */
int nvrar_built_with_nvshmem(void);                 /* 1 where the build has NVRAR's own GPU kernels */
const char* nvrar_status_name(nvrar_status_t s);    /* "NVRAR_SUCCESS", ...; "unknown status" otherwise */
const char* nvrar_algorithm_name(int algorithm);    /* "auto", "hierarchical", ...; NULL for an unknown value */
/* The message of the most recent failed call on this thread ("" if none failed); valid until the next failure. */
const char* nvrar_last_error(void);

nvrar_status_t nvrar_options_init(nvrar_options_t* options);
/* An algorithm_name() (or an older spelling) as its value; the error names the accepted names. */
nvrar_status_t nvrar_parse_algorithm(const char* name, nvrar_algorithm_t* algorithm);

/* ---- creation (collective: every rank of the job calls the same one) ---- */
/* From the launcher's environment (mpirun, srun, torchrun), as nvrar::Communicator::create: selects GPU local_rank. */
nvrar_status_t nvrar_comm_create(const nvrar_options_t* options, nvrar_comm_t* comm);
/* A fresh NCCL unique id (ncclGetUniqueId): one rank makes it, every rank passes it to create_from_unique_id. */
nvrar_status_t nvrar_get_unique_id(nvrar_unique_id_t* id);
/* Rank `rank` of `size` from a unique id; device >= 0 makes that GPU current first, -1 keeps the current one.
 * NVRAR creates and owns its own NCCL communicator. */
nvrar_status_t nvrar_comm_create_from_unique_id(const nvrar_unique_id_t* id, int rank, int size, int device,
                                                const nvrar_options_t* options, nvrar_comm_t* comm);
/* Adopts an existing ncclComm_t (which the caller keeps owning and destroys after nvrar_comm_destroy); its GPU must
 * be current. */
nvrar_status_t nvrar_comm_create_from_nccl(struct ncclComm* nccl, const nvrar_options_t* options,
                                           nvrar_comm_t* comm);
/* Frees the communicator (collective where it holds NVSHMEM memory); NULL is a no-op. */
nvrar_status_t nvrar_comm_destroy(nvrar_comm_t comm);

/* ---- facts of a communicator ---- */
nvrar_status_t nvrar_comm_rank(nvrar_comm_t comm, int* rank);
nvrar_status_t nvrar_comm_size(nvrar_comm_t comm, int* size);
nvrar_status_t nvrar_comm_nodes(nvrar_comm_t comm, int* nodes);
nvrar_status_t nvrar_comm_gpus_per_node(nvrar_comm_t comm, int* gpus_per_node);
nvrar_status_t nvrar_comm_max_bytes(nvrar_comm_t comm, size_t* bytes);
/* "P=4 (N=2 x G=2), ..." (nvrar::Communicator::describe); the text lives as long as the communicator. */
nvrar_status_t nvrar_comm_describe(nvrar_comm_t comm, const char** text);
nvrar_status_t nvrar_comm_supports(nvrar_comm_t comm, int algorithm, int* supported);
/* What NVRAR_ALGO_AUTO runs for `bytes` with an input outside (registered 0) or inside (1) a registered buffer. */
nvrar_status_t nvrar_comm_resolve(nvrar_comm_t comm, size_t bytes, int registered, nvrar_algorithm_t* algorithm);

/* ---- collectives (stream-ordered, capturable) ---- */
/* Sum all-reduce of `count` elements; in == out allowed; count 0 does nothing. */
nvrar_status_t nvrar_allreduce(nvrar_comm_t comm, const void* in, void* out, size_t count, nvrar_dtype_t dtype,
                               struct CUstream_st* stream, nvrar_algorithm_t algorithm);
/* residual += allreduce(x); out = rmsnorm(residual, eps) * weight, over rows x hidden (nvrar.h has the details). */
nvrar_status_t nvrar_allreduce_add_rmsnorm(nvrar_comm_t comm, const void* x, void* residual, const void* weight,
                                           void* out, size_t rows, size_t hidden, float eps, nvrar_dtype_t dtype,
                                           struct CUstream_st* stream, nvrar_algorithm_t algorithm);
/* Fails with the earlier call's message if a kernel reported a failure (timeout); does not block. */
nvrar_status_t nvrar_comm_check(nvrar_comm_t comm);
/* cudaStreamSynchronize(stream), then nvrar_comm_check(). */
nvrar_status_t nvrar_comm_synchronize(nvrar_comm_t comm, struct CUstream_st* stream);

/* ---- registered buffers (zero copy; collective, not during stream capture) ---- */
nvrar_status_t nvrar_buffer_allocate(nvrar_comm_t comm, size_t bytes, void** buffer);
nvrar_status_t nvrar_buffer_free(nvrar_comm_t comm, void* buffer);
nvrar_status_t nvrar_buffer_is_registered(nvrar_comm_t comm, const void* p, size_t bytes, int* registered);

#ifdef __cplusplus
}
#endif

#endif /* NVRAR_NVRAR_C_H_ */
