// nvrar::Communicator::allreduce on GPUs, one process per GPU under mpirun, against a float64 reference, against
// ncclAllReduce and bit for bit across ranks. Not GoogleTest: the ranks are processes and every check that needs
// the others goes through the communicator's NCCL communicator.
//
//   mpirun -np 4 -x NVRAR_GPUS_PER_NODE=2 test_gpu_allreduce [--suite correctness|timeout|sanitizer]
//                                                             [--max-bytes 64MiB]
//
// --suite correctness (default)
//   matrix      counts 1, 2, 3, 5, 7, G-1, G+1, primes up to 1048579 and the largest counts of 64 MiB (and of
//               max_bytes) x fp32/bf16/fp16 x hierarchical/oneshot/ll128/push (up to their capacities)/auto,
//               in-place for every other count, and a few counts
//               with input and output one element off their alignment. Each call: float64 reference, within the
//               same tolerance of ncclAllReduce's result, guard bytes around the output untouched, input untouched,
//               output bytes identical on every rank.
//   eager       2000 back-to-back calls of random sizes, types, algorithms and placements on one stream with no
//               synchronisation in between, each with its own buffers; verified after one final synchronize.
//   rmsnorm     allreduce_add_rmsnorm (one-shot fused kernel, and all-reduce + residual/RMSNorm kernel for the other
//               algorithms), shapes up to 32 x 8192, x aliasing out, against a float64 definition; bitwise across ranks.
//   graph       100 such calls captured into one CUDA graph, replayed 20 times with fresh inputs, each replay verified.
//   registered  only where supports(kRegistered); buffers from Communicator::allocate_buffer (the suite sets
//               Options::buffer_bytes to what it allocates: 2 x max_bytes + 160 MiB). The input arena is registered,
//               the output arena registered too ("direct": sums stored into the peers' outputs) or from cudaMalloc
//               ("copy-out"); in-place calls take their input from the output arena.
//     errors    forcing the registered two-shot on a cudaMalloc input (out-of-place to a plain or registered output,
//               in-place) throws nvrar::Error naming allocate_buffer on every rank, and writes nothing.
//     matrix    the matrix's counts (up to max_bytes), in-place for every other count, misaligned cases, x fp32/bf16/
//               fp16 x registered/auto x both output placements, checked like the matrix (in-place calls of the forced
//               registered two-shot run out-of-place where the output arena is plain: their input would be plain).
//     eager     1000 random calls with both arenas registered, then 1000 with only the input arena registered, all
//               back to back without synchronisation; algorithms drawn from registered, auto, hierarchical and
//               oneshot (where it fits; a plain input takes auto instead of registered). Checked like eager.
//     graph     the same with 100 + 100 calls captured into one CUDA graph, replayed 20 times with fresh inputs.
// --suite timeout (>= 2 ranks)
//   the last rank never calls; every other rank must get an nvrar::Error from synchronize() within a few seconds
//   that says "timed out" and names the rank it waited for.
//   --algorithm hierarchical | oneshot | registered | ll128 | push (the waiting ranks' call; registered: on a
//   registered buffer).
// --suite mismatch (>= 2 ranks, registered two-shot)
//   rank 0 passes another offset into its registered buffer than the others; every rank must get an nvrar::Error
//   saying "called with another" and naming another rank, within a few seconds.
// --suite sanitizer
//   three small bf16 calls of each NVRAR algorithm (hierarchical, oneshot, ll128, push) eager and in a graph, 1 MiB
//   capacity: quick under compute-sanitizer.
//
// Exit status: 0 when every case passed on every rank, 1 otherwise or on an error, 77 (skipped) without a CUDA
// device (or, for the timeout suite, with one rank or without the hierarchical algorithm).
//
// Errors end the process with std::_Exit after printing: a failed communicator must not run NVSHMEM's collective
// finalisation, which would wait for peers that are gone or stuck (mpirun then ends the other ranks).
#include <cuda_runtime_api.h>
#include <nccl.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <memory>
#include <random>
#include <regex>
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

