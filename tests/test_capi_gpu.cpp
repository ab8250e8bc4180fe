// The C ABI (include/nvrar/nvrar_c.h) on one GPU, skipped without one: a communicator of one rank from the launcher
// environment and from an NCCL unique id; all-reduce (every algorithm the communicator supports) and the fused
// all-reduce + residual + RMSNorm against CPU references, eagerly and replayed from a CUDA graph; registered buffers
// where the build has NVSHMEM; and the C++ API's own refusals arriving as NVRAR_ERROR_RUNTIME with its message.
// (tests/test_capi.cpp has the argument paths that need no device; several ranks: python/tests/torchrun_check.py.)
#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "nvrar/nvrar_c.h"

namespace {

bool have_gpu() {
  int n = 0;
  return cudaGetDeviceCount(&n) == cudaSuccess && n > 0;
}

#define ASSERT_OK(call) ASSERT_EQ((call), NVRAR_SUCCESS) << #call << ": " << nvrar_last_error()

// Device memory holding a host vector, copied back by read().
struct DeviceFloats {
  explicit DeviceFloats(const std::vector<float>& host) : n(host.size()) {
    EXPECT_EQ(cudaMalloc(reinterpret_cast<void**>(&p), n * sizeof(float)), cudaSuccess);
    EXPECT_EQ(cudaMemcpy(p, host.data(), n * sizeof(float), cudaMemcpyHostToDevice), cudaSuccess);
  }
  ~DeviceFloats() { cudaFree(p); }
  std::vector<float> read() const {
    std::vector<float> host(n);
    EXPECT_EQ(cudaMemcpy(host.data(), p, n * sizeof(float), cudaMemcpyDeviceToHost), cudaSuccess);
    return host;
  }
  float* p = nullptr;
  std::size_t n;
};

std::vector<float> pattern(std::size_t n, uint32_t seed) {
  std::vector<float> v(n);
  uint32_t s = seed * 2654435761u + 1;
  for (auto& x : v) {
    s = s * 1664525u + 1013904223u;
    x = static_cast<float>(s >> 8) / static_cast<float>(1u << 24) - 0.5f;
  }
  return v;
}

class CApiGpu : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!have_gpu()) GTEST_SKIP() << "no CUDA device";
    ASSERT_EQ(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), cudaSuccess);
  }
  void TearDown() override {
    if (comm_ != nullptr) EXPECT_EQ(nvrar_comm_destroy(comm_), NVRAR_SUCCESS) << nvrar_last_error();
    if (stream_ != nullptr) cudaStreamDestroy(stream_);
  }
  void create_from_env() {
    nvrar_options_t o;
    ASSERT_OK(nvrar_options_init(&o));
    o.max_bytes = std::size_t{4} << 20;
    o.buffer_bytes = std::size_t{8} << 20;
    ASSERT_OK(nvrar_comm_create(&o, &comm_));
  }
  nvrar_comm_t comm_ = nullptr;
  cudaStream_t stream_ = nullptr;
};

TEST_F(CApiGpu, FromEnvironmentIsOneRankAndSumsToItsInput) {
  create_from_env();
  int rank = -1, size = -1;
  ASSERT_OK(nvrar_comm_rank(comm_, &rank));
  ASSERT_OK(nvrar_comm_size(comm_, &size));
  EXPECT_EQ(rank, 0);
  EXPECT_EQ(size, 1);
  const char* text = nullptr;
  ASSERT_OK(nvrar_comm_describe(comm_, &text));
  EXPECT_NE(std::string(text).find("P=1"), std::string::npos) << text;
  const std::vector<float> input = pattern(10000, 1);
  for (int a = 0; a < 7; ++a) {  // every algorithm this communicator runs: the sum over one rank is the input
    int supported = 0;
    ASSERT_OK(nvrar_comm_supports(comm_, a, &supported));
    if (!supported || a == NVRAR_ALGO_REGISTERED) continue;  // registered: its input must lie in a buffer (below)
    DeviceFloats in(input), out(std::vector<float>(input.size(), -7.0f));
    ASSERT_OK(nvrar_allreduce(comm_, in.p, out.p, input.size(), NVRAR_FLOAT32, stream_,
                              static_cast<nvrar_algorithm_t>(a)));
    ASSERT_OK(nvrar_comm_synchronize(comm_, stream_));
    EXPECT_EQ(out.read(), input) << nvrar_algorithm_name(a);
  }
}

TEST_F(CApiGpu, FromUniqueIdAndReplayedFromAGraph) {
  nvrar_unique_id_t id;
  ASSERT_OK(nvrar_get_unique_id(&id));
  int device = 0;
  ASSERT_EQ(cudaGetDevice(&device), cudaSuccess);
  ASSERT_OK(nvrar_comm_create_from_unique_id(&id, 0, 1, device, nullptr, &comm_));
  std::vector<float> input = pattern(4096, 2);
  DeviceFloats in(input), out(std::vector<float>(input.size(), 0.0f));
  cudaGraph_t graph = nullptr;
  cudaGraphExec_t exec = nullptr;
  ASSERT_EQ(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeGlobal), cudaSuccess);
  const nvrar_status_t captured =
      nvrar_allreduce(comm_, in.p, out.p, input.size(), NVRAR_FLOAT32, stream_, NVRAR_ALGO_AUTO);
  ASSERT_EQ(cudaStreamEndCapture(stream_, &graph), cudaSuccess);
  ASSERT_EQ(captured, NVRAR_SUCCESS) << nvrar_last_error();
  ASSERT_EQ(cudaGraphInstantiate(&exec, graph, 0), cudaSuccess);
  for (int replay = 0; replay < 3; ++replay) {  // new input each time: the graph reads it where it lies
    input = pattern(input.size(), 10 + replay);
    ASSERT_EQ(cudaMemcpy(in.p, input.data(), input.size() * sizeof(float), cudaMemcpyHostToDevice), cudaSuccess);
    ASSERT_EQ(cudaGraphLaunch(exec, stream_), cudaSuccess);
    ASSERT_OK(nvrar_comm_synchronize(comm_, stream_));
    EXPECT_EQ(out.read(), input) << "replay " << replay;
  }
  cudaGraphExecDestroy(exec);
  cudaGraphDestroy(graph);
}

