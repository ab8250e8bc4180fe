// The bounded waits' record and its message (copy_wait.h). The self-test's kernel is in flash_prefill_wgmma.cu (it
// needs sm_90a's barriers).
#include "engine/gpu/copy_wait.h"

#include <cuda_runtime.h>

#include <fmt/format.h>

#include <atomic>
#include <mutex>

#include "config/settings.h"
#include "nvrar/types.h"

namespace nvrar::engine::gpu {

namespace {

std::mutex g_mutex;
CopyWaitRecord* g_host = nullptr;  // mapped pinned memory, never freed (a kernel may still write it at exit)
CopyWaitRecord* g_device = nullptr;

const char* site_text(int site) {
  switch (static_cast<CopyWaitSite>(site)) {
    case CopyWaitSite::kTmaTile:
      return "prefill attention wgmma-tma: a key tile's K and V copies (TMA) into shared memory";
    case CopyWaitSite::kWsStageRelease:
      return "prefill attention wgmma-ws, producer warp: the consumers' release of a K or V stage";
    case CopyWaitSite::kWsKeyTile:
      return "prefill attention wgmma-ws, consumer warp: a K tile's copy into shared memory";
    case CopyWaitSite::kWsValueTile:
      return "prefill attention wgmma-ws, consumer warp: a V tile's copy into shared memory";
    case CopyWaitSite::kSelfTest:
      return "copy_wait_self_test: a barrier nobody arrives on";
    case CopyWaitSite::kNone:
      break;
  }
  return "an unknown wait";
}

}  // namespace

CopyWaitBound copy_wait_bound(int64_t timeout_ms) {
  std::lock_guard<std::mutex> lock(g_mutex);
  if (g_host == nullptr) {
    void* host = nullptr;
    const cudaError_t e = cudaHostAlloc(&host, sizeof(CopyWaitRecord), cudaHostAllocMapped | cudaHostAllocPortable);
    if (e != cudaSuccess)
      throw Error(fmt::format("nvrar-llm: cannot allocate the prefill kernels' timeout record (mapped host memory): {}",
                              cudaGetErrorString(e)));
    *static_cast<CopyWaitRecord*>(host) = CopyWaitRecord{};
    void* device = nullptr;
    const cudaError_t mapped = cudaHostGetDevicePointer(&device, host, 0);
    if (mapped != cudaSuccess) {
      cudaFreeHost(host);
      throw Error(fmt::format("nvrar-llm: cannot map the prefill kernels' timeout record: {}",
                              cudaGetErrorString(mapped)));
    }
    g_host = static_cast<CopyWaitRecord*>(host);
    g_device = static_cast<CopyWaitRecord*>(device);
  }
  const int64_t ms = timeout_ms > 0 ? timeout_ms : config::settings().timeout_ms;
  const int64_t units = (ms * 1000000 + (int64_t{1} << 20) - 1) >> 20;
  int device = 0;
  if (cudaGetDevice(&device) != cudaSuccess) device = -1;
  return CopyWaitBound{g_device, static_cast<uint32_t>(units < 1 ? 1 : units), device};
}

std::string describe_copy_wait(const CopyWaitRecord& r) {
  if (r.site == 0) return "";
  const int64_t timeout_ms = (static_cast<int64_t>(r.timeout_units) << 20) / 1000000;
  return fmt::format(
      "GPU {}: {} did not complete within {} ms (NVRAR_TIMEOUT_MS; block {}, thread {}, barrier at shared address "
      "{}, parity {}): the kernel stopped itself (trap) instead of hanging, and this process's CUDA context is lost",
      r.device, site_text(r.site), timeout_ms, r.block, r.thread, r.barrier, r.parity);
}

std::string copy_wait_failure() {
  std::lock_guard<std::mutex> lock(g_mutex);
  if (g_host == nullptr) return "";
  std::atomic_thread_fence(std::memory_order_acquire);
  const volatile CopyWaitRecord* v = g_host;  // written by a kernel, not by this thread
  const CopyWaitRecord record{v->site, v->block, v->thread, v->parity, v->barrier, v->device, v->timeout_units};
  return describe_copy_wait(record);
}

}  // namespace nvrar::engine::gpu
