// test_gpu_allreduce's harness (harness.h) and its main: the command line, the communicator, the suites in order
// and the final "N passed, N failed" line. What the suites check: suites.h.
#include "harness.h"

#include <cuda_runtime_api.h>
#include <nccl.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "check/verify.h"
#include "nvrar/launch.h"
#include "nvrar/nvrar.h"
#include "nvrar/types.h"
#include "runners.h"
#include "suites.h"

namespace gpu_allreduce_test {

int g_rank = 0;

[[noreturn]] void hard_exit(int code) {
  // _Exit flushes nothing itself.
  std::fflush(stdout);
  std::fflush(stderr);
  std::_Exit(code);
}

[[noreturn]] void leave(int code) {
  std::fflush(stdout);
  std::fflush(stderr);
  std::thread([code] {
    std::this_thread::sleep_for(std::chrono::seconds(15));
    std::fputs("test_gpu_allreduce: exit handlers still running after 15 s; leaving without them\n", stderr);
    hard_exit(code);
  }).detach();
  std::exit(code);
}

[[noreturn]] void throw_cuda(cudaError_t e, const char* call, const char* file, int line) {
  throw nvrar::Error(fmt::format("test_gpu_allreduce: rank {} {} failed at {}:{}: {} ({})", g_rank, call, file, line,
                                 cudaGetErrorString(e), cudaGetErrorName(e)));
}

[[noreturn]] void throw_nccl(ncclResult_t r, const char* call, const char* file, int line) {
  throw nvrar::Error(fmt::format("test_gpu_allreduce: rank {} {} failed at {}:{}: {} ({})", g_rank, call, file, line,
                                 ncclGetErrorString(r), ncclGetLastError(nullptr)));
}

uint64_t fnv1a64(const unsigned char* p, std::size_t n) {
  uint64_t h = 14695981039346656037ull;  // FNV-1a 64-bit offset basis
  for (std::size_t i = 0; i < n; ++i) {
    h ^= p[i];
    h *= 1099511628211ull;  // FNV-1a 64-bit prime
  }
  return h;
}

bool all_bytes_are(const unsigned char* p, std::size_t n, unsigned char value) {
  for (std::size_t i = 0; i < n; ++i)
    if (p[i] != value) return false;
  return true;
}

std::size_t capacity_of(const Ctx& ctx, Algorithm a, DataType dtype) {
  const std::size_t bytes = a == Algorithm::kOneShot ? ctx.comm->oneshot_max_bytes()
                            : a == Algorithm::kLl128 ? ctx.comm->ll128_max_bytes()
                            : a == Algorithm::kPush  ? ctx.comm->push_max_bytes()
                                                     : ctx.comm->max_bytes();
  return bytes / esize(dtype);
}

std::string placement_label(Memory in_memory, Memory out_memory) {
  if (in_memory == Memory::kPlain && out_memory == Memory::kPlain) return "";
  return fmt::format("[in {}, out {}] ", memory_name(in_memory), memory_name(out_memory));
}

std::string describe(const Call& c) {
  return fmt::format("{} x {} {} {}{}", c.count, nvrar::dtype_name(c.dtype), nvrar::algorithm_name(c.algorithm),
                     c.in_place ? "in-place" : "out-of-place", c.misaligned ? " misaligned" : "");
}

void finish_section(const Ctx& ctx, Section& s, Totals& totals) {
  const std::size_t n = s.cases.size();
  const int P = ctx.size;
  std::vector<int32_t> fails_on(n, 0);
  if (n > 0) {
    std::vector<uint64_t> hashes(n);
    for (std::size_t i = 0; i < n; ++i) hashes[i] = s.cases[i].hash;
    DeviceBuffer d_hash(n * sizeof(uint64_t));
    DeviceBuffer d_all(n * P * sizeof(uint64_t));
    CHECK_CUDA(cudaMemcpyAsync(d_hash.get(), hashes.data(), n * sizeof(uint64_t), cudaMemcpyHostToDevice, ctx.stream));
    CHECK_NCCL(ncclAllGather(d_hash.get(), d_all.get(), n, ncclUint64, ctx.comm->nccl(), ctx.stream));
    std::vector<uint64_t> all(n * P);
    CHECK_CUDA(cudaMemcpyAsync(all.data(), d_all.get(), all.size() * sizeof(uint64_t), cudaMemcpyDeviceToHost,
                               ctx.stream));
    CHECK_CUDA(cudaStreamSynchronize(ctx.stream));
    for (std::size_t i = 0; i < n; ++i) {
      bool same = true;
      for (int r = 1; r < P; ++r) same = same && all[r * n + i] == all[i];
      if (same) continue;
      std::string h;
      for (int r = 0; r < P && r < 8; ++r)
        h += fmt::format("{}rank {}: {:016x}", r == 0 ? "" : ", ", r, all[r * n + i]);
      s.cases[i].problems.push_back("output bytes differ across ranks (" + h + ")");
    }

    for (std::size_t i = 0; i < n; ++i) fails_on[i] = s.cases[i].problems.empty() ? 0 : 1;
    DeviceBuffer d_flags(n * sizeof(int32_t));
    CHECK_CUDA(cudaMemcpyAsync(d_flags.get(), fails_on.data(), n * sizeof(int32_t), cudaMemcpyHostToDevice,
                               ctx.stream));
    CHECK_NCCL(ncclAllReduce(d_flags.get(), d_flags.get(), n, ncclInt32, ncclSum, ctx.comm->nccl(), ctx.stream));
    CHECK_CUDA(cudaMemcpyAsync(fails_on.data(), d_flags.get(), n * sizeof(int32_t), cudaMemcpyDeviceToHost,
                               ctx.stream));
    CHECK_CUDA(cudaStreamSynchronize(ctx.stream));
  }

  long failed = 0;
  for (std::size_t i = 0; i < n; ++i) {
    if (fails_on[i] == 0) continue;
    ++failed;
    const CaseRecord& c = s.cases[i];
    if (totals.lines >= kMaxFailureLines) continue;
    std::string mine;
    for (const std::string& p : c.problems) mine += (mine.empty() ? "" : "; ") + p;
    if (ctx.rank == 0) {
      ++totals.lines;
      fmt::print("  FAIL [{}] #{} {}: failed on {} of {} ranks; rank 0: {}\n", s.name, i, c.label, fails_on[i], P,
                 mine.empty() ? "passed (see the failing ranks' stderr)" : mine);
    } else if (!c.problems.empty()) {
      ++totals.lines;
      fmt::print(stderr, "  rank {} FAIL [{}] #{} {}: {}\n", ctx.rank, s.name, i, c.label, mine);
    }
  }
  const long passed = static_cast<long>(n) - failed;
  totals.passed += passed;
  totals.failed += failed;
  if (ctx.rank == 0) {
    const double seconds = std::chrono::duration<double>(Clock::now() - s.start).count();
    fmt::print("[{}] {} cases: {} passed, {} failed ({:.1f} s)\n", s.name, n, passed, failed, seconds);
    std::fflush(stdout);
  }
}

namespace {

// First element outside tolerance of `want` (element i of want_at), for the failure message.
template <typename Want>
std::string first_outside(const void* out, Want want_at, const std::vector<double>& abs_sum, const Call& c,
                          int roundings, int nranks) {
  for (std::size_t i = 0; i < c.count; ++i) {
    const double got = nvrar::check::element_as_double(out, i, c.dtype);
    const double want = want_at(i);
    const double tol = nvrar::check::tolerance(abs_sum[i], c.dtype, roundings, nranks);
    if (!(std::fabs(got - want) <= tol))
      return fmt::format("first at [{}]: got {:.9g}, want {:.9g} (tolerance {:.3g})", i, got, want, tol);
  }
  return "";
}

}  // namespace

nvrar::check::Reference all_inputs_and_reference(const Ctx& ctx, const Call& c, uint64_t seed,
                                                 std::vector<std::vector<unsigned char>>& inputs) {
  inputs.resize(ctx.size);
  std::vector<const void*> ptrs;
  for (int r = 0; r < ctx.size; ++r) {
    if (inputs[r].size() < c.bytes()) inputs[r].resize(c.bytes());
    nvrar::check::fill_random(inputs[r].data(), c.count, c.dtype, seed, r);
    ptrs.push_back(inputs[r].data());
  }
  return nvrar::check::reference_sum(ptrs, c.count, c.dtype);
}

void check_output(const Ctx& ctx, const Call& c, const unsigned char* slot, const nvrar::check::Reference& ref,
                  std::vector<std::string>& problems) {
  const unsigned char* out = slot + kGuard + c.shift();
  // Auto sends large messages to NCCL, whose ring rounds once per hop: allow P roundings there.
  const int roundings = c.algorithm == Algorithm::kAuto ? std::max(ctx.roundings, ctx.size) : ctx.roundings;
  const std::size_t wrong = nvrar::check::count_wrong(out, ref, c.count, c.dtype, roundings, ctx.size);
  if (wrong != 0) {
    const std::string first = first_outside(
        out, [&](std::size_t i) { return ref.sum[i]; }, ref.abs_sum, c, roundings, ctx.size);
    problems.push_back(fmt::format("{} of {} elements off the float64 reference (roundings {}), {}", wrong, c.count,
                                   roundings, first));
  }
  if (!all_bytes_are(slot, kGuard + c.shift(), kPoison)) problems.push_back("bytes before the output were written");
  if (!all_bytes_are(out + c.bytes(), kGuard, kPoison)) problems.push_back("bytes after the output were written");
}

void check_against_nccl(const Ctx& ctx, const Call& c, const unsigned char* out, const unsigned char* nccl_out,
                        const nvrar::check::Reference& ref, std::vector<std::string>& problems) {
  const int roundings = ctx.roundings + ctx.size;
  std::size_t outside = 0;
  for (std::size_t i = 0; i < c.count; ++i) {
    const double got = nvrar::check::element_as_double(out, i, c.dtype);
    const double want = nvrar::check::element_as_double(nccl_out, i, c.dtype);
    if (!(std::fabs(got - want) <= nvrar::check::tolerance(ref.abs_sum[i], c.dtype, roundings, ctx.size))) ++outside;
  }
  if (outside == 0) return;
  const std::string first = first_outside(
      out, [&](std::size_t i) { return nvrar::check::element_as_double(nccl_out, i, c.dtype); }, ref.abs_sum, c,
      roundings, ctx.size);
  problems.push_back(fmt::format("{} of {} elements off ncclAllReduce's result (roundings {}), {}", outside, c.count,
                                 roundings, first));
}

namespace {

class Stream {
 public:
  Stream() { CHECK_CUDA(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking)); }
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;
  ~Stream() {
    if (std::uncaught_exceptions() == 0) cudaStreamDestroy(stream_);
  }
  cudaStream_t get() const { return stream_; }

