// Device helpers shared by the engine's kernels that stage global memory in shared memory with cp.async (sm_80+):
// flash_prefill.cu and attention_fused.cu.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

namespace nvrar::engine::gpu {

__device__ __forceinline__ uint32_t shared_address(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

// 16 bytes from src to shared address dst, asynchronously; !valid zero-fills dst (src-size 0: nothing is read, but
// src must still be a valid address).
__device__ __forceinline__ void cp_async_16(uint32_t dst, const void* src, bool valid) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src), "r"(valid ? 16 : 0)
               : "memory");
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
// Waits until at most N of this thread's committed groups are pending (its own copies only: other threads' copies
// need a barrier after their wait).
template <int N>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
}

}  // namespace nvrar::engine::gpu
