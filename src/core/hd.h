// Host/device portability macros for the code shared by the CPU executor and the CUDA kernels.
#pragma once

#if defined(__CUDACC__)
#define NVRAR_HD __host__ __device__ __forceinline__
#define NVRAR_DEVICE __device__ __forceinline__
#else
#define NVRAR_HD inline
#define NVRAR_DEVICE inline
#endif
