// GPU backend of nvrar-bench, measurement: one (algorithm, size) timed as ../shared/BENCHMARKING.md prescribes,
// with CUDA graphs and the start gate, and the --check of its eager call against the float64 reference.
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
#include "bench/gpu_backend.h"
#include "bench/gpu_backend_checks.h"
#include "bench/start_gate.h"

#include <algorithm>

#include <fmt/format.h>

namespace nvrar::bench {

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

}  // namespace nvrar::bench
