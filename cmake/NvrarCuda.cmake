# CUDA parts of NVRAR. Compiled wherever nvcc is found (CI compiles them; only the GPU machine runs them).
# Grows with the GPU transport and kernels; for now the device build of the shared schedule and protocol.
add_library(nvrar_cuda_check STATIC src/gpu/schedule_device_check.cu)
target_include_directories(nvrar_cuda_check PUBLIC ${CMAKE_CURRENT_SOURCE_DIR}/src ${CMAKE_CURRENT_SOURCE_DIR}/include)
target_link_libraries(nvrar_cuda_check PUBLIC CUDA::cudart)
