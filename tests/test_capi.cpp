// The C ABI (include/nvrar/nvrar_c.h) as a C caller sees it, with no device needed: version, status and algorithm
// names, options, and every argument the C layer refuses, each with its status and a message naming the call.
// tests/test_capi_gpu.cpp has the calls that need a GPU.
//
// Several ranks: the single-GPU multi-rank harness (gpu/multirank_world.h) runs the algorithms below the
// Communicator, which the C ABI wraps whole (NCCL and NVSHMEM need one GPU per rank), so the C ABI at 2-8 ranks is
// checked through the Python package under torchrun instead (python/tests/torchrun_check.py).
#include "nvrar/nvrar_c.h"

#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <string>
#include <thread>

#include "nvrar/nvrar.h"

namespace {

bool have_gpu() {
  int n = 0;
  return cudaGetDeviceCount(&n) == cudaSuccess && n > 0;
}

// The call failed with `status` and a message containing `part`.
#define EXPECT_FAILS(call, status, part)                                                \
  do {                                                                                  \
    EXPECT_EQ((call), (status)) << #call;                                               \
    EXPECT_NE(std::string(nvrar_last_error()).find(part), std::string::npos)            \
        << #call << ": message '" << nvrar_last_error() << "' lacks '" << (part) << "'"; \
  } while (0)

TEST(CApi, VersionsAndNames) {
  EXPECT_EQ(nvrar_abi_version(), NVRAR_C_ABI_VERSION);
  EXPECT_STREQ(nvrar_version(), NVRAR_EXPECTED_VERSION);
  EXPECT_STREQ(nvrar_status_name(NVRAR_SUCCESS), "NVRAR_SUCCESS");
  EXPECT_STREQ(nvrar_status_name(NVRAR_ERROR_RUNTIME), "NVRAR_ERROR_RUNTIME");
  EXPECT_STREQ(nvrar_status_name(static_cast<nvrar_status_t>(99)), "unknown status");
  for (int a = 0; a < nvrar::kAlgorithmCount; ++a) {  // every name parses back to its value, as the C++ API's does
    ASSERT_NE(nvrar_algorithm_name(a), nullptr) << a;
    EXPECT_STREQ(nvrar_algorithm_name(a), nvrar::algorithm_name(static_cast<nvrar::Algorithm>(a)));
    nvrar_algorithm_t parsed = NVRAR_ALGO_AUTO;
    ASSERT_EQ(nvrar_parse_algorithm(nvrar_algorithm_name(a), &parsed), NVRAR_SUCCESS);
    EXPECT_EQ(static_cast<int>(parsed), a);
  }
  EXPECT_EQ(nvrar_algorithm_name(-1), nullptr);
  EXPECT_EQ(nvrar_algorithm_name(nvrar::kAlgorithmCount), nullptr);
  nvrar_algorithm_t parsed = NVRAR_ALGO_AUTO;
  EXPECT_FAILS(nvrar_parse_algorithm("twoshot-fast", &parsed), NVRAR_ERROR_INVALID_ARGUMENT, "oneshot");
  EXPECT_FAILS(nvrar_parse_algorithm(nullptr, &parsed), NVRAR_ERROR_INVALID_ARGUMENT, "name is NULL");
}

TEST(CApi, OptionsInitGivesTheCppDefaults) {
  nvrar_options_t o;
  ASSERT_EQ(nvrar_options_init(&o), NVRAR_SUCCESS);
  const nvrar::Options d;
  EXPECT_EQ(o.struct_size, sizeof(nvrar_options_t));
  EXPECT_EQ(o.max_bytes, d.max_bytes);
  EXPECT_EQ(o.gpus_per_node, d.gpus_per_node);
  EXPECT_EQ(o.timeout_ms, d.timeout_ms);
  EXPECT_EQ(o.algorithm, static_cast<int>(d.algorithm));
  EXPECT_EQ(o.auto_may_use_nccl != 0, d.auto_may_use_nccl);
  EXPECT_EQ(o.oneshot_max_bytes, d.oneshot_max_bytes);
  EXPECT_EQ(o.ll128_max_bytes, d.ll128_max_bytes);
  EXPECT_EQ(o.buffer_bytes, d.buffer_bytes);
  EXPECT_EQ(o.tuning_file, nullptr);
  EXPECT_FAILS(nvrar_options_init(nullptr), NVRAR_ERROR_INVALID_ARGUMENT, "nvrar_options_init: options is NULL");
}

TEST(CApi, RefusesBadOptionsBeforeTouchingAnyDevice) {
  nvrar_options_t o;
  ASSERT_EQ(nvrar_options_init(&o), NVRAR_SUCCESS);
  nvrar_comm_t comm = reinterpret_cast<nvrar_comm_t>(0x1);  // must be reset to NULL on failure
  o.struct_size = sizeof(nvrar_options_t) - 8;
  EXPECT_FAILS(nvrar_comm_create(&o, &comm), NVRAR_ERROR_INVALID_ARGUMENT, "struct_size");
  EXPECT_EQ(comm, nullptr);
  ASSERT_EQ(nvrar_options_init(&o), NVRAR_SUCCESS);
  o.algorithm = 42;
  EXPECT_FAILS(nvrar_comm_create(&o, &comm), NVRAR_ERROR_INVALID_ARGUMENT, "algorithm 42");
  ASSERT_EQ(nvrar_options_init(&o), NVRAR_SUCCESS);
  o.gpus_per_node = -2;
  EXPECT_FAILS(nvrar_comm_create(&o, &comm), NVRAR_ERROR_INVALID_ARGUMENT, "gpus_per_node -2");
  ASSERT_EQ(nvrar_options_init(&o), NVRAR_SUCCESS);
  o.timeout_ms = -1;
  EXPECT_FAILS(nvrar_comm_create_from_nccl(reinterpret_cast<ncclComm*>(0x1), &o, &comm),
               NVRAR_ERROR_INVALID_ARGUMENT, "timeout_ms -1");
  EXPECT_FAILS(nvrar_comm_create(nullptr, nullptr), NVRAR_ERROR_INVALID_ARGUMENT, "nvrar_comm_create: comm is NULL");
  EXPECT_FAILS(nvrar_comm_create_from_nccl(nullptr, nullptr, &comm), NVRAR_ERROR_INVALID_ARGUMENT, "nccl is NULL");
}

TEST(CApi, RefusesBadRanksAndIds) {
  nvrar_unique_id_t id{};
  nvrar_comm_t comm = nullptr;
  const char* kCall = "nvrar_comm_create_from_unique_id";
  EXPECT_FAILS(nvrar_comm_create_from_unique_id(&id, 2, 2, -1, nullptr, &comm), NVRAR_ERROR_INVALID_ARGUMENT,
               "rank 2 of size 2");
  EXPECT_FAILS(nvrar_comm_create_from_unique_id(&id, -1, 2, -1, nullptr, &comm), NVRAR_ERROR_INVALID_ARGUMENT,
               "rank -1 of size 2");
  EXPECT_FAILS(nvrar_comm_create_from_unique_id(&id, 0, 0, -1, nullptr, &comm), NVRAR_ERROR_INVALID_ARGUMENT, kCall);
  EXPECT_FAILS(nvrar_comm_create_from_unique_id(&id, 0, 1, -3, nullptr, &comm), NVRAR_ERROR_INVALID_ARGUMENT,
               "device -3");
  EXPECT_FAILS(nvrar_comm_create_from_unique_id(nullptr, 0, 1, -1, nullptr, &comm), NVRAR_ERROR_INVALID_ARGUMENT,
               "id is NULL");
  EXPECT_FAILS(nvrar_get_unique_id(nullptr), NVRAR_ERROR_INVALID_ARGUMENT, "nvrar_get_unique_id: id is NULL");
}

TEST(CApi, RefusesNullHandlesAndOutPointers) {
  int i = 0;
  size_t n = 0;
  const char* text = nullptr;
  void* p = nullptr;
  nvrar_algorithm_t a = NVRAR_ALGO_AUTO;
  EXPECT_FAILS(nvrar_comm_rank(nullptr, &i), NVRAR_ERROR_INVALID_ARGUMENT, "nvrar_comm_rank: comm is NULL");
  EXPECT_FAILS(nvrar_comm_size(nullptr, &i), NVRAR_ERROR_INVALID_ARGUMENT, "nvrar_comm_size: comm is NULL");
  EXPECT_FAILS(nvrar_comm_nodes(nullptr, &i), NVRAR_ERROR_INVALID_ARGUMENT, "nvrar_comm_nodes: comm is NULL");
  EXPECT_FAILS(nvrar_comm_gpus_per_node(nullptr, &i), NVRAR_ERROR_INVALID_ARGUMENT, "comm is NULL");
  EXPECT_FAILS(nvrar_comm_max_bytes(nullptr, &n), NVRAR_ERROR_INVALID_ARGUMENT, "nvrar_comm_max_bytes: comm is NULL");
  EXPECT_FAILS(nvrar_comm_describe(nullptr, &text), NVRAR_ERROR_INVALID_ARGUMENT, "nvrar_comm_describe: comm");
  EXPECT_FAILS(nvrar_comm_supports(nullptr, 0, &i), NVRAR_ERROR_INVALID_ARGUMENT, "nvrar_comm_supports: comm");
  EXPECT_FAILS(nvrar_comm_resolve(nullptr, 1024, 0, &a), NVRAR_ERROR_INVALID_ARGUMENT, "nvrar_comm_resolve: comm");
  EXPECT_FAILS(nvrar_comm_check(nullptr), NVRAR_ERROR_INVALID_ARGUMENT, "nvrar_comm_check: comm is NULL");
  EXPECT_FAILS(nvrar_comm_synchronize(nullptr, nullptr), NVRAR_ERROR_INVALID_ARGUMENT, "nvrar_comm_synchronize");
  EXPECT_FAILS(nvrar_buffer_allocate(nullptr, 1024, &p), NVRAR_ERROR_INVALID_ARGUMENT, "nvrar_buffer_allocate: comm");
  EXPECT_FAILS(nvrar_buffer_free(nullptr, &i), NVRAR_ERROR_INVALID_ARGUMENT, "nvrar_buffer_free: comm is NULL");
  EXPECT_FAILS(nvrar_buffer_is_registered(nullptr, &i, 4, &i), NVRAR_ERROR_INVALID_ARGUMENT, "comm is NULL");
  EXPECT_FAILS(nvrar_allreduce(nullptr, &i, &i, 1, NVRAR_FLOAT32, nullptr, NVRAR_ALGO_AUTO),
               NVRAR_ERROR_INVALID_ARGUMENT, "nvrar_allreduce: comm is NULL");
  EXPECT_FAILS(nvrar_allreduce_add_rmsnorm(nullptr, &i, &i, &i, &i, 1, 4, 1e-5f, NVRAR_FLOAT32, nullptr,
                                           NVRAR_ALGO_AUTO),
               NVRAR_ERROR_INVALID_ARGUMENT, "nvrar_allreduce_add_rmsnorm: comm is NULL");
  // Out-pointers are checked before the handle, so NULL ones are reported as such.
  EXPECT_FAILS(nvrar_comm_rank(nullptr, nullptr), NVRAR_ERROR_INVALID_ARGUMENT, "nvrar_comm_rank: rank is NULL");
  EXPECT_FAILS(nvrar_comm_describe(nullptr, nullptr), NVRAR_ERROR_INVALID_ARGUMENT, "text is NULL");
  EXPECT_FAILS(nvrar_buffer_allocate(nullptr, 1024, nullptr), NVRAR_ERROR_INVALID_ARGUMENT, "buffer is NULL");
  EXPECT_EQ(nvrar_comm_destroy(nullptr), NVRAR_SUCCESS);
}

TEST(CApi, RefusesUnknownDtypesAndAlgorithms) {
  int x = 0;
  EXPECT_FAILS(nvrar_allreduce(nullptr, &x, &x, 1, static_cast<nvrar_dtype_t>(7), nullptr, NVRAR_ALGO_AUTO),
               NVRAR_ERROR_INVALID_ARGUMENT, "dtype 7");
  EXPECT_FAILS(nvrar_allreduce(nullptr, &x, &x, 1, NVRAR_BFLOAT16, nullptr, static_cast<nvrar_algorithm_t>(-1)),
               NVRAR_ERROR_INVALID_ARGUMENT, "algorithm -1");
  EXPECT_FAILS(nvrar_allreduce_add_rmsnorm(nullptr, &x, &x, &x, &x, 1, 8, 1e-5f, static_cast<nvrar_dtype_t>(3),
                                           nullptr, NVRAR_ALGO_AUTO),
               NVRAR_ERROR_INVALID_ARGUMENT, "nvrar_allreduce_add_rmsnorm: dtype 3");
  EXPECT_FAILS(nvrar_comm_supports(nullptr, 99, &x), NVRAR_ERROR_INVALID_ARGUMENT, "algorithm 99");
}

TEST(CApi, LastErrorIsPerThread) {
  int i = 0;
  ASSERT_EQ(nvrar_comm_rank(nullptr, &i), NVRAR_ERROR_INVALID_ARGUMENT);
  const std::string mine = nvrar_last_error();
  std::string theirs_before, theirs_after;
  std::thread other([&] {
    theirs_before = nvrar_last_error();
    nvrar_comm_size(nullptr, &i);
    theirs_after = nvrar_last_error();
  });
  other.join();
  EXPECT_EQ(theirs_before, "");
  EXPECT_NE(theirs_after.find("nvrar_comm_size"), std::string::npos);
  EXPECT_EQ(std::string(nvrar_last_error()), mine);
}

TEST(CApi, CreateWithoutDeviceFailsWithTheLibrarysMessage) {
  if (have_gpu()) GTEST_SKIP() << "a CUDA device is visible (test_capi_gpu creates communicators)";
  nvrar_comm_t comm = nullptr;
  EXPECT_FAILS(nvrar_comm_create(nullptr, &comm), NVRAR_ERROR_RUNTIME, "no CUDA device visible");
  EXPECT_EQ(comm, nullptr);
}

}  // namespace
