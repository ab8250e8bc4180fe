// Uses the installed package: a CPU-executor all-reduce over 4 ranks (2 nodes x 2 GPUs) checked against the sum,
// and, when the package has the GPU library, its build facts. Exit 0 when the sum is right.
#include <cstdio>
#include <thread>
#include <vector>

#include <nvrar/host_executor.h>
#if CONSUMER_HAS_GPU
#include <nvrar/nvrar.h>
#include <nvrar/nvrar_c.h>
#endif

int main() {
  nvrar::HostGroupOptions options;
  options.ranks = 4;
  options.gpus_per_node = 2;
  nvrar::HostGroup group(options);
  const std::size_t n = 1000;
  std::vector<std::vector<float>> data(4, std::vector<float>(n));
  for (int r = 0; r < 4; ++r)
    for (std::size_t i = 0; i < n; ++i) data[r][i] = static_cast<float>(r + 1) * static_cast<float>(i % 7);
  std::vector<std::thread> threads;
  for (int r = 0; r < 4; ++r)
    threads.emplace_back([&, r] { group.comm(r).allreduce(data[r].data(), data[r].data(), n, nvrar::DataType::kFloat32); });
  for (auto& t : threads) t.join();
  for (int r = 0; r < 4; ++r)
    for (std::size_t i = 0; i < n; ++i)
      if (data[r][i] != 10.0f * static_cast<float>(i % 7)) {
        std::printf("consumer: rank %d element %zu = %g, want %g\n", r, i, data[r][i], 10.0 * (i % 7));
        return 1;
      }
#if CONSUMER_HAS_GPU
  std::printf("consumer: nvrar::gpu linked, NVSHMEM in this build: %s\n", nvrar::built_with_nvshmem() ? "yes" : "no");
  if (nvrar_abi_version() != NVRAR_C_ABI_VERSION) {
    std::printf("consumer: libnvrar_c.so has C ABI %d, its header %d\n", nvrar_abi_version(), NVRAR_C_ABI_VERSION);
    return 1;
  }
  std::printf("consumer: nvrar::c linked, C ABI %d, NVRAR %s\n", nvrar_abi_version(), nvrar_version());
#endif
  std::printf("consumer: find_package(nvrar) works; CPU all-reduce over 2 x 2 ranks correct\n");
  return 0;
}
