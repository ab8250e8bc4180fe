// The harness of test_gpu_allreduce: what every section of the test shares. The process (error and exit helpers,
// the CUDA/NCCL check macros, the rank named in messages), device buffers, the description of one call (Call), the
// per-case bookkeeping with its report (Section, finish_section: the "FAIL" lines, the section summaries and the
// pass/fail totals behind the final "N passed, N failed" line) and the checks of one output against the float64
// reference and against ncclAllReduce. The command line and the suites' order are in harness.cpp; the sections
// themselves in one file each (suites.h lists them).
//
// Errors end the process with std::_Exit after printing: a failed communicator must not run NVSHMEM's collective
// finalisation, which would wait for peers that are gone or stuck (mpirun then ends the other ranks).
#pragma once

#include <cuda_runtime_api.h>
#include <nccl.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <string>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "check/verify.h"
#include "nvrar/nvrar.h"
#include "nvrar/types.h"

namespace gpu_allreduce_test {

using nvrar::Algorithm;
using nvrar::DataType;
using Clock = std::chrono::steady_clock;

// The rank named in error messages: the launcher's until the communicator exists, then the communicator's.
extern int g_rank;

// Ends the process at once (after flushing): see the note at the top.
[[noreturn]] void hard_exit(int code);

// The timeout suite's way out. The communicator is left alone (its destructor would finalise NVSHMEM, a collective
// a failed communicator must not enter), but std::exit still runs the atexit handlers, among them the MPI_Finalize
// of an MPI bootstrap: under Open MPI a process that initialised MPI and ends with _Exit counts as "exiting
// improperly", which makes mpirun fail the job and kill the ranks that have not printed yet. Should anything at exit
// wait for a peer that never comes, the guard thread ends the process regardless.
[[noreturn]] void leave(int code);

[[noreturn]] void throw_cuda(cudaError_t e, const char* call, const char* file, int line);
[[noreturn]] void throw_nccl(ncclResult_t r, const char* call, const char* file, int line);

// The macros call throw_cuda/throw_nccl unqualified: use them inside namespace gpu_allreduce_test.
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

inline const char* memory_name(Memory m) { return m == Memory::kRegistered ? "registered" : "plain"; }

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

// ---- small helpers ----

constexpr DataType kTypes[] = {DataType::kFloat32, DataType::kBFloat16, DataType::kFloat16};
// Poisoned bytes before and after every output: a write out of bounds shows up as a changed guard. 256 is
// cudaMalloc's alignment, so an output placed after a guard keeps the alignment its case asks for.
constexpr std::size_t kGuard = 256;
constexpr unsigned char kPoison = 0xFF;  // all-ones is a NaN in fp32, bf16 and fp16: an unwritten element is wrong
constexpr int kMaxFailureLines = 20;
constexpr std::size_t k64MiB = std::size_t{64} << 20;

inline std::size_t esize(DataType dtype) { return nvrar::dtype_size(dtype); }

inline std::size_t align_up(std::size_t n, std::size_t a) { return (n + a - 1) / a * a; }

// 64-bit FNV-1a of n bytes: the output hash compared across ranks.
uint64_t fnv1a64(const unsigned char* p, std::size_t n);

bool all_bytes_are(const unsigned char* p, std::size_t n, unsigned char value);

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
std::size_t capacity_of(const Ctx& ctx, Algorithm a, DataType dtype);

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
std::string placement_label(Memory in_memory, Memory out_memory);

// "count x dtype algorithm in-place|out-of-place [misaligned]": a case's label.
std::string describe(const Call& c);

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
void finish_section(const Ctx& ctx, Section& s, Totals& totals);

// ---- checks of one output ----

// Regenerates every rank's input of a call (fill_random with each rank's id) into `inputs` and returns the float64
// reference. O(P x count) host work.
nvrar::check::Reference all_inputs_and_reference(const Ctx& ctx, const Call& c, uint64_t seed,
                                                 std::vector<std::vector<unsigned char>>& inputs);

// Checks an output slot as copied back ([guard | shift | data | guard]) against the reference and its guards.
void check_output(const Ctx& ctx, const Call& c, const unsigned char* slot, const nvrar::check::Reference& ref,
                  std::vector<std::string>& problems);

// NVRAR's result against NCCL's, within the tolerance of both errors: hierarchical roundings + P (a ring's).
void check_against_nccl(const Ctx& ctx, const Call& c, const unsigned char* out, const unsigned char* nccl_out,
                        const nvrar::check::Reference& ref, std::vector<std::string>& problems);

}  // namespace gpu_allreduce_test
