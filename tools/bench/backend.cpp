// The backend factory. Adding the GPU backend (MPI processes, one GPU each) touches only this file and
// tools/CMakeLists.txt:
//   1. write tools/bench/gpu_backend.{h,cpp} (algorithms nvrar, hierarchical, nccl, nccl-symmetric);
//   2. in tools/CMakeLists.txt, compile it and define NVRAR_BENCH_GPU when CUDA (and MPI) are available;
//   3. fill in the three places marked "GPU BACKEND" below.
#include "bench/backend.h"

#include "bench/host_backend.h"

namespace nvrar::bench {

namespace {

// GPU BACKEND: return true when at least one CUDA device is visible (cudaGetDeviceCount), so that
// --backend auto picks the GPU backend only where it can run.
bool gpu_device_present() { return false; }

}  // namespace

bool have_gpu_backend() {
#if defined(NVRAR_BENCH_GPU)
  return true;
#else
  return false;
#endif
}

std::string resolve_backend(const std::string& requested) {
  if (requested == "host") return "host";
  if (requested == "gpu") {
    if (!have_gpu_backend()) throw Error("this build has no GPU backend (built without CUDA/MPI); use --backend host");
    return "gpu";
  }
  if (requested == "auto") return have_gpu_backend() && gpu_device_present() ? "gpu" : "host";
  throw Error("unknown backend '" + requested + "' (host, gpu, auto)");
}

BackendDefaults backend_defaults(const std::string& name) {
  if (name == "host") return host_backend_defaults();
  // GPU BACKEND: return gpu_backend_defaults() (max 64M; 20 iterations per graph, 15 replays: BENCHMARKING.md).
  throw Error("no defaults for backend '" + name + "'");
}

std::unique_ptr<Backend> make_backend(const std::string& name, const BackendOptions& options) {
  if (name == "host") return std::make_unique<HostBackend>(options);
  // GPU BACKEND: if (name == "gpu") return std::make_unique<GpuBackend>(options);
  throw Error("this build has no '" + name + "' backend");
}

}  // namespace nvrar::bench
