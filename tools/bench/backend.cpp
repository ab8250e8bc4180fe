// The backend factory: the host backend always, the GPU backend (bench/gpu_backend.{h,cpp}: one process per GPU)
// when tools/CMakeLists.txt compiled it, which it does wherever CMake found CUDA and defines
// NVRAR_BENCH_HAVE_GPU=1.
#include "bench/backend.h"

#include <algorithm>
#include <cstddef>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "bench/host_backend.h"
#include "select/tuning_table.h"
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

std::vector<AlgorithmName> algorithm_names(const std::string& name) {
  if (name == "host") return HostBackend::algorithm_names();
#if defined(NVRAR_BENCH_HAVE_GPU)
  if (name == "gpu") return GpuBackend::algorithm_names();
#endif
  return {};
}

std::string canonical_algorithm(const std::string& backend, const std::string& spec) {
  const std::size_t colon = spec.find(':');
  const std::string base = spec.substr(0, colon);
  for (const AlgorithmName& a : algorithm_names(backend))
    if (!a.alias.empty() && a.alias == base) return colon == std::string::npos ? a.name : a.name + spec.substr(colon);
  return spec;
}

void check_algorithm_spec(const std::string& backend, const std::string& spec) {
  const std::string canonical = canonical_algorithm(backend, spec);
  const std::size_t colon = canonical.find(':');
  const std::string base = canonical.substr(0, colon);
  const std::vector<AlgorithmName> names = algorithm_names(backend);
  const auto known = std::find_if(names.begin(), names.end(), [&](const AlgorithmName& a) { return a.name == base; });
  if (known == names.end()) {
    std::vector<std::string> list;
    for (const AlgorithmName& a : names) list.push_back(a.name);
    throw Error(fmt::format("--algorithms: the {} backend has no algorithm '{}' (it knows: {}; see --help)", backend,
                            spec, fmt::join(list, ", ")));
  }
  if (colon == std::string::npos) return;
  if (!known->takes_shape)
    throw Error(fmt::format("--algorithms: '{}': {} takes no launch shape on the {} backend", spec, base, backend));
  try {
    (void)select::parse_algorithm_spec(canonical);
  } catch (const Error& e) {
    std::string what = e.what();
    if (what.rfind("nvrar: ", 0) == 0) what.erase(0, 7);
    throw Error(fmt::format("--algorithms: {}", what));
  }
}

std::string algorithms_help() {
  std::string text =
      "Algorithms (--algorithms name[:shape],...; by default every one the backend offers). Launch shapes for NVRAR's\n"
      "kernels on gpu: t<threads>, b<blocks>, bulk or cells (hierarchical), p<16-byte units per piece> (push);\n"
      "e.g. oneshot:t256, hierarchical:bulk, push:t256:p1024. A name in parentheses is the library's spelling of the\n"
      "same algorithm, accepted as well.\n";
  for (const char* backend : {"gpu", "host"}) {
    const std::vector<AlgorithmName> names = algorithm_names(backend);
    if (names.empty()) {
      text += fmt::format("  --backend {}: not in this build\n", backend);
      continue;
    }
    text += std::string(backend) == "gpu"
                ? "  --backend gpu (NVRAR's forced kernels only where the communicator supports them):\n"
                : "  --backend host:\n";
    auto label = [](const AlgorithmName& a) { return a.alias.empty() ? a.name : a.name + " (" + a.alias + ")"; };
    std::size_t width = 0;
    for (const AlgorithmName& a : names) width = std::max(width, label(a).size());
    for (const AlgorithmName& a : names) text += fmt::format("    {:<{}}  {}\n", label(a), width, a.summary);
  }
  return text;
}

}  // namespace nvrar::bench