namespace {

using nvrar::Algorithm;
using nvrar::DataType;
using Clock = std::chrono::steady_clock;

// The rank named in error messages: the launcher's until the communicator exists, then the communicator's.
int g_rank = 0;

[[noreturn]] void hard_exit(int code) {
  // _Exit flushes nothing itself.
  std::fflush(stdout);
  std::fflush(stderr);
  std::_Exit(code);
}

// The timeout suite's way out. The communicator is left alone (its destructor would finalise NVSHMEM, a collective
// a failed communicator must not enter), but std::exit still runs the atexit handlers, among them the MPI_Finalize
// of an MPI bootstrap: under Open MPI a process that initialised MPI and ends with _Exit counts as "exiting
// improperly", which makes mpirun fail the job and kill the ranks that have not printed yet. Should anything at exit
// wait for a peer that never comes, the guard thread ends the process regardless.
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

// Every CUDA and NCCL call: a failure throws nvrar::Error naming the rank, the call, file:line and the cause.
#define CHECK_CUDA(call)                                                                     \
  do {                                                                                       \
    const cudaError_t check_cuda_e_ = (call);                                                \
    if (check_cuda_e_ != cudaSuccess) throw_cuda(check_cuda_e_, #call, __FILE__, __LINE__);  \
  } while (0)

#define CHECK_NCCL(call)                                                                     \
  do {                                                                                       \
    const ncclResult_t check_nccl_r_ = (call);                                               \
    if (check_nccl_r_ != ncclSuccess) throw_nccl(check_nccl_r_, #call, __FILE__, __LINE__);  \
  } while (0)

// ---- RAII for device resources ----
// While an exception unwinds, the process is on its way to hard_exit: releasing would synchronise with kernels that
// may never end (a stuck NCCL kernel), so the destructors leave everything to process exit then.

// Where a buffer's memory comes from: cudaMalloc, or Communicator::allocate_buffer (NVRAR's symmetric heap, which
// the registered two-shot reads and writes in place). allocate_buffer and free_buffer are collective: every rank
// creates and destroys its registered buffers in the same order with the same sizes, as the SPMD code below does.
enum class Memory { kPlain, kRegistered };

const char* memory_name(Memory m) { return m == Memory::kRegistered ? "registered" : "plain"; }

class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  // comm: the communicator of a registered buffer (unused for plain ones).
  explicit DeviceBuffer(std::size_t bytes, Memory memory = Memory::kPlain, nvrar::Communicator* comm = nullptr)
      : bytes_(bytes) {
    if (bytes_ == 0) return;
    if (memory == Memory::kRegistered) {
      ptr_ = comm->allocate_buffer(bytes_);
      comm_ = comm;
    } else {
      CHECK_CUDA(cudaMalloc(&ptr_, bytes_));
    }
  }
  DeviceBuffer(DeviceBuffer&& other) noexcept
      : ptr_(std::exchange(other.ptr_, nullptr)),
        bytes_(std::exchange(other.bytes_, 0)),
        comm_(std::exchange(other.comm_, nullptr)) {}
  DeviceBuffer& operator=(DeviceBuffer&& other) noexcept {
    std::swap(ptr_, other.ptr_);
    std::swap(bytes_, other.bytes_);
    std::swap(comm_, other.comm_);
    return *this;
  }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  // A registered buffer's owner has synchronised its calls: free_buffer requires them completed on every rank.
  ~DeviceBuffer() {
    if (ptr_ == nullptr || std::uncaught_exceptions() != 0) return;
    if (comm_ == nullptr) {
      cudaFree(ptr_);
      return;
    }
    try {
      comm_->free_buffer(ptr_);
    } catch (const std::exception& e) {  // a destructor must not throw; the run is over either way
      std::fprintf(stderr, "test_gpu_allreduce: rank %d: error: free_buffer: %s\n", g_rank, e.what());
      hard_exit(1);
    }
  }
  unsigned char* get() const { return static_cast<unsigned char*>(ptr_); }
  std::size_t bytes() const { return bytes_; }
  bool registered() const { return comm_ != nullptr; }

 private:
  void* ptr_ = nullptr;
  std::size_t bytes_ = 0;
  nvrar::Communicator* comm_ = nullptr;  // non-null: from comm_->allocate_buffer
};

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

class Graph {
 public:
  Graph() = default;
  Graph(const Graph&) = delete;
  Graph& operator=(const Graph&) = delete;
  ~Graph() {
    if (std::uncaught_exceptions() != 0) return;
    if (exec != nullptr) cudaGraphExecDestroy(exec);
    if (graph != nullptr) cudaGraphDestroy(graph);
  }
  cudaGraph_t graph = nullptr;
  cudaGraphExec_t exec = nullptr;
};

// ---- small helpers ----

constexpr DataType kTypes[] = {DataType::kFloat32, DataType::kBFloat16, DataType::kFloat16};
// Poisoned bytes before and after every output: a write out of bounds shows up as a changed guard. 256 is
// cudaMalloc's alignment, so an output placed after a guard keeps the alignment its case asks for.
constexpr std::size_t kGuard = 256;
constexpr unsigned char kPoison = 0xFF;  // all-ones is a NaN in fp32, bf16 and fp16: an unwritten element is wrong
constexpr int kMaxFailureLines = 20;
constexpr std::size_t k64MiB = std::size_t{64} << 20;

std::size_t esize(DataType dtype) { return nvrar::dtype_size(dtype); }

std::size_t align_up(std::size_t n, std::size_t a) { return (n + a - 1) / a * a; }

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

// What every rank needs to run and check calls.
struct Ctx {
  nvrar::Communicator* comm = nullptr;
  cudaStream_t stream = nullptr;
  int rank = 0;
  int size = 1;
  int roundings = 1;          // hierarchical_roundings(nodes): the error bound against the float64 reference
  bool hierarchical = true;   // this build has NVSHMEM (otherwise every call goes to NCCL)
  Algorithm timeout_algorithm = Algorithm::kHierarchical;  // --algorithm: what the timeout suite calls
};

// Largest count of `dtype` that `a` accepts on this communicator.
std::size_t capacity_of(const Ctx& ctx, Algorithm a, DataType dtype) {
  const std::size_t bytes = a == Algorithm::kOneShot        ? ctx.comm->oneshot_max_bytes()
                            : a == Algorithm::kLl128 ? ctx.comm->ll128_max_bytes()
                            : a == Algorithm::kPush  ? ctx.comm->push_max_bytes()
                                                            : ctx.comm->max_bytes();
  return bytes / esize(dtype);
}

// One all-reduce call of a case list. Offsets are filled in by whoever lays out the buffers.
struct Call {
  std::size_t count = 0;
  DataType dtype = DataType::kFloat32;
  Algorithm algorithm = Algorithm::kAuto;
  bool in_place = false;
  bool misaligned = false;  // input and output one element past an aligned address
  std::size_t in_at = 0;     // byte offset of the input in the input arena (out-of-place calls of a batch)
  std::size_t out_slot = 0;  // byte offset of the output slot [guard | (element) | data | guard] in the output arena

  std::size_t bytes() const { return count * esize(dtype); }
  std::size_t shift() const { return misaligned ? esize(dtype) : 0; }
  std::size_t slot_bytes() const { return kGuard + shift() + bytes() + kGuard; }
  std::size_t out_data() const { return out_slot + kGuard + shift(); }
};

// Case label prefix naming the arenas' memory: "" when both are plain.
std::string placement_label(Memory in_memory, Memory out_memory) {
  if (in_memory == Memory::kPlain && out_memory == Memory::kPlain) return "";
  return fmt::format("[in {}, out {}] ", memory_name(in_memory), memory_name(out_memory));
}

std::string describe(const Call& c) {
  return fmt::format("{} x {} {} {}{}", c.count, nvrar::dtype_name(c.dtype), nvrar::algorithm_name(c.algorithm),
                     c.in_place ? "in-place" : "out-of-place", c.misaligned ? " misaligned" : "");
}

// ---- per-case bookkeeping ----
// A case is one all-reduce call checked on every rank. It passes when every check passed on every rank. The final
// counts are taken on rank 0 after an NCCL sum of the per-case failure flags, so they count cases, not rank-cases.

struct CaseRecord {
  std::string label;
  std::vector<std::string> problems;  // this rank's; empty: passed here
  uint64_t hash = 0;                  // FNV-1a of the output bytes, compared across ranks
};

struct Section {
  explicit Section(std::string section_name) : name(std::move(section_name)) {}
  std::string name;
  std::vector<CaseRecord> cases;
  Clock::time_point start = Clock::now();
};

struct Totals {
  long passed = 0;
  long failed = 0;
  int lines = 0;  // failure lines printed by this rank so far
};

// Compares every case's output hash across ranks, sums the failure flags over ranks, and prints: rank 0 one line
// per failed case (the first kMaxFailureLines of the run) and the section summary; the other ranks their own
// problems, on stderr (rank 0 only knows that a case failed there, not why).
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

// ---- checks of one output ----

// Regenerates every rank's input of a call (fill_random with each rank's id) into `inputs` and returns the float64
// reference. O(P x count) host work.
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

// Checks an output slot as copied back ([guard | shift | data | guard]) against the reference and its guards.
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

// NVRAR's result against NCCL's, within the tolerance of both errors: hierarchical roundings + P (a ring's).
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

// ---- one call at a time, with its own synchronisation (the correctness matrix, the sanitizer's eager part) ----

class SingleCaseRunner {
 public:
  // Room for the largest call, one element of misalignment and the guards. The input and output arenas come from
  // cudaMalloc or allocate_buffer (an in-place call's input is its output, so it is registered when the output is);
  // NCCL's output is always plain.
  SingleCaseRunner(const Ctx& ctx, std::size_t max_bytes, Memory in_memory = Memory::kPlain,
                   Memory out_memory = Memory::kPlain)
      : ctx_(ctx),
        d_in_(arena_bytes(max_bytes), in_memory, ctx.comm),
        d_out_(arena_bytes(max_bytes), out_memory, ctx.comm),
        d_nccl_(arena_bytes(max_bytes)),
        label_prefix_(placement_label(in_memory, out_memory)) {}

  static std::size_t arena_bytes(std::size_t max_bytes) { return max_bytes + 2 * kGuard + 4; }
  // Whether call c's input lies in a registered arena.
  bool registered_input(const Call& c) const { return c.in_place ? d_out_.registered() : d_in_.registered(); }

  void run(Section& s, const Call& c, uint64_t seed, bool compare_nccl) {
    const std::size_t bytes = c.bytes();
    const nvrar::check::Reference ref = all_inputs_and_reference(ctx_, c, seed, inputs_);
    const unsigned char* mine = inputs_[ctx_.rank].data();
    unsigned char* in = d_in_.get() + kGuard + c.shift();
    unsigned char* out = d_out_.get() + kGuard + c.shift();
    unsigned char* nccl_out = d_nccl_.get() + kGuard + c.shift();
    cudaStream_t stream = ctx_.stream;

    // Every copy is on the test's stream: it is non-blocking, so nothing on the legacy default stream orders with it.
    CHECK_CUDA(cudaMemcpyAsync(in, mine, bytes, cudaMemcpyHostToDevice, stream));
    CHECK_CUDA(cudaMemsetAsync(d_out_.get(), kPoison, c.slot_bytes(), stream));
    if (c.in_place) CHECK_CUDA(cudaMemcpyAsync(out, in, bytes, cudaMemcpyDeviceToDevice, stream));
    ctx_.comm->allreduce(c.in_place ? out : in, out, c.count, c.dtype, stream, c.algorithm);
    if (compare_nccl) {
      CHECK_CUDA(cudaMemsetAsync(nccl_out, kPoison, bytes, stream));
      CHECK_NCCL(ncclAllReduce(in, nccl_out, c.count, nvrar::nccl_data_type(c.dtype), ncclSum, ctx_.comm->nccl(), stream));
    }
    ctx_.comm->synchronize(stream);

    h_slot_.resize(std::max(h_slot_.size(), c.slot_bytes()));
    h_in_after_.resize(std::max(h_in_after_.size(), bytes));
    CHECK_CUDA(cudaMemcpyAsync(h_slot_.data(), d_out_.get(), c.slot_bytes(), cudaMemcpyDeviceToHost, stream));
    CHECK_CUDA(cudaMemcpyAsync(h_in_after_.data(), in, bytes, cudaMemcpyDeviceToHost, stream));
    if (compare_nccl) {
      h_nccl_.resize(std::max(h_nccl_.size(), bytes));
      CHECK_CUDA(cudaMemcpyAsync(h_nccl_.data(), nccl_out, bytes, cudaMemcpyDeviceToHost, stream));
    }
    CHECK_CUDA(cudaStreamSynchronize(stream));

    CaseRecord rec;
    rec.label = label_prefix_ + describe(c);
    check_output(ctx_, c, h_slot_.data(), ref, rec.problems);
    // In-place calls never see d_in; it must be untouched all the same.
    if (std::memcmp(h_in_after_.data(), mine, bytes) != 0)
      rec.problems.push_back(c.in_place ? "a buffer the call was not given was modified" : "the input was modified");
    if (compare_nccl)
      check_against_nccl(ctx_, c, h_slot_.data() + kGuard + c.shift(), h_nccl_.data(), ref, rec.problems);
    rec.hash = fnv1a64(h_slot_.data() + kGuard + c.shift(), bytes);
    s.cases.push_back(std::move(rec));
  }

 private:
  const Ctx& ctx_;
  DeviceBuffer d_in_, d_out_, d_nccl_;
  std::string label_prefix_;
  std::vector<std::vector<unsigned char>> inputs_;
  std::vector<unsigned char> h_slot_, h_nccl_, h_in_after_;
};

// ---- many calls, each with its own buffers carved from two arenas (eager and graph suites) ----

class Batch {
 public:
  // The arenas come from cudaMalloc or allocate_buffer; in-place calls live in the output arena, so their input is
  // registered exactly when out_memory is. Every rank lays out the same calls alike: the same offsets everywhere,
  // as calls on registered buffers require.
  Batch(const Ctx& ctx, std::vector<Call> calls, Memory in_memory = Memory::kPlain,
        Memory out_memory = Memory::kPlain)
      : ctx_(ctx), calls_(std::move(calls)), in_memory_(in_memory), out_memory_(out_memory) {
    std::size_t in_bytes = 0, out_bytes = 0;
    for (Call& c : calls_) {
      if (!c.in_place) {
        c.in_at = in_bytes + c.shift();
        in_bytes = align_up(c.in_at + c.bytes(), kGuard);
      }
      c.out_slot = out_bytes;
      out_bytes = align_up(out_bytes + c.slot_bytes(), kGuard);
    }
    in_bytes = std::max(in_bytes, kGuard);
    d_in_ = DeviceBuffer(in_bytes, in_memory, ctx.comm);
    d_out_ = DeviceBuffer(out_bytes, out_memory, ctx.comm);
    h_in_.assign(in_bytes, 0);
    h_in_after_.assign(in_bytes, 0);
    h_out_.assign(out_bytes, kPoison);
    h_res_.assign(out_bytes, 0);
  }

  const std::vector<Call>& calls() const { return calls_; }
  std::size_t device_bytes() const { return d_in_.bytes() + d_out_.bytes(); }
  std::string placement() const { return placement_label(in_memory_, out_memory_); }

  // This rank's input of call i (seed seed_base + i) goes to its input buffer, or for an in-place call into its
  // output slot; every other output byte is poison. Enqueues the upload of both arenas on the stream.
  void upload_inputs(uint64_t seed_base) {
    std::fill(h_in_.begin(), h_in_.end(), 0);
    std::fill(h_out_.begin(), h_out_.end(), kPoison);
    for (std::size_t i = 0; i < calls_.size(); ++i) {
      const Call& c = calls_[i];
      unsigned char* dst = c.in_place ? h_out_.data() + c.out_data() : h_in_.data() + c.in_at;
      nvrar::check::fill_random(dst, c.count, c.dtype, seed_base + i, ctx_.rank);
    }
    CHECK_CUDA(cudaMemcpyAsync(d_in_.get(), h_in_.data(), h_in_.size(), cudaMemcpyHostToDevice, ctx_.stream));
    CHECK_CUDA(cudaMemcpyAsync(d_out_.get(), h_out_.data(), h_out_.size(), cudaMemcpyHostToDevice, ctx_.stream));
  }

  // Every call, back to back, nothing in between.
  void enqueue_calls() {
    for (const Call& c : calls_) {
      unsigned char* out = d_out_.get() + c.out_data();
      const unsigned char* in = c.in_place ? out : d_in_.get() + c.in_at;
      ctx_.comm->allreduce(in, out, c.count, c.dtype, ctx_.stream, c.algorithm);
    }
  }

  // After the calls have completed: copies both arenas back and adds one case per call to `s`.
  void verify(Section& s, uint64_t seed_base, const std::string& label_prefix) {
    CHECK_CUDA(cudaMemcpyAsync(h_res_.data(), d_out_.get(), h_res_.size(), cudaMemcpyDeviceToHost, ctx_.stream));
    CHECK_CUDA(cudaMemcpyAsync(h_in_after_.data(), d_in_.get(), h_in_after_.size(), cudaMemcpyDeviceToHost,
                               ctx_.stream));
    CHECK_CUDA(cudaStreamSynchronize(ctx_.stream));
    for (std::size_t i = 0; i < calls_.size(); ++i) {
      const Call& c = calls_[i];
      const nvrar::check::Reference ref = all_inputs_and_reference(ctx_, c, seed_base + i, inputs_);
      CaseRecord rec;
      rec.label = fmt::format("{}call {}: {}", label_prefix, i, describe(c));
      check_output(ctx_, c, h_res_.data() + c.out_slot, ref, rec.problems);
      if (!c.in_place && std::memcmp(h_in_after_.data() + c.in_at, h_in_.data() + c.in_at, c.bytes()) != 0)
        rec.problems.push_back("the input was modified");
      rec.hash = fnv1a64(h_res_.data() + c.out_data(), c.bytes());
      s.cases.push_back(std::move(rec));
    }
  }

 private:
  const Ctx& ctx_;
  std::vector<Call> calls_;
  Memory in_memory_, out_memory_;
  DeviceBuffer d_in_, d_out_;
  std::vector<unsigned char> h_in_, h_out_, h_res_, h_in_after_;
  std::vector<std::vector<unsigned char>> inputs_;
};

// The same sequence on every rank: drawn from a generator seeded identically everywhere. Counts are log-uniform in
// [1, max_count] (and within capacity), types uniform, half in-place, one in eight misaligned.
std::vector<Call> random_calls(const Ctx& ctx, int n, uint64_t seed, std::size_t max_count) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> log_count(0.0, std::log(static_cast<double>(max_count) + 1.0));
  std::vector<Call> calls;
  for (int i = 0; i < n; ++i) {
    Call c;
    c.dtype = kTypes[rng() % 3];
    const std::size_t capacity = ctx.comm->max_bytes() / esize(c.dtype);
    c.count = static_cast<std::size_t>(std::exp(log_count(rng)));
    c.count = std::clamp<std::size_t>(c.count, 1, std::min(max_count, capacity));
    const uint64_t pick = rng() % 5;
    c.algorithm = Algorithm::kAuto;
    if (pick == 0 && ctx.hierarchical) c.algorithm = Algorithm::kHierarchical;
    if (pick == 1 && ctx.comm->supports(Algorithm::kOneShot) && c.count <= capacity_of(ctx, Algorithm::kOneShot, c.dtype))
      c.algorithm = Algorithm::kOneShot;
    if (pick == 2 && ctx.comm->supports(Algorithm::kLl128) &&
        c.count <= capacity_of(ctx, Algorithm::kLl128, c.dtype))
      c.algorithm = Algorithm::kLl128;
    if (pick == 3 && ctx.comm->supports(Algorithm::kPush) &&
        c.count <= capacity_of(ctx, Algorithm::kPush, c.dtype))
      c.algorithm = Algorithm::kPush;
    c.in_place = rng() % 2 == 0;
    c.misaligned = rng() % 8 == 0;
    calls.push_back(c);
  }
  return calls;
}

// Inputs of batch b of a run are seeded from seed_base + b x kBatchSeedStride (more than any batch's calls).
constexpr uint64_t kBatchSeedStride = 100'000;

// Every batch's calls back to back on one stream (batch after batch), one synchronize, then every call verified.
void run_eager_batches(const Ctx& ctx, Section& s, const std::vector<Batch*>& batches, uint64_t seed_base) {
  for (std::size_t b = 0; b < batches.size(); ++b) batches[b]->upload_inputs(seed_base + b * kBatchSeedStride);
  for (Batch* batch : batches) batch->enqueue_calls();
  ctx.comm->synchronize(ctx.stream);
  for (std::size_t b = 0; b < batches.size(); ++b)
    batches[b]->verify(s, seed_base + b * kBatchSeedStride, batches[b]->placement());
}

void run_eager(const Ctx& ctx, Section& s, std::vector<Call> calls, uint64_t seed_base) {
  Batch batch(ctx, std::move(calls));
  run_eager_batches(ctx, s, {&batch}, seed_base);
}

// Captures every batch's calls into one graph (global capture mode: any unsafe CUDA call during capture is an
// error), then replays it `replays` times, each with fresh inputs (seed_base + 1000 x replay, then per batch as in
// run_eager) uploaded on the same stream.
void run_graph_batches(const Ctx& ctx, Section& s, const std::vector<Batch*>& batches, int replays,
                       uint64_t seed_base) {
  Graph g;
  CHECK_CUDA(cudaStreamBeginCapture(ctx.stream, cudaStreamCaptureModeGlobal));
  for (Batch* batch : batches) batch->enqueue_calls();
  CHECK_CUDA(cudaStreamEndCapture(ctx.stream, &g.graph));
  CHECK_CUDA(cudaGraphInstantiate(&g.exec, g.graph, 0));
  for (int k = 0; k < replays; ++k) {
    const uint64_t seed = seed_base + 1000 * static_cast<uint64_t>(k);
    for (std::size_t b = 0; b < batches.size(); ++b) batches[b]->upload_inputs(seed + b * kBatchSeedStride);
    CHECK_CUDA(cudaGraphLaunch(g.exec, ctx.stream));
    ctx.comm->synchronize(ctx.stream);
    for (std::size_t b = 0; b < batches.size(); ++b)
      batches[b]->verify(s, seed + b * kBatchSeedStride, fmt::format("replay {} {}", k, batches[b]->placement()));
  }
}

void run_graph(const Ctx& ctx, Section& s, std::vector<Call> calls, int replays, uint64_t seed_base) {
  Batch batch(ctx, std::move(calls));
  run_graph_batches(ctx, s, {&batch}, replays, seed_base);
}

// ---- suites ----

std::vector<Algorithm> algorithms(const Ctx& ctx) {
  std::vector<Algorithm> a;
  if (ctx.hierarchical) a.push_back(Algorithm::kHierarchical);
  if (ctx.comm->supports(Algorithm::kOneShot)) a.push_back(Algorithm::kOneShot);
  if (ctx.comm->supports(Algorithm::kLl128)) a.push_back(Algorithm::kLl128);
  if (ctx.comm->supports(Algorithm::kPush)) a.push_back(Algorithm::kPush);
  a.push_back(Algorithm::kAuto);
  return a;
}


// Counts of the matrix for one type: tiny ones, G +- 1 (uneven slices), primes, and the largest of 64 MiB and of
// the communicator's capacity (and 3 below them: a ragged last chunk). Over capacity or 0: left out.
std::vector<std::size_t> matrix_counts(const Ctx& ctx, DataType dtype) {
  const std::size_t G = static_cast<std::size_t>(ctx.comm->gpus_per_node());
  const std::size_t big = k64MiB / esize(dtype);
  const std::size_t capacity = ctx.comm->max_bytes() / esize(dtype);
  std::vector<std::size_t> counts = {1, 2, 3, 5, 7, G - 1, G + 1, 31, 97, 1000, 4097, 65537, 1048579, big - 3, big};
  counts.push_back(capacity);
  if (capacity > 3) counts.push_back(capacity - 3);
  std::erase_if(counts, [&](std::size_t n) { return n == 0 || n > capacity; });
  std::sort(counts.begin(), counts.end());
  counts.erase(std::unique(counts.begin(), counts.end()), counts.end());
  return counts;
}

// ---- fused all-reduce + residual add + RMSNorm ----
// x differs per rank; residual and weight are the same on every rank (as in tensor parallelism). Reference in
// float64 from the exact sum; the bound allows each rounding the kernel makes (sum, residual, normalised value,
// product with the weight) one unit roundoff of the values involved. Both outputs must be bitwise equal on all ranks.
struct RmsnormCase {
  std::size_t rows = 1;
  std::size_t hidden = 8;
  DataType dtype = DataType::kBFloat16;
  Algorithm algorithm = Algorithm::kAuto;
  bool x_is_out = false;  // x aliases out
};

void run_rmsnorm_case(const Ctx& ctx, Section& s, const RmsnormCase& k, uint64_t seed) {
  const std::size_t count = k.rows * k.hidden;
  const std::size_t es = esize(k.dtype);
  const std::size_t bytes = count * es;
  std::vector<std::vector<unsigned char>> xs(ctx.size, std::vector<unsigned char>(bytes));
  std::vector<const void*> ptrs;
  for (int r = 0; r < ctx.size; ++r) {
    nvrar::check::fill_random(xs[r].data(), count, k.dtype, seed, r);
    ptrs.push_back(xs[r].data());
  }
  const nvrar::check::Reference sum = nvrar::check::reference_sum(ptrs, count, k.dtype);
  std::vector<unsigned char> res(bytes), weight(k.hidden * es);
  nvrar::check::fill_random(res.data(), count, k.dtype, seed + 1, 0);
  nvrar::check::fill_random(weight.data(), k.hidden, k.dtype, seed + 2, 0);

  DeviceBuffer d_x(bytes), d_res(bytes), d_w(k.hidden * es), d_out(bytes);
  CHECK_CUDA(cudaMemcpyAsync(d_x.get(), xs[ctx.rank].data(), bytes, cudaMemcpyHostToDevice, ctx.stream));
  CHECK_CUDA(cudaMemcpyAsync(d_res.get(), res.data(), bytes, cudaMemcpyHostToDevice, ctx.stream));
  CHECK_CUDA(cudaMemcpyAsync(d_w.get(), weight.data(), k.hidden * es, cudaMemcpyHostToDevice, ctx.stream));
  CHECK_CUDA(cudaMemsetAsync(d_out.get(), kPoison, bytes, ctx.stream));
  void* x = d_x.get();
  void* out = k.x_is_out ? d_x.get() : d_out.get();
  const float eps = 1e-5f;
  ctx.comm->allreduce_add_rmsnorm(x, d_res.get(), d_w.get(), out, k.rows, k.hidden, eps, k.dtype, ctx.stream,
                                  k.algorithm);
  ctx.comm->synchronize(ctx.stream);
  std::vector<unsigned char> h_out(bytes), h_res(bytes), h_w(k.hidden * es);
  CHECK_CUDA(cudaMemcpy(h_out.data(), out, bytes, cudaMemcpyDeviceToHost));
  CHECK_CUDA(cudaMemcpy(h_res.data(), d_res.get(), bytes, cudaMemcpyDeviceToHost));
  CHECK_CUDA(cudaMemcpy(h_w.data(), d_w.get(), k.hidden * es, cudaMemcpyDeviceToHost));

  CaseRecord rec;
  rec.label = fmt::format("rmsnorm {} rows x {} {} {}{}", k.rows, k.hidden, nvrar::dtype_name(k.dtype),
                          nvrar::algorithm_name(k.algorithm), k.x_is_out ? " x=out" : "");
  const double u = k.dtype == DataType::kBFloat16 ? 1.0 / 256 : k.dtype == DataType::kFloat16 ? 1.0 / 2048 : 0x1p-24;
  // fp32 accumulation of P terms; NCCL's ring (and auto, which may choose it) rounds each of its P partial sums.
  const double acc = ctx.size * 0x1p-24;
  const int roundings = k.algorithm == Algorithm::kNccl || k.algorithm == Algorithm::kAuto
                            ? std::max(ctx.roundings, ctx.size)
                            : ctx.roundings;  // hierarchical: intra-node, fold and doubling roundings
  const double sum_u = roundings * u;
  // Smallest step of the type: results in the subnormal range are only that exact.
  const double tiny = k.dtype == DataType::kFloat16 ? 0x1p-24 : k.dtype == DataType::kBFloat16 ? 0x1p-133 : 0x1p-149;
  if (std::memcmp(h_w.data(), weight.data(), weight.size()) != 0) rec.problems.push_back("the weight was modified");
  int reported = 0;
  for (std::size_t row = 0; row < k.rows && reported < 3; ++row) {
    std::vector<double> r_ref(k.hidden), r_tol(k.hidden);
    double sumsq = 0;
    for (std::size_t j = 0; j < k.hidden; ++j) {
      const std::size_t i = row * k.hidden + j;
      const double rv = nvrar::check::element_as_double(res.data(), i, k.dtype);
      r_ref[j] = rv + sum.sum[i];
      // sum rounded (u |S| + fp32 accumulation), then the residual add rounded.
      r_tol[j] = (sum_u + acc) * sum.abs_sum[i] + u * (std::fabs(rv) + sum.abs_sum[i]) + tiny;
      sumsq += r_ref[j] * r_ref[j];
    }
    const double inv = 1.0 / std::sqrt(sumsq / static_cast<double>(k.hidden) + eps);
    for (std::size_t j = 0; j < k.hidden && reported < 3; ++j) {
      const std::size_t i = row * k.hidden + j;
      const double got_r = nvrar::check::element_as_double(h_res.data(), i, k.dtype);
      const double got_o = nvrar::check::element_as_double(h_out.data(), i, k.dtype);
      const double w = nvrar::check::element_as_double(weight.data(), j, k.dtype);
      const double want_o = w * r_ref[j] * inv;
      // Normalised value: the residual's error scaled, the norm's own error (a few u, relative), and two roundings.
      const double o_tol =
          std::fabs(w) * inv * (r_tol[j] + 4 * u * std::fabs(r_ref[j]) + tiny) + 2 * u * std::fabs(want_o) + tiny;
      if (!(std::fabs(got_r - r_ref[j]) <= r_tol[j])) {
        rec.problems.push_back(fmt::format("residual[{}][{}] = {} want {} (tol {:.3g})", row, j, got_r, r_ref[j], r_tol[j]));
        ++reported;
      } else if (!(std::fabs(got_o - want_o) <= o_tol)) {
        rec.problems.push_back(fmt::format("out[{}][{}] = {} want {} (tol {:.3g})", row, j, got_o, want_o, o_tol));
        ++reported;
      }
    }
  }
  rec.hash = fnv1a64(h_out.data(), bytes) ^ (fnv1a64(h_res.data(), bytes) * 31);
  s.cases.push_back(std::move(rec));
}

void run_rmsnorm(const Ctx& ctx, Totals& totals) {
  Section s{"allreduce_add_rmsnorm"};
  std::vector<Algorithm> algos = {Algorithm::kAuto, Algorithm::kNccl};
  if (ctx.hierarchical) algos.push_back(Algorithm::kHierarchical);
  if (ctx.comm->supports(Algorithm::kOneShot)) algos.push_back(Algorithm::kOneShot);
  if (ctx.comm->supports(Algorithm::kLl128)) algos.push_back(Algorithm::kLl128);
  if (ctx.comm->supports(Algorithm::kPush)) algos.push_back(Algorithm::kPush);
  const std::pair<std::size_t, std::size_t> shapes[] = {{1, 8}, {1, 4096}, {3, 1000}, {5, 2056}, {8, 8192}, {32, 8192}};
  uint64_t seed = 6'000'000;
  for (Algorithm a : algos)
    for (DataType dt : kTypes)
      for (const auto& [rows, hidden] : shapes) {
        if ((hidden * esize(dt)) % 16 != 0) continue;
        if (rows * hidden > capacity_of(ctx, a == Algorithm::kNccl ? Algorithm::kAuto : a, dt)) continue;
        for (bool alias : {false, true}) {
          if (alias && rows != 3 && rows != 8) continue;
          run_rmsnorm_case(ctx, s, RmsnormCase{rows, hidden, dt, a, alias}, seed);
          seed += 10;
        }
      }
  finish_section(ctx, s, totals);
}

// The matrix for one algorithm and type: every count of matrix_counts within capacity, in-place for every other one,
// then misaligned input and output: a tiny count, primes, and the largest that still fits with the shift.
// A forced registered two-shot needs a registered input: where the runner's in-place input (its output arena) is
// plain, those calls run out-of-place instead.
void run_matrix(const Ctx& ctx, Section& s, SingleCaseRunner& runner, Algorithm a, DataType dt, uint64_t& seed) {
  const std::size_t capacity = capacity_of(ctx, a, dt);
  auto run = [&](std::size_t count, bool in_place, bool misaligned) {
    Call c;
    c.count = count;
    c.dtype = dt;
    c.algorithm = a;
    c.in_place = in_place;
    c.misaligned = misaligned;
    if (a == Algorithm::kRegistered && !runner.registered_input(c)) c.in_place = false;
    runner.run(s, c, seed++, /*compare_nccl=*/true);
  };
  const std::vector<std::size_t> counts = matrix_counts(ctx, dt);
  for (std::size_t i = 0; i < counts.size(); ++i)
    if (counts[i] <= capacity) run(counts[i], i % 2 == 1, false);
  const std::size_t misaligned_counts[] = {3, 97, 4097, 1048579, std::min(k64MiB / esize(dt), capacity) - 3};
  int j = 0;
  for (std::size_t n : misaligned_counts)
    if (n != 0 && n <= capacity) run(n, j++ % 2 == 1, true);
}

// ---- registered buffers (Communicator::allocate_buffer, the zero-copy two-shot) ----
// Only where supports(kRegistered). The input arena is registered; the output arena either registered too
// (the "direct" form: sums stored straight into the peers' outputs) or plain (the "copy-out" form: through NVRAR's
// exchange area and a local copy). In-place calls take their input from the output arena.

// Calls of random_calls with algorithms drawn from the registered two-shot, auto, the hierarchical two-shot and the
// one-shot (where it fits; auto otherwise). A call whose input is plain (in-place with a plain output arena) takes
// auto instead of the forced registered two-shot, which would refuse it.
std::vector<Call> random_registered_calls(const Ctx& ctx, int n, uint64_t seed, std::size_t max_count,
                                          Memory out_memory) {
  std::vector<Call> calls = random_calls(ctx, n, seed, max_count);
  std::mt19937_64 rng(nvrar::check::mix_seed(seed));  // its own stream: the sizes stay those of random_calls
  for (Call& c : calls) {
    const bool registered_input = !c.in_place || out_memory == Memory::kRegistered;
    switch (rng() % 4) {
      case 0:
        c.algorithm = registered_input ? Algorithm::kRegistered : Algorithm::kAuto;
        break;
      case 1:
        c.algorithm = Algorithm::kAuto;
        break;
      case 2:
        c.algorithm = Algorithm::kHierarchical;
        break;
      default: {
        const bool fits =
            ctx.comm->supports(Algorithm::kOneShot) && c.count <= capacity_of(ctx, Algorithm::kOneShot, c.dtype);
        c.algorithm = fits ? Algorithm::kOneShot : Algorithm::kAuto;
        break;
      }
    }
  }
  return calls;
}

// Forcing the registered two-shot on an input outside allocate_buffer's buffers must throw nvrar::Error that
// points at allocate_buffer, before anything is enqueued: each rank decides alone (no collective), the buffers are
// left as they were, and the communicator stays usable (the sections after this one use it).
void run_registered_error_case(const Ctx& ctx, Section& s, Memory out_memory, bool in_place) {
  Call c;
  c.count = 4096;
  c.dtype = DataType::kFloat32;
  c.algorithm = Algorithm::kRegistered;
  c.in_place = in_place;
  const std::size_t bytes = c.bytes();
  DeviceBuffer d_in(bytes);
  DeviceBuffer d_out(bytes, out_memory, ctx.comm);
  std::vector<unsigned char> mine(bytes);
  nvrar::check::fill_random(mine.data(), c.count, c.dtype, 7'500'000, ctx.rank);
  unsigned char* in = in_place ? d_out.get() : d_in.get();
  CHECK_CUDA(cudaMemcpyAsync(in, mine.data(), bytes, cudaMemcpyHostToDevice, ctx.stream));
  if (!in_place) CHECK_CUDA(cudaMemsetAsync(d_out.get(), kPoison, bytes, ctx.stream));

  CaseRecord rec;
  rec.label = in_place ? std::string("error: in-place on a cudaMalloc buffer")
                       : fmt::format("error: cudaMalloc input, {} output", memory_name(out_memory));
  try {
    ctx.comm->allreduce(in, d_out.get(), c.count, c.dtype, ctx.stream, c.algorithm);
    rec.problems.push_back("no error: the registered two-shot accepted an input outside allocate_buffer's buffers");
  } catch (const nvrar::Error& e) {
    if (std::string(e.what()).find("allocate_buffer") == std::string::npos)
      rec.problems.push_back(fmt::format("the message does not mention allocate_buffer: {}", e.what()));
  } catch (const std::exception& e) {
    rec.problems.push_back(fmt::format("not an nvrar::Error: {}", e.what()));
  }
  ctx.comm->synchronize(ctx.stream);
  std::vector<unsigned char> h_in(bytes), h_out(bytes);
  CHECK_CUDA(cudaMemcpyAsync(h_in.data(), in, bytes, cudaMemcpyDeviceToHost, ctx.stream));
  CHECK_CUDA(cudaMemcpyAsync(h_out.data(), d_out.get(), bytes, cudaMemcpyDeviceToHost, ctx.stream));
  CHECK_CUDA(cudaStreamSynchronize(ctx.stream));
  if (std::memcmp(h_in.data(), mine.data(), bytes) != 0) rec.problems.push_back("the input was modified");
  if (!in_place && !all_bytes_are(h_out.data(), bytes, kPoison)) rec.problems.push_back("the output was written");
  s.cases.push_back(std::move(rec));  // hash 0 on every rank: nothing to compare
}

constexpr int kRegisteredEagerCalls = 1000;  // per batch; two batches
constexpr int kRegisteredGraphCalls = 100;   // per batch; two batches
constexpr std::size_t kRegisteredMaxCount = 262144;

// Options::buffer_bytes for the correctness suite: room for everything its registered sections allocate, added up
// (each section frees its buffers before the next allocates, but a sum leaves no doubt about fragmentation): the
// matrix's two arenas of max_bytes and the batches of the eager and graph sections, whose sizes are fixed by their
// seeds and kRegisteredMaxCount: 106 MiB (eager: 25 + 55 MiB direct, 26 MiB copy-out) and 9 MiB (graph) as laid
// out by Batch. Each arena is rounded up to 1 MiB and 45 MiB are left for the allocator's alignment.
std::size_t correctness_buffer_bytes(std::size_t max_bytes) {
  constexpr std::size_t kMiB = std::size_t{1} << 20;
  return 2 * align_up(SingleCaseRunner::arena_bytes(max_bytes), kMiB) + 160 * kMiB;
}

void run_registered(const Ctx& ctx, Totals& totals) {
  // 5a. Unregistered inputs refused.
  {
    Section s{"registered errors"};
    run_registered_error_case(ctx, s, Memory::kPlain, /*in_place=*/false);
    run_registered_error_case(ctx, s, Memory::kRegistered, /*in_place=*/false);
    run_registered_error_case(ctx, s, Memory::kPlain, /*in_place=*/true);
    finish_section(ctx, s, totals);
  }
  // 5b. The matrix on a registered input, with the output registered (direct) and plain (copy-out).
  {
    Section s{"registered matrix"};
    uint64_t seed = 7'000'000;
    for (Memory out_memory : {Memory::kRegistered, Memory::kPlain}) {
      SingleCaseRunner runner(ctx, ctx.comm->max_bytes(), Memory::kRegistered, out_memory);
      for (Algorithm a : {Algorithm::kRegistered, Algorithm::kAuto})
        for (DataType dt : kTypes) run_matrix(ctx, s, runner, a, dt, seed);
    }
    finish_section(ctx, s, totals);
  }
  // 5c. Back-to-back calls: a batch with both arenas registered, then one with only the input arena registered,
  // no synchronisation in between.
  {
    Section s{"registered eager"};
    Batch direct(ctx,
                 random_registered_calls(ctx, kRegisteredEagerCalls, /*seed=*/20250503, kRegisteredMaxCount,
                                         Memory::kRegistered),
                 Memory::kRegistered, Memory::kRegistered);
    Batch copy_out(ctx,
                   random_registered_calls(ctx, kRegisteredEagerCalls, /*seed=*/20250504, kRegisteredMaxCount,
                                           Memory::kPlain),
                   Memory::kRegistered, Memory::kPlain);
    run_eager_batches(ctx, s, {&direct, &copy_out}, 8'000'000);
    finish_section(ctx, s, totals);
  }
  // 5d. The same two kinds of batch captured into one CUDA graph, replayed with fresh inputs.
  {
    Section s{"registered graph"};
    Batch direct(ctx,
                 random_registered_calls(ctx, kRegisteredGraphCalls, /*seed=*/20250505, kRegisteredMaxCount,
                                         Memory::kRegistered),
                 Memory::kRegistered, Memory::kRegistered);
    Batch copy_out(ctx,
                   random_registered_calls(ctx, kRegisteredGraphCalls, /*seed=*/20250506, kRegisteredMaxCount,
                                           Memory::kPlain),
                   Memory::kRegistered, Memory::kPlain);
    run_graph_batches(ctx, s, {&direct, &copy_out}, /*replays=*/20, 9'000'000);
    finish_section(ctx, s, totals);
  }
}

int run_correctness(const Ctx& ctx, Totals& totals) {
  // 1. The matrix.
  {
    Section s{"matrix"};
    SingleCaseRunner runner(ctx, ctx.comm->max_bytes());
    uint64_t seed = 1'000'000;
    for (Algorithm a : algorithms(ctx))
      for (DataType dt : kTypes) run_matrix(ctx, s, runner, a, dt, seed);
    finish_section(ctx, s, totals);
  }
  // 2. Back-to-back eager calls.
  {
    Section s{"eager"};
    run_eager(ctx, s, random_calls(ctx, 2000, /*seed=*/20250501, /*max_count=*/262144), 2'000'000);
    finish_section(ctx, s, totals);
  }
  // 3. Fused all-reduce + residual + RMSNorm against its float64 definition.
  run_rmsnorm(ctx, totals);
  // 4. A CUDA graph of 100 calls, 20 replays.
  {
    Section s{"graph"};
    run_graph(ctx, s, random_calls(ctx, 100, /*seed=*/20250502, /*max_count=*/262144), 20, 3'000'000);
    finish_section(ctx, s, totals);
  }
  // 5. Registered buffers: refused inputs, the matrix, eager calls and a graph on allocate_buffer's memory.
  if (ctx.comm->supports(Algorithm::kRegistered)) {
    run_registered(ctx, totals);
  } else if (ctx.rank == 0) {
    fmt::print("test_gpu_allreduce: NOTE: no registered two-shot on this communicator: registered sections left out\n");
  }
  return 0;
}

int run_sanitizer(const Ctx& ctx, Totals& totals) {
  if (!ctx.hierarchical) {
    if (ctx.rank == 0) fmt::print("test_gpu_allreduce: SKIPPED (no NVSHMEM in this build: no NVRAR kernel to check)\n");
    return 77;
  }
  std::vector<Call> calls;
  for (std::size_t n : {std::size_t{1}, std::size_t{1000}, std::size_t{65537}}) {
    Call c;
    c.count = n;
    c.dtype = DataType::kBFloat16;
    c.algorithm = Algorithm::kHierarchical;
    c.in_place = n == 1000;
    calls.push_back(c);
    if (ctx.comm->supports(Algorithm::kOneShot)) {
      c.algorithm = Algorithm::kOneShot;
      calls.push_back(c);
    }
    if (ctx.comm->supports(Algorithm::kLl128)) {
      c.algorithm = Algorithm::kLl128;
      calls.push_back(c);
    }
    if (ctx.comm->supports(Algorithm::kPush)) {
      c.algorithm = Algorithm::kPush;
      calls.push_back(c);
    }
  }
  {
    Section s{"sanitizer eager"};
    SingleCaseRunner runner(ctx, ctx.comm->max_bytes());
    uint64_t seed = 4'000'000;
    // No ncclAllReduce comparison: the sanitizer run is about NVRAR's kernels.
    for (const Call& c : calls) runner.run(s, c, seed++, /*compare_nccl=*/false);
    finish_section(ctx, s, totals);
  }
  if (ctx.comm->supports(Algorithm::kOneShot)) {
    Section s{"sanitizer rmsnorm"};
    run_rmsnorm_case(ctx, s, RmsnormCase{3, 1000, DataType::kBFloat16, Algorithm::kOneShot, true}, 4'500'000);
    run_rmsnorm_case(ctx, s, RmsnormCase{2, 512, DataType::kFloat32, Algorithm::kHierarchical, false}, 4'500'100);
    finish_section(ctx, s, totals);
  }
  {
    Section s{"sanitizer graph"};
    run_graph(ctx, s, calls, /*replays=*/2, 5'000'000);
    finish_section(ctx, s, totals);
  }
  if (ctx.comm->supports(Algorithm::kRegistered)) {
    // The registered two-shot, direct (both arenas registered) and copy-out (input only), odd sizes, one in place.
    std::vector<Call> direct_calls, copy_out_calls;
    for (std::size_t n : {std::size_t{1}, std::size_t{1000}, std::size_t{65537}}) {
      Call c;
      c.count = n;
      c.dtype = DataType::kBFloat16;
      c.algorithm = Algorithm::kRegistered;
      c.in_place = n == 1000;
      direct_calls.push_back(c);
      c.in_place = false;
      copy_out_calls.push_back(c);
    }
    Section s{"sanitizer registered"};
    Batch direct(ctx, direct_calls, Memory::kRegistered, Memory::kRegistered);
    Batch copy_out(ctx, copy_out_calls, Memory::kRegistered, Memory::kPlain);
    run_eager_batches(ctx, s, {&direct, &copy_out}, 5'500'000);
    finish_section(ctx, s, totals);
  }
  return 0;
}

// The last rank never calls. Every other rank must see synchronize() throw nvrar::Error within kLimit, saying
// "timed out" and naming a rank other than itself (the one it waited for). No NCCL or NVSHMEM collective may follow
// (the communicator is unusable), so each rank prints its own verdict and leaves (see leave()): the exit statuses
// are the result (mpirun's is non-zero if any rank's is), and rank 0's final line counts rank 0's case only.
// --suite mismatch (registered two-shot): every rank calls, but rank 0 passes another offset into its registered
// buffer; every rank must fail within kLimit with "called with another", naming a rank other than itself.
[[noreturn]] void run_timeout(const Ctx& ctx, bool mismatch) {
  const std::size_t count = 4096;  // every rank owns a slice
  // Registered buffers are allocated collectively, so before the skipper leaves; twice the call for the offset.
  const bool registered = mismatch || ctx.timeout_algorithm == Algorithm::kRegistered;
  DeviceBuffer buf(2 * count * sizeof(float), registered ? Memory::kRegistered : Memory::kPlain, ctx.comm);
  const int skipper = mismatch ? -1 : ctx.size - 1;
  if (ctx.rank == skipper) {
    fmt::print("test_gpu_allreduce: rank {} skips its call on purpose\n", ctx.rank);
    std::fflush(stdout);
    // Long enough for the others to time out (300 ms) and report before this process goes.
    std::this_thread::sleep_for(std::chrono::seconds(2));
    leave(0);
  }
  // 300 ms timeout; the rest is kernel launch and first-call module loading, with a wide margin.
  constexpr auto kLimit = std::chrono::seconds(10);
  // A hang is the failure this suite exists to rule out: report it instead of waiting for the job's time limit.
  static std::atomic<bool> done{false};
  std::thread([rank = ctx.rank] {
    const auto deadline = Clock::now() + std::chrono::seconds(60);
    while (!done.load() && Clock::now() < deadline) std::this_thread::sleep_for(std::chrono::milliseconds(100));
    if (done.load()) return;
    fmt::print("  FAIL [timeout] rank {}: still waiting 60 s after the call: the missing peer was never detected\n",
               rank);
    if (rank == 0) fmt::print("test_gpu_allreduce: 0 passed, 1 failed\n");
    hard_exit(1);
  }).detach();

  CHECK_CUDA(cudaMemsetAsync(buf.get(), 0, buf.bytes(), ctx.stream));
  const auto t0 = Clock::now();
  bool got_error = false;
  std::string message;
  try {
    auto* data = reinterpret_cast<float*>(buf.get()) + (mismatch && ctx.rank == 0 ? count : 0);
    ctx.comm->allreduce(data, data, count, DataType::kFloat32, ctx.stream,
                        mismatch ? Algorithm::kRegistered : ctx.timeout_algorithm);
    ctx.comm->synchronize(ctx.stream);
  } catch (const nvrar::Error& e) {
    got_error = true;
    message = e.what();
  } catch (const std::exception& e) {
    message = fmt::format("(not an nvrar::Error) {}", e.what());
  }
  const auto elapsed = Clock::now() - t0;
  done.store(true);
  const long ms = static_cast<long>(std::chrono::duration_cast<std::chrono::milliseconds>(elapsed).count());

  int named_peer = -1;
  const std::regex rank_re("rank (\\d+)");
  for (auto it = std::sregex_iterator(message.begin(), message.end(), rank_re); it != std::sregex_iterator(); ++it) {
    const int r = std::stoi((*it)[1].str());
    if (r != ctx.rank) {
      named_peer = r;
      break;
    }
  }
  std::vector<std::string> problems;
  if (!got_error) problems.push_back(message.empty() ? "no error reported" : message);
  const char* const expected = mismatch ? "called with another" : "timed out";
  if (got_error && message.find(expected) == std::string::npos)
    problems.push_back(fmt::format("message lacks \"{}\"", expected));
  if (got_error && named_peer < 0) problems.push_back("message names no other rank");
  if (elapsed > kLimit) problems.push_back(fmt::format("reported after {} ms (limit {} s)", ms, kLimit.count()));
  std::string why;
  for (const std::string& p : problems) why += (why.empty() ? "" : "; ") + p;
  if (problems.empty())
    fmt::print("  rank {} PASS [{}] reported after {} ms, naming rank {}: {}\n", ctx.rank,
               mismatch ? "mismatch" : "timeout", ms, named_peer, message);
  else
    fmt::print("  rank {} FAIL [{}] {}; message: {}\n", ctx.rank, mismatch ? "mismatch" : "timeout", why,
               message.empty() ? "(none)" : message);
  if (ctx.rank == 0)
    fmt::print("test_gpu_allreduce: {} passed, {} failed\n", problems.empty() ? 1 : 0, problems.empty() ? 0 : 1);
  leave(problems.empty() ? 0 : 1);
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
