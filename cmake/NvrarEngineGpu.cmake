# The inference engine's GPU half (src/engine/gpu): cuBLASLt GEMMs, the Llama kernels, the tensor-parallel model
# (model: forward and weights; model_tuning: the decode GEMMs chosen; runner: KV cache, prefill/decode, graphs,
# timing; sampler; comm_adapter: the only user of nvrar::Communicator for the layer all-reduces, through the public
# API).
add_library(nvrar_engine_gpu STATIC
  src/engine/gpu/gemm.cpp
  src/engine/gpu/layers.cu
  src/engine/gpu/residual_f32.cu
  src/engine/gpu/activations_f32.cu
  src/engine/gpu/attention.cu
  src/engine/gpu/attention_fused.cu
  src/engine/gpu/attention_mma.cu
  src/engine/gpu/flash_prefill.cu
  src/engine/gpu/skinny_gemm.cu
  src/engine/gpu/decode_megakernel.cu
  src/engine/gpu/copy_wait.cpp
  src/engine/gpu/device_memory.cpp
  src/engine/gpu/step_timer.cpp
  src/engine/gpu/comm_adapter.cpp
  src/engine/gpu/sampling.cu
  src/engine/gpu/sampler.cpp
  src/engine/gpu/model.cpp
  src/engine/gpu/model_tuning.cpp
  src/engine/gpu/runner.cpp)
target_include_directories(nvrar_engine_gpu PUBLIC ${CMAKE_CURRENT_SOURCE_DIR}/src ${CMAKE_CURRENT_SOURCE_DIR}/include)
target_link_libraries(nvrar_engine_gpu PUBLIC nvrar_engine nvrar_gpu CUDA::cublasLt CUDA::cudart PRIVATE fmt::fmt)
set_target_properties(nvrar_engine_gpu PROPERTIES POSITION_INDEPENDENT_CODE ON)
target_compile_options(nvrar_engine_gpu PRIVATE $<$<COMPILE_LANGUAGE:CXX>:-Wall -Wextra>)
# The Hopper prefill attention kernels (wgmma: no sm_80 or plain sm_90 form) in their own object library compiled for
# sm_90a only, whatever CMAKE_CUDA_ARCHITECTURES says; they are chosen only on compute capability 9.0 (run-time check).
add_library(nvrar_engine_wgmma OBJECT src/engine/gpu/flash_prefill_wgmma.cu
  src/engine/gpu/flash_prefill_wgmma_overlap.cu src/engine/gpu/flash_prefill_wgmma_ws.cu)
target_include_directories(nvrar_engine_wgmma PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/src ${CMAKE_CURRENT_SOURCE_DIR}/include)
target_link_libraries(nvrar_engine_wgmma PRIVATE CUDA::cudart)
set_target_properties(nvrar_engine_wgmma PROPERTIES CUDA_ARCHITECTURES OFF POSITION_INDEPENDENT_CODE ON)
target_compile_options(nvrar_engine_wgmma PRIVATE --generate-code=arch=compute_90a,code=sm_90a)
target_sources(nvrar_engine_gpu PRIVATE $<TARGET_OBJECTS:nvrar_engine_wgmma>)
