// What nvrar-bench needs from a place that can run all-reduces: the CPU executor (ranks as threads, in this
// process) or GPUs (one MPI process per GPU). The driver (nvrar_bench.cpp) owns the sweep and the report; a
// backend only knows how to time and check one (algorithm, size, dtype) point.
//
// A backend whose ranks are separate processes runs the same driver on every rank: every call below is then
// collective (all ranks call it in the same order with the same arguments), and only is_root() prints.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "nvrar/types.h"

namespace nvrar::bench {

// How one point is measured: `warmup` untimed calls, then `rounds` rounds of `iters` back-to-back timed calls.
struct RunConfig {
  int warmup = 2;
  int iters = 5;
  int rounds = 3;
  // Verify the output of one (untimed) call against the float64 reference and rank 0's output.
  bool check = false;
  // Base of the input seeds; each size, round and check call derives its own, so inputs are fresh every time.
  uint64_t seed = 0x5EED;
};

// One name --algorithms accepts, with a few words for --help. Each backend keeps a single list of these (with what
// it needs to run each one): its algorithms(), its parsing of names and the help text all read that list.
struct AlgorithmName {
  std::string name;
  std::string summary;
  std::string alias;  // the library's name for it where the bench's differs (accepted as well), else empty
  bool takes_shape = false;  // whether "name:options" (a launch shape, select::parse_algorithm_spec) is accepted
};

struct Measurement {
  double time_us = 0;     // per call: max over ranks of the per-rank median over rounds of the round's mean
  std::size_t wrong = 0;  // wrong elements, summed over ranks (0 when not checked)
  bool checked = false;   // whether `wrong` means anything
};

class Backend {
 public:
  virtual ~Backend() = default;

  // "host", "gpu": the value of --backend that picks it.
  virtual std::string name() const = 0;
  // One line naming the hardware, e.g. "4 x NVIDIA H100 80GB HBM3" or the CPU model; goes in the header.
  virtual std::string device() const = 0;
  virtual int ranks() const = 0;
  virtual int gpus_per_node() const = 0;
  virtual int nodes() const = 0;
  // Largest message (bytes) run() accepts.
  virtual std::size_t max_bytes() const = 0;
  // Algorithms run() accepts, in the order a default run measures them; the first is the reference of ratios.
  // A subset of algorithm_names(name()): those this communicator supports.
  virtual std::vector<std::string> algorithms() const = 0;
  // Only the root prints and writes files.
  virtual bool is_root() const = 0;
  // Extra '#' header lines (memory use, caveats); empty by default.
  virtual std::vector<std::string> notes() const { return {}; }
  // Distinct hosts the ranks run on (JSON "hosts"): the cost model's network fit uses runs whose nodes are hosts.
  virtual int hosts() const { return 1; }

  // Largest message `algorithm` ("name[:options]") accepts; the sweep leaves larger sizes out for it.
  virtual std::size_t max_bytes_for(const std::string& /*algorithm*/) const { return max_bytes(); }
  // The GPU model a tuning table is for (cudaDeviceProp::name); the device line elsewhere.
  virtual std::string card() const { return device(); }
  // Algorithms (with launch shapes, "name:option...") that --tune compares at this size; empty: cannot tune.
  virtual std::vector<std::string> tuning_candidates(std::size_t /*bytes*/) const { return {}; }

  // Times `algorithm` on `count` elements of `dtype`. Throws nvrar::Error on any failure of any rank, with a
  // message naming the rank; the result is valid on the root.
  virtual Measurement run(const std::string& algorithm, std::size_t count, DataType dtype, const RunConfig& config) = 0;
};

// Defaults that depend on where the benchmark runs, resolved before the backend is built (the host backend sizes
// its heap from max_bytes).
struct BackendDefaults {
  std::size_t max_bytes = 0;
  RunConfig config;
};

// Everything the command line says about the backend itself.
struct BackendOptions {
  int ranks = 8;          // host only: rank threads; a GPU backend takes its ranks from the launcher
  int gpus_per_node = 0;  // 0: NVRAR_GPUS_PER_NODE, else the launcher's local size (GPU) or all ranks (host)
  std::size_t max_bytes = 0;
  bool start_gate = true;  // gpu only: align the ranks' start of every timed replay (gpu_backend_measure.cpp)
  std::optional<std::size_t> ll128_max_bytes;  // gpu: Options::ll128_max_bytes (0: no LL128 nor push); unset: default
  bool first_use_tune = true;  // gpu: Options::first_use_tune (--tune measures its own table: false)
};

// ---------------------------------------------------------------------------------------------------------------
// Backend factory: the one place that knows which backends exist (backend.cpp).
// ---------------------------------------------------------------------------------------------------------------

// Whether this binary was built with a GPU backend.
bool have_gpu_backend();
// "host" or "gpu" for the --backend value "host", "gpu" or "auto" (gpu when built with it and a device is
// present). Throws nvrar::Error for "gpu" in a build without a GPU backend.
std::string resolve_backend(const std::string& requested);
// Defaults of the resolved backend `name`.
BackendDefaults backend_defaults(const std::string& name);
// Builds the resolved backend `name`.
std::unique_ptr<Backend> make_backend(const std::string& name, const BackendOptions& options);

// Every algorithm name the resolved backend `name` knows, in the order a default run measures them (which of them a
// run offers depends on the communicator: Backend::algorithms()). Empty for a backend this build lacks.
std::vector<AlgorithmName> algorithm_names(const std::string& name);
// Checks `spec` ("name[:options]", the library's alias accepted) against the algorithms the resolved backend `name`
// knows and the shape syntax, before any setup; throws nvrar::Error naming --algorithms. Whether the communicator
// offers it (topology) is checked once the backend exists.
void check_algorithm_spec(const std::string& name, const std::string& spec);
// `spec` ("name[:options]") with a name given by its alias (the library's spelling) replaced by the bench's name;
// unchanged otherwise.
std::string canonical_algorithm(const std::string& backend, const std::string& spec);
// The --help text naming every backend's algorithms, with their aliases and a few words each.
std::string algorithms_help();

}  // namespace nvrar::bench
