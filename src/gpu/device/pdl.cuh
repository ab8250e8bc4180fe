// Programmatic dependent launch (Hopper), shared by NVRAR's collectives and the engine's kernels.
//
// A kernel launched with launch_kernel(..., pdl = true) may start while the previous kernel of its stream is still
// running (once every block of that kernel has called allow_next_grid() or exited). It must call
// wait_for_previous_grid() before touching anything that kernel (or an earlier one) wrote; work before the wait may
// only read memory nothing in flight writes (e.g. weights). A kernel calls allow_next_grid() to let the next
// PDL-launched kernel be scheduled early. Both are no-ops on older GPUs and when no PDL launch is involved.
#pragma once

#include <cuda_runtime.h>

#include <utility>

namespace nvrar::gpu::dev {

__device__ __forceinline__ void wait_for_previous_grid() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}
__device__ __forceinline__ void allow_next_grid() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}

// Launches kernel<<<blocks, threads, shared_bytes, stream>>>(args...) with or without programmatic stream
// serialisation.
template <typename... KArgs, typename... Args>
inline cudaError_t launch_kernel_shared(void (*kernel)(KArgs...), dim3 blocks, int threads, size_t shared_bytes,
                                        cudaStream_t stream, bool pdl, Args&&... args) {
  cudaLaunchConfig_t config{};
  config.gridDim = blocks;
  config.blockDim = dim3(static_cast<unsigned>(threads));
  config.dynamicSmemBytes = shared_bytes;
  config.stream = stream;
  cudaLaunchAttribute attribute{};
  attribute.id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attribute.val.programmaticStreamSerializationAllowed = pdl ? 1 : 0;
  config.attrs = &attribute;
  config.numAttrs = 1;
  return cudaLaunchKernelEx(&config, kernel, std::forward<Args>(args)...);
}
// Launches kernel<<<blocks, threads, 0, stream>>>(args...) with or without programmatic stream serialisation.
template <typename... KArgs, typename... Args>
inline cudaError_t launch_kernel(void (*kernel)(KArgs...), dim3 blocks, int threads, cudaStream_t stream, bool pdl,
                                 Args&&... args) {
  return launch_kernel_shared(kernel, blocks, threads, 0, stream, pdl, std::forward<Args>(args)...);
}
template <typename... KArgs, typename... Args>
inline cudaError_t launch_kernel(void (*kernel)(KArgs...), int blocks, int threads, cudaStream_t stream, bool pdl,
                                 Args&&... args) {
  return launch_kernel(kernel, dim3(static_cast<unsigned>(blocks)), threads, stream, pdl,
                       std::forward<Args>(args)...);
}

}  // namespace nvrar::gpu::dev
