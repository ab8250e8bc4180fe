// The backend factory: the host backend always, the GPU backend (bench/gpu_backend.{h,cpp}: one process per GPU)
// when tools/CMakeLists.txt compiled it, which it does wherever CMake found CUDA and defines
// NVRAR_BENCH_HAVE_GPU=1.
#include "bench/backend.h"

#include "bench/host_backend.h"
#if defined(NVRAR_BENCH_HAVE_GPU)
#include "bench/gpu_backend.h"
#endif

namespace nvrar::bench {

namespace {

// --backend auto picks the GPU backend only where it can run: at least one CUDA device visible.
bool gpu_device_present() {
#if defined(NVRAR_BENCH_HAVE_GPU)
  return gpu_device_count() > 0;
#else
  return false;
#endif
}

}  // namespace

bool have_gpu_backend() {
#if defined(NVRAR_BENCH_HAVE_GPU)
  return true;
#else
  return false;
#endif
}

std::string resolve_backend(const std::string& requested) {
  if (requested == "host") return "host";
  if (requested == "gpu") {
    if (!have_gpu_backend()) throw Error("this build has no GPU backend (CMake found no CUDA); use --backend host");
    return "gpu";
  }
  if (requested == "auto") return have_gpu_backend() && gpu_device_present() ? "gpu" : "host";
  throw Error("unknown backend '" + requested + "' (host, gpu, auto)");
}

BackendDefaults backend_defaults(const std::string& name) {
  if (name == "host") return host_backend_defaults();
#if defined(NVRAR_BENCH_HAVE_GPU)
  if (name == "gpu") return gpu_backend_defaults();
#endif
  throw Error("no defaults for backend '" + name + "'");
}

std::unique_ptr<Backend> make_backend(const std::string& name, const BackendOptions& options) {
  if (name == "host") return std::make_unique<HostBackend>(options);
#if defined(NVRAR_BENCH_HAVE_GPU)
  if (name == "gpu") return std::make_unique<GpuBackend>(options);
#endif
  throw Error("this build has no '" + name + "' backend");
}

}  // namespace nvrar::bench
