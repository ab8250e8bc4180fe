// GPU backend of nvrar-bench: one process per GPU, measured as ../shared/BENCHMARKING.md prescribes.
//
// Per (algorithm, size): fresh pseudo-random inputs (seeded by size, dtype and rank, so any rank can regenerate
// any other's), one eager call (the verified call under --check; it also lets NCCL connect outside a capture),
// then K = iters back-to-back out-of-place calls captured into one CUDA graph on a non-blocking stream, `warmup`
// untimed replays and `rounds` replays timed with CUDA events. Time per call = max over ranks of the per-rank
// median of (replay time / K).
// Start gate (on unless --no-start-gate): before each timed replay a spin kernel holds the stream for
// kGateSpinNs while the host queues a one-element NCCL all-reduce, the start event and the graph behind it; the
// all-reduce ends at about the same moment on every GPU (within a hop), so the start event marks a common start.
// Without it a replay's time also holds the graph's launch and, for the first calls, the wait for the rank whose
// host woke last from the previous replay's synchronisation (up to tens of us, i.e. 1-3 us per call over K = 20:
// the run-to-run jumps at small sizes seen before the gate). The PyTorch anchors (scripts/bench_torch_symm.py)
// use the same gate. The stream is synchronised after every replay, so an NVRAR kernel that times out
// (it ends itself after NVRAR_TIMEOUT_MS) becomes an error naming the peer instead of a hang. (A rank that fails
// leaves the others in their next NCCL call, the start gate's or max_over_ranks', until the launcher ends the job,
// as mpirun does when a rank exits with an error.)
//
// --check: the eager call writes into an output poisoned with 0xFF bytes (NaN in fp32, bf16 and fp16, so an
// element the call never writes counts as wrong), and every rank compares its whole output with a float64
// reference it builds from all ranks' regenerated inputs (cached per size and dtype, shared by the algorithms).
// Tolerance: check::hierarchical_roundings(nodes) roundings for NVRAR's forced kernels (hierarchical, oneshot,
// registered, ll128, push); at least P for the NCCL algorithms, whose ring rounds at every hop, and for nvrar and
// nvrar-registered, which hand sizes above their range (or builds without NVSHMEM) to NCCL. NVRAR's algorithms
// also promise the same bits on every rank: a rank whose output hash (FNV-1a) differs from rank 0's counts its
// whole output as wrong. #wrong is the sum over ranks.
//
// registered and nvrar-registered run on an input and an output of max_bytes from Communicator::allocate_buffer,
// allocated on first use (collective: every rank runs the same sweep) and freed at teardown.
//
// Failures: every CUDA and NCCL call is checked and reported as "nvrar-bench: rank R <call> failed at
// file:line: <cause>". After a failure inside run() the backend tears down locally only (peers may be gone or
// stuck) and leaks the communicator; the process then exits and the launcher ends the job.
#include "bench/gpu_backend.h"
#include "bench/start_gate.h"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <thread>

#include <fmt/format.h>

#include "select/tuning_table.h"
#include "nvrar/launch.h"

