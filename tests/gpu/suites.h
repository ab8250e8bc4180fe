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
//               algorithms), shapes up to 32 x 8192, x aliasing out, against a float64 definition; bitwise across
//               ranks.
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
// The harness: harness.{h,cpp} (with main) and runners.{h,cpp}; each section below: its own file, named in its
// entry's comment.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "harness.h"
#include "runners.h"

namespace gpu_allreduce_test {

// ---- matrix.cpp ----

// The "matrix" section: every algorithm of algorithms() x fp32/bf16/fp16 through run_matrix.
void run_matrix_section(const Ctx& ctx, Totals& totals);

// The matrix for one algorithm and type: every count of matrix_counts within capacity, in-place for every other one,
// then misaligned input and output: a tiny count, primes, and the largest that still fits with the shift.
// A forced registered two-shot needs a registered input: where the runner's in-place input (its output arena) is
// plain, those calls run out-of-place instead.
void run_matrix(const Ctx& ctx, Section& s, SingleCaseRunner& runner, Algorithm a, DataType dt, uint64_t& seed);

// ---- eager.cpp ----

// The "eager" section: 2000 random calls back to back.
void run_eager_section(const Ctx& ctx, Totals& totals);

// Every batch's calls back to back on one stream (batch after batch), one synchronize, then every call verified.
void run_eager_batches(const Ctx& ctx, Section& s, const std::vector<Batch*>& batches, uint64_t seed_base);

// run_eager_batches of one batch of plain buffers.
void run_eager(const Ctx& ctx, Section& s, std::vector<Call> calls, uint64_t seed_base);

// ---- graph.cpp ----

// The "graph" section: 100 random calls in one CUDA graph, 20 replays.
void run_graph_section(const Ctx& ctx, Totals& totals);

// Captures every batch's calls into one graph (global capture mode: any unsafe CUDA call during capture is an
// error), then replays it `replays` times, each with fresh inputs (seed_base + 1000 x replay, then per batch as in
// run_eager) uploaded on the same stream.
void run_graph_batches(const Ctx& ctx, Section& s, const std::vector<Batch*>& batches, int replays,
                       uint64_t seed_base);

// run_graph_batches of one batch of plain buffers.
void run_graph(const Ctx& ctx, Section& s, std::vector<Call> calls, int replays, uint64_t seed_base);

// ---- rmsnorm.cpp ----

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

// One case: a section entry checked against the float64 definition, its outputs hashed across ranks.
void run_rmsnorm_case(const Ctx& ctx, Section& s, const RmsnormCase& k, uint64_t seed);

// The "allreduce_add_rmsnorm" section: every algorithm x type x shape (and x aliasing out for some).
void run_rmsnorm(const Ctx& ctx, Totals& totals);

// ---- registered.cpp ----

// The "registered errors", "registered matrix", "registered eager" and "registered graph" sections (only where
// supports(kRegistered)).
void run_registered(const Ctx& ctx, Totals& totals);

// Options::buffer_bytes for the correctness suite: room for everything its registered sections allocate, added up
// (each section frees its buffers before the next allocates, but a sum leaves no doubt about fragmentation): the
// matrix's two arenas of max_bytes and the batches of the eager and graph sections, whose sizes are fixed by their
// seeds and kRegisteredMaxCount: 106 MiB (eager: 25 + 55 MiB direct, 26 MiB copy-out) and 9 MiB (graph) as laid
// out by Batch. Each arena is rounded up to 1 MiB and 45 MiB are left for the allocator's alignment.
std::size_t correctness_buffer_bytes(std::size_t max_bytes);

// ---- sanitizer.cpp ----

// --suite sanitizer: its sections; 77 (skipped) without NVSHMEM.
int run_sanitizer(const Ctx& ctx, Totals& totals);

// ---- timeout.cpp ----

// The last rank never calls. Every other rank must see synchronize() throw nvrar::Error within kLimit, saying
// "timed out" and naming a rank other than itself (the one it waited for). No NCCL or NVSHMEM collective may follow
// (the communicator is unusable), so each rank prints its own verdict and leaves (see leave()): the exit statuses
// are the result (mpirun's is non-zero if any rank's is), and rank 0's final line counts rank 0's case only.
// --suite mismatch (registered two-shot): every rank calls, but rank 0 passes another offset into its registered
// buffer; every rank must fail within kLimit with "called with another", naming a rank other than itself.
[[noreturn]] void run_timeout(const Ctx& ctx, bool mismatch);

}  // namespace gpu_allreduce_test