TEST_F(CApiGpu, AllreduceAddRmsnormMatchesTheReference) {
  create_from_env();
  const std::size_t rows = 3, hidden = 256;
  const float eps = 1e-5f;
  const std::vector<float> x = pattern(rows * hidden, 3), residual = pattern(rows * hidden, 4),
                           weight = pattern(hidden, 5);
  DeviceFloats dx(x), dres(residual), dw(weight), dout(std::vector<float>(rows * hidden, 0.0f));
  ASSERT_OK(nvrar_allreduce_add_rmsnorm(comm_, dx.p, dres.p, dw.p, dout.p, rows, hidden, eps, NVRAR_FLOAT32, stream_,
                                        NVRAR_ALGO_AUTO));
  ASSERT_OK(nvrar_comm_synchronize(comm_, stream_));
  const std::vector<float> got_res = dres.read(), got = dout.read();
  for (std::size_t r = 0; r < rows; ++r) {
    double squares = 0;
    for (std::size_t h = 0; h < hidden; ++h) {
      const double v = static_cast<double>(x[r * hidden + h]) + residual[r * hidden + h];
      squares += v * v;
      EXPECT_NEAR(got_res[r * hidden + h], v, 1e-6) << "residual row " << r << " column " << h;
    }
    const double scale = 1.0 / std::sqrt(squares / hidden + eps);
    for (std::size_t h = 0; h < hidden; ++h) {
      const double want = (static_cast<double>(x[r * hidden + h]) + residual[r * hidden + h]) * scale * weight[h];
      EXPECT_NEAR(got[r * hidden + h], want, 1e-5 + 1e-5 * std::fabs(want)) << "row " << r << " column " << h;
    }
  }
}

TEST_F(CApiGpu, TheLibrarysRefusalsKeepTheirMessage) {
  create_from_env();
  float* p = nullptr;
  ASSERT_EQ(cudaMalloc(reinterpret_cast<void**>(&p), 64), cudaSuccess);
  EXPECT_EQ(nvrar_allreduce(comm_, nullptr, p, 16, NVRAR_FLOAT32, stream_, NVRAR_ALGO_AUTO), NVRAR_ERROR_RUNTIME);
  EXPECT_NE(std::string(nvrar_last_error()).find("nvrar: rank 0 allreduce: input pointer is null"), std::string::npos)
      << nvrar_last_error();
  EXPECT_EQ(nvrar_allreduce_add_rmsnorm(comm_, p, p, p, p, 1, 3, 1e-5f, NVRAR_FLOAT32, stream_, NVRAR_ALGO_AUTO),
            NVRAR_ERROR_RUNTIME);
  EXPECT_NE(std::string(nvrar_last_error()).find("not a multiple of 16 bytes"), std::string::npos)
      << nvrar_last_error();
  cudaFree(p);
  ASSERT_OK(nvrar_comm_check(comm_));  // refused calls leave the communicator usable
}

TEST_F(CApiGpu, RegisteredBuffers) {
  create_from_env();
  void* buffer = nullptr;
  if (!nvrar_built_with_nvshmem()) {
    EXPECT_EQ(nvrar_buffer_allocate(comm_, 4096, &buffer), NVRAR_ERROR_RUNTIME);
    EXPECT_NE(std::string(nvrar_last_error()).find("no NVSHMEM"), std::string::npos) << nvrar_last_error();
    GTEST_SKIP() << "this build has no NVSHMEM: registered buffers refused as expected";
  }
  ASSERT_OK(nvrar_buffer_allocate(comm_, 1 << 20, &buffer));
  int registered = 0;
  ASSERT_OK(nvrar_buffer_is_registered(comm_, buffer, 1 << 20, &registered));
  EXPECT_EQ(registered, 1);
  ASSERT_OK(nvrar_buffer_is_registered(comm_, static_cast<char*>(buffer) + 1024, (1 << 20) - 1023, &registered));
  EXPECT_EQ(registered, 0);  // runs past the end
  const std::vector<float> input = pattern(1 << 18, 6);
  ASSERT_EQ(cudaMemcpy(buffer, input.data(), input.size() * sizeof(float), cudaMemcpyHostToDevice), cudaSuccess);
  DeviceFloats out(std::vector<float>(input.size(), 0.0f));
  ASSERT_OK(nvrar_allreduce(comm_, buffer, out.p, input.size(), NVRAR_FLOAT32, stream_, NVRAR_ALGO_AUTO));
  ASSERT_OK(nvrar_comm_synchronize(comm_, stream_));
  EXPECT_EQ(out.read(), input);
  ASSERT_OK(nvrar_buffer_free(comm_, buffer));
}

}  // namespace
