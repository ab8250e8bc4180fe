// Public vocabulary shared by every NVRAR entry point: element types, algorithms and launch shapes, errors.
#pragma once

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>

namespace nvrar {

// Element types of an all-reduce. Reduction is always a sum accumulated in fp32.
enum class DataType : int { kFloat32 = 0, kBFloat16 = 1, kFloat16 = 2 };

// Bytes per element; throws nvrar::Error for a value outside the enum (e.g. from the C API).
std::size_t dtype_size(DataType dtype);
// "float32", "bfloat16", "float16" (the names nccl-tests prints are in the bench tool).
const char* dtype_name(DataType dtype);
// True for the three types above.
bool dtype_valid(DataType dtype);

// Algorithms of the GPU communicator (nvrar.h: algorithm_name, parse_algorithm).
enum class Algorithm : int {
  kAuto = 0,          // the tuner's choice for the size and topology (tuning table, else the cost model)
  kHierarchical = 1,  // reduce-scatter over NVLink, recursive doubling across nodes, all-gather over NVLink
                      // (on one node: the two-shot all-reduce)
  kNccl = 2,          // ncclAllReduce on the communicator's NCCL communicator
  kOneShot = 3,       // every rank pushes its input to every other, then sums locally (one NVLink domain only)
  kRegistered = 4,  // zero-copy two-shot: each rank reduces its slice by loading it from every peer's input
                           // in place, then stores the sums into every peer's output (one NVLink domain only; the
                           // input must lie in a buffer from allocate_buffer(); the output anywhere, up to
                           // Options::max_bytes unless it lies in such a buffer too)
  kLl128 = 5,  // two-shot over NVLink in 128-byte lines that carry their own flag: no copy-in, no barrier;
                      // inputs and outputs anywhere (one NVLink domain only, up to Options::ll128_max_bytes)
  kPush = 6,  // two-shot over NVLink moving plain 16-byte units behind one flag per piece (8 KB): the
                     // bandwidth form for large messages, inputs and outputs anywhere (one NVLink domain only, up
                     // to Options::ll128_max_bytes)
  // The names before 2026-12-04, kept for callers' source compatibility.
  kTwoShotRegistered [[deprecated("use Algorithm::kRegistered")]] = kRegistered,
  kTwoShotLl128 [[deprecated("use Algorithm::kLl128")]] = kLl128,
  kTwoShotPush [[deprecated("use Algorithm::kPush")]] = kPush,
};

constexpr int kAlgorithmCount = 7;  // values of Algorithm, kAuto included (one more with each new algorithm)

// "auto", "hierarchical", "nccl", "oneshot", "registered", "ll128", "push": the one name of each algorithm, used by
// the CLI, tuning tables, NVRAR_ALGO and the docs.
const char* algorithm_name(Algorithm a);
// Parses an algorithm_name() (also the older spellings "twoshot", "twoshot-registered", "twoshot-ll128",
// "twoshot-push"); throws nvrar::Error naming the accepted names otherwise.
Algorithm parse_algorithm(const std::string& name);

// An algorithm with its launch shape. Zeros (and bulk -1) leave the choice to the kernel; the tuner fills them.
struct Choice {
  Algorithm algorithm = Algorithm::kAuto;
  int threads = 0;  // threads per block (multiple of 32)
  int blocks = 0;   // blocks per grid
  int bulk = -1;    // hierarchical: 1 plain data + chunk flags, 0 flagged cells, -1 by NVRAR_BULK_MIN_BYTES
  int piece_units = 0;  // push: 16-byte units per piece (a multiple of 128, the same on every rank); 0:
                        // NVRAR_PUSH_PIECE_UNITS
};

// Every failure NVRAR reports is an nvrar::Error whose message names the rank, the call and the cause,
// e.g. "nvrar: rank 3 allreduce: count 9000000 exceeds the communicator's capacity of 8388608 elements".
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace nvrar