 private:
  cudaStream_t stream_ = nullptr;
};

int run_correctness(const Ctx& ctx, Totals& totals) {
  // 1. The matrix.
  run_matrix_section(ctx, totals);
  // 2. Back-to-back eager calls.
  run_eager_section(ctx, totals);
  // 3. Fused all-reduce + residual + RMSNorm against its float64 definition.
  run_rmsnorm(ctx, totals);
  // 4. A CUDA graph of 100 calls, 20 replays.
  run_graph_section(ctx, totals);
  // 5. Registered buffers: refused inputs, the matrix, eager calls and a graph on allocate_buffer's memory.
  if (ctx.comm->supports(Algorithm::kRegistered)) {
    run_registered(ctx, totals);
  } else if (ctx.rank == 0) {
    fmt::print("test_gpu_allreduce: NOTE: no registered two-shot on this communicator: registered sections left out\n");
  }
  return 0;
}

int run_suite(const std::string& suite, nvrar::Communicator& comm, Algorithm timeout_algorithm) {
  Stream stream;
  Ctx ctx;
  ctx.timeout_algorithm = timeout_algorithm;
  ctx.comm = &comm;
  ctx.stream = stream.get();
  ctx.rank = comm.rank();
  ctx.size = comm.size();
  ctx.roundings = nvrar::check::hierarchical_roundings(comm.nodes());
  ctx.hierarchical = nvrar::built_with_nvshmem();

  if (ctx.rank == 0) {
    int device = 0;
    cudaDeviceProp prop{};
    CHECK_CUDA(cudaGetDevice(&device));
    CHECK_CUDA(cudaGetDeviceProperties(&prop, device));
    fmt::print("test_gpu_allreduce: suite {}; {}; max_bytes {}; {}\n", suite, comm.describe(), comm.max_bytes(),
               prop.name);
    if (!ctx.hierarchical)
      fmt::print("test_gpu_allreduce: NOTE: no NVSHMEM in this build: hierarchical cases left out, auto runs NCCL\n");
    std::fflush(stdout);
  }

  if (suite == "timeout" || suite == "mismatch") {
    const Algorithm needed = suite == "mismatch" ? Algorithm::kRegistered : ctx.timeout_algorithm;
    if (ctx.size < 2 || !comm.supports(needed)) {
      if (ctx.rank == 0)
        fmt::print("test_gpu_allreduce: SKIPPED (the {} suite needs >= 2 ranks and the {} algorithm)\n", suite,
                   nvrar::algorithm_name(needed));
      return 77;
    }
    run_timeout(ctx, suite == "mismatch");
  }

  Totals totals;
  const int rc = suite == "sanitizer" ? run_sanitizer(ctx, totals) : run_correctness(ctx, totals);
  if (rc == 77) return rc;
  // Counted over cases (a case fails if it failed on any rank), the same on every rank after finish_section's sums.
  if (ctx.rank == 0) fmt::print("test_gpu_allreduce: {} passed, {} failed\n", totals.passed, totals.failed);
  std::fflush(stdout);
  std::fflush(stderr);
  return totals.failed == 0 ? 0 : 1;
}

}  // namespace

}  // namespace gpu_allreduce_test

