// Device-side evaluation of the shared schedule (core/schedule.h) and conversions (core/numeric.h).
//
// Kernels: one thread per probe / value, grid-stride loop, no synchronisation (pure functions).
#include "gpu/device/schedule_device_check.h"

#include <cuda_runtime.h>

#include <string>

#include "core/numeric.h"
#include "core/schedule.h"

namespace nvrar::gpu_check {

namespace {

void check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) throw Error(std::string("nvrar: gpu schedule check: ") + what + ": " + cudaGetErrorString(e));
}

constexpr int kOutPerProbe = 6;

__global__ void schedule_kernel(const ScheduleProbe* probes, int n, int64_t* out) {
  for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) {
    const ScheduleProbe p = probes[i];
    const core::CallShape s = core::make_call_shape(p.count, p.elem_bytes, p.gpus_per_node, p.chunk_units);
    const core::Range su = s.slice_units(p.slice);
    const int64_t chunks = s.num_chunks(p.slice);
    const core::Range last = s.chunk(p.slice, chunks - 1);
    int64_t* o = out + static_cast<int64_t>(i) * kOutPerProbe;
    o[0] = su.begin;
    o[1] = su.end;
    o[2] = s.exchanged_units(p.slice);
    o[3] = chunks;
    o[4] = last.begin;
    o[5] = last.end;
  }
}

template <typename T>
__global__ void round_kernel(const float* in, int n, uint32_t* out) {
  for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) {
    const T v = core::from_float<T>(in[i]);
    uint32_t bits = 0;
    memcpy(&bits, &v, sizeof(T));
    out[i] = bits;
  }
}

}  // namespace

bool device_available() {
  int n = 0;
  return cudaGetDeviceCount(&n) == cudaSuccess && n > 0;
}

std::vector<int64_t> eval_schedule_on_device(const std::vector<ScheduleProbe>& probes) {
  const int n = static_cast<int>(probes.size());
  ScheduleProbe* d_probes = nullptr;
  int64_t* d_out = nullptr;
  check(cudaMalloc(&d_probes, sizeof(ScheduleProbe) * n), "cudaMalloc");
  check(cudaMalloc(&d_out, sizeof(int64_t) * kOutPerProbe * n), "cudaMalloc");
  check(cudaMemcpy(d_probes, probes.data(), sizeof(ScheduleProbe) * n, cudaMemcpyHostToDevice), "cudaMemcpy");
  schedule_kernel<<<(n + 255) / 256, 256>>>(d_probes, n, d_out);
  check(cudaGetLastError(), "schedule_kernel launch");
  std::vector<int64_t> out(static_cast<std::size_t>(kOutPerProbe) * n);
  check(cudaMemcpy(out.data(), d_out, sizeof(int64_t) * out.size(), cudaMemcpyDeviceToHost), "cudaMemcpy");
  cudaFree(d_out);
  cudaFree(d_probes);
  return out;
}

std::vector<uint32_t> round_on_device(const std::vector<float>& values, DataType dtype) {
  const int n = static_cast<int>(values.size());
  float* d_in = nullptr;
  uint32_t* d_out = nullptr;
  check(cudaMalloc(&d_in, sizeof(float) * n), "cudaMalloc");
  check(cudaMalloc(&d_out, sizeof(uint32_t) * n), "cudaMalloc");
  check(cudaMemcpy(d_in, values.data(), sizeof(float) * n, cudaMemcpyHostToDevice), "cudaMemcpy");
  const int blocks = (n + 255) / 256;
  switch (dtype) {
    case DataType::kFloat32:
      round_kernel<float><<<blocks, 256>>>(d_in, n, d_out);
      break;
    case DataType::kBFloat16:
      round_kernel<core::Bf16><<<blocks, 256>>>(d_in, n, d_out);
      break;
    case DataType::kFloat16:
      round_kernel<core::Fp16><<<blocks, 256>>>(d_in, n, d_out);
      break;
  }
  check(cudaGetLastError(), "round_kernel launch");
  std::vector<uint32_t> out(values.size());
  check(cudaMemcpy(out.data(), d_out, sizeof(uint32_t) * n, cudaMemcpyDeviceToHost), "cudaMemcpy");
  cudaFree(d_out);
  cudaFree(d_in);
  return out;
}

}  // namespace nvrar::gpu_check