namespace nvrar::bench {

namespace {

const char* base_name(const char* path) {
  const char* slash = std::strrchr(path, '/');
  return slash != nullptr ? slash + 1 : path;
}

[[noreturn]] void throw_call_error(int rank, const char* call, const char* file, int line, const std::string& cause) {
  throw Error(fmt::format("nvrar-bench: rank {} {} failed at {}:{}: {}", rank, call, base_name(file), line, cause));
}

std::string nccl_cause(ncclResult_t result) {
  const char* last = ncclGetLastError(nullptr);
  return last != nullptr && *last != '\0' ? fmt::format("{} ({})", ncclGetErrorString(result), last)
                                          : std::string(ncclGetErrorString(result));
}

}  // namespace

#define BENCH_CUDA_CHECK(rank, call)                                                                     \
  do {                                                                                                   \
    const cudaError_t bench_err_ = (call);                                                               \
    if (bench_err_ != cudaSuccess)                                                                       \
      ::nvrar::bench::throw_call_error(rank, #call, __FILE__, __LINE__, cudaGetErrorString(bench_err_)); \
  } while (0)

#define BENCH_NCCL_CHECK(rank, call)                                                                             \
  do {                                                                                                           \
    const ncclResult_t bench_res_ = (call);                                                                      \
    if (bench_res_ != ncclSuccess)                                                                               \
      ::nvrar::bench::throw_call_error(rank, #call, __FILE__, __LINE__, ::nvrar::bench::nccl_cause(bench_res_)); \
  } while (0)

namespace {

// One input per (size, dtype), the same for every algorithm, so that one float64 reference serves them all.
uint64_t input_seed(uint64_t base, std::size_t count, DataType dtype) {
  return check::mix_seed(check::mix_seed(check::mix_seed(base) ^ count) ^ (static_cast<uint64_t>(dtype) << 32));
}

// 64-bit FNV-1a: the published offset basis and prime.
uint64_t fnv1a(const std::byte* data, std::size_t bytes) {
  uint64_t h = 0xCBF29CE484222325ull;
  for (std::size_t i = 0; i < bytes; ++i) {
    h ^= static_cast<uint64_t>(data[i]);
    h *= 0x100000001B3ull;
  }
  return h;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n % 2 == 1 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

std::string version_text(int code, int major_div, int minor_div) {
  return fmt::format("{}.{}", code / major_div, (code % major_div) / minor_div);
}

// Length of a device name slot in the all-gather (cudaDeviceProp::name is char[256]).
constexpr std::size_t kNameBytes = sizeof(cudaDeviceProp::name);

// Owns a captured graph and its executable; ends a capture left open by an exception.
struct Graph {
  cudaStream_t capturing = nullptr;
  cudaGraph_t graph = nullptr;
  cudaGraphExec_t exec = nullptr;
  Graph() = default;
  Graph(const Graph&) = delete;
  Graph& operator=(const Graph&) = delete;
  ~Graph() {
    if (capturing != nullptr) {
      cudaGraph_t partial = nullptr;
      if (cudaStreamEndCapture(capturing, &partial) == cudaSuccess && partial != nullptr) cudaGraphDestroy(partial);
      cudaGetLastError();  // the invalidated capture's error is this exception's consequence, not a new one
    }
    if (exec != nullptr) cudaGraphExecDestroy(exec);
    if (graph != nullptr) cudaGraphDestroy(graph);
  }
};

}  // namespace

BackendDefaults gpu_backend_defaults() {
  BackendDefaults d;
  d.max_bytes = std::size_t{64} << 20;
  d.config.iters = 20;   // calls per CUDA graph
  d.config.rounds = 15;  // timed replays
  d.config.warmup = 3;   // untimed replays (first replay uploads the graph)
  return d;
}

int gpu_device_count(std::string* why) {
  int n = 0;
  const cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess) {
    if (why != nullptr) *why = fmt::format("cudaGetDeviceCount: {}", cudaGetErrorString(e));
    cudaGetLastError();
    return 0;
  }
  if (n == 0 && why != nullptr) *why = "cudaGetDeviceCount found 0 devices";
  return n;
}

GpuBackend::GpuBackend(const BackendOptions& options)
    : max_bytes_(options.max_bytes), start_gate_(options.start_gate) {
  try {
    rank_ = detect_launch().rank;
  } catch (const Error&) {
    rank_ = 0;  // Communicator::create reports the launcher's problem below, with a better message
  }
  std::string why;
  if (gpu_device_count(&why) == 0)
    throw Error(fmt::format(
        "nvrar-bench: rank {}: the gpu backend found no usable CUDA device ({}); run it on a GPU machine, one "
        "process per GPU (e.g. mpirun -np 4 nvrar-bench --backend gpu), or use --backend host",
        rank_, why));
  if (max_bytes_ == 0) throw Error("nvrar-bench: gpu backend: max_bytes is 0");

  Options comm_options;
  comm_options.max_bytes = max_bytes_;
  // The registered algorithms' input and output (max_bytes_ each), with room for the allocator's alignment.
  comm_options.buffer_bytes = 2 * max_bytes_ + (std::size_t{4} << 20);
  comm_options.gpus_per_node = options.gpus_per_node;
  if (options.ll128_max_bytes) comm_options.ll128_max_bytes = *options.ll128_max_bytes;
  comm_ = Communicator::create(comm_options);  // selects this rank's GPU
  rank_ = comm_->rank();

  try {
    const int p = comm_->size();
    BENCH_CUDA_CHECK(rank_, cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
    BENCH_CUDA_CHECK(rank_, cudaEventCreate(&start_));
    BENCH_CUDA_CHECK(rank_, cudaEventCreate(&stop_));
    BENCH_CUDA_CHECK(rank_, cudaMalloc(&in_, max_bytes_));
    BENCH_CUDA_CHECK(rank_, cudaMalloc(&out_, max_bytes_));
    scratch_bytes_ = static_cast<std::size_t>(p) * kNameBytes;  // also holds P hashes and one double
    BENCH_CUDA_CHECK(rank_, cudaMalloc(&scratch_, scratch_bytes_));
    BENCH_CUDA_CHECK(rank_, cudaMalloc(&gate_, sizeof(int)));
    BENCH_CUDA_CHECK(rank_, cudaMemset(gate_, 0, sizeof(int)));

    // Device names of all ranks, so that a job on mixed cards says so.
    int dev = 0;
    BENCH_CUDA_CHECK(rank_, cudaGetDevice(&dev));
    cudaDeviceProp prop{};
    BENCH_CUDA_CHECK(rank_, cudaGetDeviceProperties(&prop, dev));
    card_ = prop.name;
    std::vector<char> names(scratch_bytes_, '\0');
    std::memcpy(names.data() + static_cast<std::size_t>(rank_) * kNameBytes, prop.name, kNameBytes - 1);
    char* slot = static_cast<char*>(scratch_) + static_cast<std::size_t>(rank_) * kNameBytes;
    BENCH_CUDA_CHECK(rank_, cudaMemcpyAsync(slot, names.data() + static_cast<std::size_t>(rank_) * kNameBytes,
                                            kNameBytes, cudaMemcpyHostToDevice, stream_));
    BENCH_NCCL_CHECK(rank_, ncclAllGather(slot, scratch_, kNameBytes, ncclChar, comm_->nccl(), stream_));
    BENCH_CUDA_CHECK(rank_, cudaMemcpyAsync(names.data(), scratch_, scratch_bytes_, cudaMemcpyDeviceToHost, stream_));
    wait();
    std::vector<std::pair<std::string, int>> kinds;  // name, how many ranks, in rank order of first appearance
    for (int r = 0; r < p; ++r) {
      const char* begin = names.data() + static_cast<std::size_t>(r) * kNameBytes;
      const std::string name(begin, strnlen(begin, kNameBytes));
      auto it = std::find_if(kinds.begin(), kinds.end(), [&](const auto& k) { return k.first == name; });
      if (it == kinds.end())
        kinds.emplace_back(name, 1);
      else
        ++it->second;
    }
    for (const auto& [name, n] : kinds) device_ += fmt::format("{}{} x {}", device_.empty() ? "" : " + ", n, name);

    int nccl_version = 0;
    int runtime_version = 0;
    int driver_version = 0;
    BENCH_NCCL_CHECK(rank_, ncclGetVersion(&nccl_version));
    BENCH_CUDA_CHECK(rank_, cudaRuntimeGetVersion(&runtime_version));
    BENCH_CUDA_CHECK(rank_, cudaDriverGetVersion(&driver_version));
    notes_.push_back(fmt::format("communicator: {}", comm_->describe()));
    notes_.push_back(fmt::format("nvrar (auto) decides by: {}", comm_->tuning_source()));
    notes_.push_back(fmt::format("NCCL {}.{}.{}, CUDA runtime {}, driver {}", nccl_version / 10000,
                                 (nccl_version % 10000) / 100, nccl_version % 100,
                                 version_text(runtime_version, 1000, 10), version_text(driver_version, 1000, 10)));
    const char* nvls = std::getenv("NCCL_NVLS_ENABLE");
    notes_.push_back(
        fmt::format("NCCL_NVLS_ENABLE={} (the BENCHMARKING.md anchors have NVLS off: set it to 0 to "
                    "compare with them)",
                    nvls != nullptr ? nvls : "unset"));
    notes_.push_back(
        "time: iters calls captured in one CUDA graph, warm-up replays, then rounds timed replays (CUDA events); "
        "per call = max over ranks of the per-rank median of replay time / iters");
    notes_.push_back(
        "--check: every algorithm against the float64 reference (NCCL's and nvrar's with P roundings of slack for "
        "NCCL's ring); bitwise agreement with rank 0 for NVRAR's algorithms (nvrar, oneshot, hierarchical, "
        "registered, nvrar-registered)");
    if (!built_with_nvshmem())
      notes_.push_back("no NVSHMEM in this build: 'hierarchical' is not offered and 'nvrar' runs NCCL");
    if (!comm_->supports(Algorithm::kRegistered))
      notes_.push_back(
          "'registered' and 'nvrar-registered' are not offered: the registered two-shot needs NVSHMEM, one node and "
          "NVLink between all ranks");
  } catch (...) {
    // Peers may not have reached the same point: free locally, leave the communicator alone.
    release(false);
    throw;
  }
}

GpuBackend::~GpuBackend() { release(!failed_); }

void GpuBackend::release(bool collective) noexcept {
  if (stream_ != nullptr && collective) cudaStreamSynchronize(stream_);
  if (collective && comm_ != nullptr) {
    // Deregistration is collective; it must come before the NCCL communicator goes.
    if (symmetric_out_window_ != nullptr) ncclCommWindowDeregister(comm_->nccl(), symmetric_out_window_);
    if (symmetric_in_window_ != nullptr) ncclCommWindowDeregister(comm_->nccl(), symmetric_in_window_);
    if (symmetric_out_ != nullptr) ncclMemFree(symmetric_out_);
    if (symmetric_in_ != nullptr) ncclMemFree(symmetric_in_);
    // free_buffer is collective too (and may throw); in reverse order of allocation.
    try {
      if (registered_out_ != nullptr) comm_->free_buffer(registered_out_);
      if (registered_in_ != nullptr) comm_->free_buffer(registered_in_);
    } catch (const std::exception&) {
      // Nothing to report to from a destructor; the heap goes with the communicator below.
    }
  }
  // Without a collective teardown the symmetric buffers stay registered with NCCL, hence allocated, and the
  // registered ones stay in NVRAR's heap, which the leaked communicator keeps.
  symmetric_out_window_ = symmetric_in_window_ = nullptr;
  symmetric_out_ = symmetric_in_ = nullptr;
  registered_out_ = registered_in_ = nullptr;
  if (gate_ != nullptr) cudaFree(gate_);
  if (scratch_ != nullptr) cudaFree(scratch_);
  if (out_ != nullptr) cudaFree(out_);
  if (in_ != nullptr) cudaFree(in_);
  if (stop_ != nullptr) cudaEventDestroy(stop_);
  if (start_ != nullptr) cudaEventDestroy(start_);
  if (stream_ != nullptr) cudaStreamDestroy(stream_);
  gate_ = scratch_ = out_ = in_ = nullptr;
  stop_ = start_ = nullptr;
  stream_ = nullptr;
  if (collective) {
    comm_.reset();
  } else {
    // Deliberately leaked: its teardown talks to peers that may never answer.
    static_cast<void>(comm_.release());
  }
}

// In the order a default run measures them. NVRAR's forced kernels take the library's names (algorithm_name), so a
// name here is the name NVRAR_ALGO, tuning tables and parse_algorithm use; nvrar (the library's auto),
// nvrar-registered and the NCCL anchors are the bench's own.
const std::vector<GpuBackend::Entry>& GpuBackend::entries() {
  auto forced = [](Algorithm a, bool registered, const char* summary) {
    Entry e;
    e.name = {algorithm_name(a), summary, ""};
    e.target.choice.algorithm = a;
    e.target.registered = registered;
    e.needs = a;
    return e;
  };
  auto own = [](const char* name, const char* alias, Target::Kind kind, bool registered, Algorithm needs,
                const char* summary) {
    Entry e;
    e.name = {name, summary, alias};
    e.target.kind = kind;
    e.target.registered = registered;
    e.needs = needs;
    return e;
  };
  static const std::vector<Entry> table = {
      own("nvrar", algorithm_name(Algorithm::kAuto), Target::kNvrar, false, Algorithm::kAuto,
          "NVRAR's own choice per size (tuning table, else cost model; NCCL above its range), cudaMalloc buffers"),
      forced(Algorithm::kOneShot, false,
             "one-shot: every rank pushes its input to every peer and sums locally (one NVLink domain)"),
      forced(Algorithm::kHierarchical, false,
             "reduce-scatter over NVLink, recursive doubling across nodes, all-gather (one node: the two-shot)"),
      forced(Algorithm::kLl128, false,
             "two-shot in 128-byte lines that carry their own flag (one NVLink domain, up to --ll128-max-bytes)"),
      forced(Algorithm::kPush, false, "two-shot of 16-byte units behind one flag per piece (one NVLink domain)"),
      forced(Algorithm::kRegistered, true,
             "zero-copy two-shot on input and output from Communicator::allocate_buffer (one NVLink domain)"),
      own("nvrar-registered", "", Target::kNvrar, true, Algorithm::kRegistered,
          "NVRAR's own choice on input and output from Communicator::allocate_buffer"),
      own("nccl", "", Target::kNccl, false, Algorithm::kAuto, "anchor: ncclAllReduce on cudaMalloc buffers"),
      own("nccl-symmetric", "", Target::kNcclSymmetric, false, Algorithm::kAuto,
          "anchor: ncclAllReduce on ncclMemAlloc buffers registered as NCCL_WIN_COLL_SYMMETRIC windows"),
  };
  return table;
}

std::vector<AlgorithmName> GpuBackend::algorithm_names() {
  std::vector<AlgorithmName> names;
  for (const Entry& e : entries()) names.push_back(e.name);
  return names;
}

std::vector<std::string> GpuBackend::algorithms() const {
  std::vector<std::string> names;
  for (const Entry& e : entries())
    if (e.needs == Algorithm::kAuto || comm_->supports(e.needs)) names.push_back(e.name.name);
  return names;
}

std::vector<std::string> GpuBackend::tuning_candidates(std::size_t bytes) const {
  std::vector<std::string> c;
  if (comm_->supports(Algorithm::kOneShot) && bytes <= comm_->oneshot_max_bytes())
    for (const char* shape : {"oneshot:t64", "oneshot:t128", "oneshot:t256", "oneshot:t512"}) c.emplace_back(shape);
  if (comm_->supports(Algorithm::kHierarchical)) {
    c.emplace_back("hierarchical:cells");
    c.emplace_back("hierarchical:bulk");
  }
  if (comm_->supports(Algorithm::kLl128) && bytes <= comm_->ll128_max_bytes())
    for (const char* shape : {"ll128:t256", "ll128:t512", "ll128:t1024"}) c.emplace_back(shape);
  // The push two-shot is a bandwidth form: below 1 MiB its flag round trips lose to LL128 (not worth the tuner's time).
  if (comm_->supports(Algorithm::kPush) && bytes >= (std::size_t{1} << 20) && bytes <= comm_->push_max_bytes())
    for (const char* shape : {"push:t256:p512", "push:t256:p1024", "push:t256:p2048"}) c.emplace_back(shape);
  c.emplace_back("nccl");
  return c;
}

std::size_t GpuBackend::max_bytes_for(const std::string& algorithm) const {
  if (algorithm.rfind("oneshot", 0) == 0) return std::min(max_bytes_, comm_->oneshot_max_bytes());
  if (algorithm.rfind("ll128", 0) == 0) return std::min(max_bytes_, comm_->ll128_max_bytes());
  if (algorithm.rfind("push", 0) == 0) return std::min(max_bytes_, comm_->push_max_bytes());
  return max_bytes_;
}

// "name[:option...]" with options t<threads>, b<blocks>, bulk, cells (NVRAR's algorithms only).
GpuBackend::Target GpuBackend::parse_target(const std::string& algorithm) const {
  const select::AlgorithmSpec spec = select::parse_algorithm_spec(algorithm);
  const auto offered = algorithms();
  if (std::find(offered.begin(), offered.end(), spec.name) == offered.end())
    throw Error(fmt::format("nvrar-bench: gpu backend: unknown algorithm '{}' (offered: {})", algorithm,
                            fmt::join(offered, ", ")));
  const auto entry = std::find_if(entries().begin(), entries().end(),
                                  [&](const Entry& e) { return e.name.name == spec.name; });
  Target t = entry->target;  // offered names are entries' names
  if (t.kind != Target::kNvrar && algorithm != spec.name)
    throw Error(fmt::format("nvrar-bench: '{}': NCCL takes no shape options", algorithm));
  t.choice.threads = spec.threads;
  t.choice.blocks = spec.blocks;
  t.choice.bulk = spec.bulk;
  t.choice.piece_units = spec.piece_units;
  return t;
}

Measurement GpuBackend::run(const std::string& algorithm, std::size_t count, DataType dtype, const RunConfig& config) {
  // Argument errors are the same on every rank: report them without giving up the communicator.
  const Target target = parse_target(algorithm);
  if (!dtype_valid(dtype)) throw Error(fmt::format("nvrar-bench: invalid dtype value {}", static_cast<int>(dtype)));
  const std::size_t bytes = count * dtype_size(dtype);
  if (count == 0 || bytes > max_bytes_)
    throw Error(fmt::format("nvrar-bench: gpu backend: message of {} bytes outside 1..{} (the sweep's max_bytes)",
                            bytes, max_bytes_));
  if (config.iters < 1 || config.rounds < 1 || config.warmup < 0)
    throw Error("nvrar-bench: gpu backend: iterations and rounds must be at least 1, warm-up at least 0");
  if (failed_) throw Error("nvrar-bench: gpu backend unusable after an earlier failure");

  try {
    return measure(target, count, dtype, config);
  } catch (const std::exception& e) {
    failed_ = true;
    throw Error(fmt::format("{} (algorithm {}, {} bytes of {})", e.what(), algorithm, bytes, dtype_name(dtype)));
  }
}

Measurement GpuBackend::measure(const Target& algo, std::size_t count, DataType dtype, const RunConfig& config) {
  const std::size_t bytes = count * dtype_size(dtype);
  const bool symmetric = algo.kind == Target::kNcclSymmetric;
  if (symmetric && symmetric_in_ == nullptr) allocate_symmetric();
  if (algo.registered && registered_in_ == nullptr) allocate_registered();
  void* in = symmetric ? symmetric_in_ : algo.registered ? registered_in_ : in_;
  void* out = symmetric ? symmetric_out_ : algo.registered ? registered_out_ : out_;

  host_in_.resize(bytes);
  check::fill_random(host_in_.data(), count, dtype, input_seed(config.seed, count, dtype), rank_);
  BENCH_CUDA_CHECK(rank_, cudaMemcpyAsync(in, host_in_.data(), bytes, cudaMemcpyHostToDevice, stream_));
  wait();

  Measurement m;
  // The first call runs eagerly: NCCL connects its channels lazily, which is best done outside a capture.
  if (config.check) {
    m.wrong = checked_call(algo, in, out, count, dtype, config);
    m.checked = true;
  } else {
    enqueue(algo, in, out, count, dtype);
    wait();
  }

  Graph g;
  // Thread-local mode: only this thread's unsafe calls may invalidate the capture, not those of NCCL's or
  // NVSHMEM's helper threads.
  BENCH_CUDA_CHECK(rank_, cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal));
  g.capturing = stream_;
  for (int i = 0; i < config.iters; ++i) enqueue(algo, in, out, count, dtype);
  g.capturing = nullptr;
  BENCH_CUDA_CHECK(rank_, cudaStreamEndCapture(stream_, &g.graph));
  BENCH_CUDA_CHECK(rank_, cudaGraphInstantiate(&g.exec, g.graph, 0));

  for (int i = 0; i < config.warmup; ++i) {
    BENCH_CUDA_CHECK(rank_, cudaGraphLaunch(g.exec, stream_));
    wait();
  }
  std::vector<double> per_call_us(static_cast<std::size_t>(config.rounds));
  for (double& t : per_call_us) {
    if (start_gate_) {
      BENCH_CUDA_CHECK(rank_, launch_spin(stream_, kGateSpinNs));
      BENCH_NCCL_CHECK(rank_, ncclAllReduce(gate_, gate_, 1, ncclInt32, ncclMax, comm_->nccl(), stream_));
    }
    BENCH_CUDA_CHECK(rank_, cudaEventRecord(start_, stream_));
    BENCH_CUDA_CHECK(rank_, cudaGraphLaunch(g.exec, stream_));
    BENCH_CUDA_CHECK(rank_, cudaEventRecord(stop_, stream_));
    wait();
    float ms = 0;
    BENCH_CUDA_CHECK(rank_, cudaEventElapsedTime(&ms, start_, stop_));
    t = static_cast<double>(ms) * 1e3 / config.iters;
  }
  m.time_us = max_over_ranks(median(per_call_us));
  return m;
}

void GpuBackend::enqueue(const Target& algo, const void* in, void* out, std::size_t count, DataType dtype) {
  switch (algo.kind) {
    case Target::kNvrar:
      comm_->allreduce(in, out, count, dtype, stream_, algo.choice);
      return;
    case Target::kNccl:
    case Target::kNcclSymmetric:
      BENCH_NCCL_CHECK(rank_, ncclAllReduce(in, out, count, nccl_data_type(dtype), ncclSum, comm_->nccl(), stream_));
      return;
  }
}

std::size_t GpuBackend::checked_call(const Target& algo, const void* in, void* out, std::size_t count, DataType dtype,
                                     const RunConfig& config) {
  const std::size_t bytes = count * dtype_size(dtype);
  const int p = comm_->size();
  // 0xFF bytes are NaN in all three types (0xA5 would be a valid number), and NaN never passes count_wrong.
  BENCH_CUDA_CHECK(rank_, cudaMemsetAsync(out, 0xFF, bytes, stream_));
  enqueue(algo, in, out, count, dtype);
  wait();
  host_out_.resize(bytes);
  BENCH_CUDA_CHECK(rank_, cudaMemcpyAsync(host_out_.data(), out, bytes, cudaMemcpyDeviceToHost, stream_));
  wait();

  // NVRAR's own algorithms promise identical bits everywhere; auto may hand large sizes to NCCL (a ring's roundings).
  const bool nvrar_kernel = algo.kind == Target::kNvrar && algo.choice.algorithm != Algorithm::kAuto;
  const bool bit_identical = algo.kind == Target::kNvrar;
  const int hierarchical = check::hierarchical_roundings(comm_->nodes());
  const int roundings = nvrar_kernel ? hierarchical : std::max(hierarchical, p);
  const check::Reference& ref = reference(count, dtype, config.seed);
  uint64_t wrong = check::count_wrong(host_out_.data(), ref, count, dtype, roundings, p);
  if (bit_identical) {
    const std::vector<uint64_t> hashes = all_gather(fnv1a(host_out_.data(), bytes));
    // Differs from rank 0 somewhere: the whole output is suspect (counted once, not on top of the reference).
    if (hashes[static_cast<std::size_t>(rank_)] != hashes[0]) wrong = count;
  }
  return static_cast<std::size_t>(sum_over_ranks(wrong));
}

const check::Reference& GpuBackend::reference(std::size_t count, DataType dtype, uint64_t seed) {
  const auto key = std::make_pair(count, dtype);
  const auto it = references_.find(key);
  if (it != references_.end()) return it->second;
  const int p = comm_->size();
  const std::size_t bytes = count * dtype_size(dtype);
  std::vector<std::vector<std::byte>> inputs(static_cast<std::size_t>(p));
  std::vector<const void*> pointers;
  for (int r = 0; r < p; ++r) {
    auto& input = inputs[static_cast<std::size_t>(r)];
    input.resize(bytes);
    check::fill_random(input.data(), count, dtype, input_seed(seed, count, dtype), r);
    pointers.push_back(input.data());
  }
  return references_.emplace(key, check::reference_sum(pointers, count, dtype)).first->second;
}

void GpuBackend::wait() {
  for (;;) {
    const cudaError_t e = cudaStreamQuery(stream_);
    if (e == cudaSuccess) break;
    if (e != cudaErrorNotReady)
      throw_call_error(rank_, "cudaStreamQuery(stream_)", __FILE__, __LINE__, cudaGetErrorString(e));
    // NCCL reports a failed peer connection or proxy here; cudaStreamSynchronize would wait forever.
    ncclResult_t async = ncclSuccess;
    BENCH_NCCL_CHECK(rank_, ncclCommGetAsyncError(comm_->nccl(), &async));
    if (async != ncclSuccess && async != ncclInProgress)
      throw_call_error(rank_, "ncclCommGetAsyncError(comm_->nccl())", __FILE__, __LINE__, nccl_cause(async));
    std::this_thread::sleep_for(std::chrono::microseconds(20));
  }
  // cudaErrorNotReady is a status, not a failure: make sure no later cudaGetLastError mistakes it for one.
  if (cudaPeekAtLastError() == cudaErrorNotReady) cudaGetLastError();
  comm_->synchronize(stream_);  // the stream is idle: returns at once, or reports an NVRAR kernel failure
}

void GpuBackend::allocate_symmetric() {
  // Windows must have the same size on every rank and a size aligned as NCCL requires.
  symmetric_bytes_ =
      (max_bytes_ + NCCL_WIN_REQUIRED_ALIGNMENT - 1) / NCCL_WIN_REQUIRED_ALIGNMENT * NCCL_WIN_REQUIRED_ALIGNMENT;
  BENCH_NCCL_CHECK(rank_, ncclMemAlloc(&symmetric_in_, symmetric_bytes_));
  BENCH_NCCL_CHECK(rank_, ncclMemAlloc(&symmetric_out_, symmetric_bytes_));
  BENCH_NCCL_CHECK(rank_, ncclCommWindowRegister(comm_->nccl(), symmetric_in_, symmetric_bytes_, &symmetric_in_window_,
                                                 NCCL_WIN_COLL_SYMMETRIC));
  BENCH_NCCL_CHECK(rank_, ncclCommWindowRegister(comm_->nccl(), symmetric_out_, symmetric_bytes_,
                                                 &symmetric_out_window_, NCCL_WIN_COLL_SYMMETRIC));
}

void GpuBackend::allocate_registered() {
  // Collective: every rank runs the same sweep, so every rank gets here at the same algorithm and size. Every rank
  // then passes the same offsets (0) into these buffers, as the registered two-shot requires.
  registered_in_ = comm_->allocate_buffer(max_bytes_);
  registered_out_ = comm_->allocate_buffer(max_bytes_);
}

double GpuBackend::max_over_ranks(double value) {
  BENCH_CUDA_CHECK(rank_, cudaMemcpyAsync(scratch_, &value, sizeof value, cudaMemcpyHostToDevice, stream_));
  BENCH_NCCL_CHECK(rank_, ncclAllReduce(scratch_, scratch_, 1, ncclFloat64, ncclMax, comm_->nccl(), stream_));
  BENCH_CUDA_CHECK(rank_, cudaMemcpyAsync(&value, scratch_, sizeof value, cudaMemcpyDeviceToHost, stream_));
  wait();
  return value;
}

uint64_t GpuBackend::sum_over_ranks(uint64_t value) {
  BENCH_CUDA_CHECK(rank_, cudaMemcpyAsync(scratch_, &value, sizeof value, cudaMemcpyHostToDevice, stream_));
  BENCH_NCCL_CHECK(rank_, ncclAllReduce(scratch_, scratch_, 1, ncclUint64, ncclSum, comm_->nccl(), stream_));
  BENCH_CUDA_CHECK(rank_, cudaMemcpyAsync(&value, scratch_, sizeof value, cudaMemcpyDeviceToHost, stream_));
  wait();
  return value;
}

std::vector<uint64_t> GpuBackend::all_gather(uint64_t value) {
  const auto p = static_cast<std::size_t>(comm_->size());
  std::vector<uint64_t> values(p, 0);
  uint64_t* slots = static_cast<uint64_t*>(scratch_);
  BENCH_CUDA_CHECK(rank_, cudaMemcpyAsync(slots + rank_, &value, sizeof value, cudaMemcpyHostToDevice, stream_));
  BENCH_NCCL_CHECK(rank_, ncclAllGather(slots + rank_, slots, 1, ncclUint64, comm_->nccl(), stream_));
  BENCH_CUDA_CHECK(rank_, cudaMemcpyAsync(values.data(), slots, p * sizeof value, cudaMemcpyDeviceToHost, stream_));
  wait();
  return values;
}

}  // namespace nvrar::bench