using gpu_allreduce_test::correctness_buffer_bytes;
using gpu_allreduce_test::g_rank;
using gpu_allreduce_test::hard_exit;
using gpu_allreduce_test::k64MiB;
using gpu_allreduce_test::run_suite;

int main(int argc, char** argv) {
  CLI::App app{"Multi-process GPU test of nvrar::Communicator::allreduce (run under mpirun, one process per GPU)"};
  std::string suite = "correctness";
  std::size_t max_bytes = 0;
  app.add_option("--suite", suite, "correctness (default), timeout (>= 2 ranks), mismatch (>= 2 ranks) or sanitizer")
      ->check(CLI::IsMember({"correctness", "timeout", "mismatch", "sanitizer"}));
  std::string timeout_algorithm = "hierarchical";
  app.add_option("--algorithm", timeout_algorithm, "timeout suite: the algorithm the waiting ranks call")
      ->check(CLI::IsMember({"hierarchical", "oneshot", "registered", "ll128", "push"}));
  bool from_nccl = false;
  app.add_flag("--from-nccl", from_nccl,
               "test a communicator adopted with Communicator::from_nccl from another one's NCCL communicator");
  CLI::Option* max_bytes_opt =
      app.add_option("--max-bytes", max_bytes, "communicator capacity, e.g. 64MiB (default 64 MiB; sanitizer 1 MiB)")
          ->transform(CLI::AsSizeValue(false));
  CLI11_PARSE(app, argc, argv);

  try {
    g_rank = nvrar::detect_launch().rank;
  } catch (const std::exception&) {
    // A malformed launcher environment is create()'s to report.
  }
  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
    fmt::print("test_gpu_allreduce: SKIPPED (no CUDA device)\n");
    return 77;
  }

  nvrar::Options options;
  options.max_bytes = suite == "sanitizer" ? std::size_t{1} << 20 : k64MiB;
  if (*max_bytes_opt) options.max_bytes = max_bytes;
  if (suite == "timeout" || suite == "mismatch") options.timeout_ms = 300;
  if (suite == "correctness") options.buffer_bytes = correctness_buffer_bytes(options.max_bytes);

  // Outside the try: on an error the communicator is never destroyed (see hard_exit).
  std::unique_ptr<nvrar::Communicator> base;
  std::unique_ptr<nvrar::Communicator> comm;
  int rc = 1;
  try {
    comm = nvrar::Communicator::create(options);
    g_rank = comm->rank();
    if (from_nccl) {  // an engine's own NCCL communicator, adopted; `base` keeps owning it
      base = std::move(comm);
      comm = nvrar::Communicator::from_nccl(base->nccl(), options);
      if (g_rank == 0) fmt::print("test_gpu_allreduce: communicator adopted with from_nccl: {}\n", comm->describe());
    }
    rc = run_suite(suite, *comm, nvrar::parse_algorithm(timeout_algorithm));
  } catch (const std::exception& e) {
    fmt::print(stderr, "test_gpu_allreduce: rank {}: error: {}\n", g_rank, e.what());
    hard_exit(1);
  }
  comm.reset();
  base.reset();
  return rc;
}
