// GPU backend of nvrar-bench, its algorithms: the list of names (what each runs, when it is offered, how --help
// describes it), the shapes the tuner tries per size, each algorithm's size limit, the parsing of
// "name[:option...]" into what it runs, and the one call that enqueues an all-reduce of it (NVRAR's, or
// ncclAllReduce for the NCCL anchors).
#include "bench/gpu_backend.h"
#include "bench/gpu_backend_checks.h"

#include <algorithm>

#include <fmt/format.h>

#include "select/first_use_tune.h"
#include "select/tuning_table.h"

namespace nvrar::bench {

// In the order a default run measures them. NVRAR's forced kernels take the library's names (algorithm_name), so a
// name here is the name NVRAR_ALGO, tuning tables and parse_algorithm use; nvrar (the library's auto),
// nvrar-registered and the NCCL anchors are the bench's own.
const std::vector<GpuBackend::Entry>& GpuBackend::entries() {
  auto forced = [](Algorithm a, bool registered, const char* summary) {
    Entry e;
    e.name = {algorithm_name(a), summary, "", true};
    e.target.choice.algorithm = a;
    e.target.registered = registered;
    e.needs = a;
    return e;
  };
  auto own = [](const char* name, const char* alias, Target::Kind kind, bool registered, Algorithm needs,
                const char* summary) {
    Entry e;
    e.name = {name, summary, alias, kind == Target::kNvrar};
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

// The library's list (select/first_use_tune.h), every shape: the first-use tune tries a subset of the same.
std::vector<std::string> GpuBackend::tuning_candidates(std::size_t bytes) const {
  select::TuneCapabilities caps;
  caps.oneshot = comm_->supports(Algorithm::kOneShot);
  caps.hierarchical = comm_->supports(Algorithm::kHierarchical);
  caps.ll128 = comm_->supports(Algorithm::kLl128);
  caps.push = comm_->supports(Algorithm::kPush);
  caps.oneshot_max_bytes = static_cast<int64_t>(comm_->oneshot_max_bytes());
  caps.ll128_max_bytes = static_cast<int64_t>(comm_->ll128_max_bytes());
  caps.push_max_bytes = static_cast<int64_t>(comm_->push_max_bytes());
  return select::tuning_candidates(caps, static_cast<int64_t>(bytes), /*full=*/true);
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

}  // namespace nvrar::bench
