// First-use tuning, the GPU half (first_use_tune.h): the collective decision at setup and the timed measurement.
#include "gpu/first_use_tune.h"

#include <cuda_runtime_api.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "gpu/runtime/bootstrap.h"

namespace nvrar::gpu {

namespace {

// Shorter than nvrar-bench's defaults (20 calls, 3 warm-up, 15 rounds): a first-use table needs the order of the
// candidates, not a publishable number; TuneBudget::calls = 1 + (kWarmup + kRounds) x kCalls must match.
constexpr int kCalls = 10;
constexpr int kWarmup = 2;
constexpr int kRounds = 5;
static_assert(1 + (kWarmup + kRounds) * kCalls == select::TuneBudget{}.calls);

// The network bandwidth the plan's estimate assumes for several nodes (one NIC per GPU of 25 GB/s: a 200 Gb/s port);
// one node takes TuneBudget's NVLink figure.
constexpr double kNetworkEstimateGbs = 25;

// Everything the measurement allocates, freed in reverse order however it ends.
struct Resources {
  cudaStream_t stream = nullptr;
  cudaEvent_t start = nullptr;
  cudaEvent_t stop = nullptr;
  void* in = nullptr;
  void* out = nullptr;
  int* gate = nullptr;
  int64_t* agreed = nullptr;  // capabilities and failure flags, reduced across ranks
  double* times = nullptr;
  cudaGraphExec_t exec = nullptr;
  cudaGraph_t graph = nullptr;
  ~Resources() {
    if (exec != nullptr) cudaGraphExecDestroy(exec);
    if (graph != nullptr) cudaGraphDestroy(graph);
    if (times != nullptr) cudaFree(times);
    if (agreed != nullptr) cudaFree(agreed);
    if (gate != nullptr) cudaFree(gate);
    if (out != nullptr) cudaFree(out);
    if (in != nullptr) cudaFree(in);
    if (stop != nullptr) cudaEventDestroy(stop);
    if (start != nullptr) cudaEventDestroy(start);
    if (stream != nullptr) cudaStreamDestroy(stream);
  }
};

Choice choice_of(const std::string& candidate) {
  const select::AlgorithmSpec spec = select::parse_algorithm_spec(candidate);
  return Choice{parse_algorithm(spec.name), spec.threads, spec.blocks, spec.bulk, spec.piece_units};
}

// ISO-8601 UTC, as nvrar-bench stamps its tables.
std::string utc_now() {
  const std::time_t now = std::time(nullptr);
  std::tm utc{};
  gmtime_r(&now, &utc);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &utc);
  return text;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n % 2 == 1 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

// The minimum over ranks of each value (NCCL on r.stream, synchronised): what every rank can do, or 0 where any
// rank failed.
void agree_min(int rank, ncclComm_t nccl, Resources& r, std::vector<int64_t>& values) {
  NVRAR_CUDA_CHECK(rank, cudaMemcpy(r.agreed, values.data(), values.size() * sizeof(int64_t), cudaMemcpyHostToDevice));
  NVRAR_NCCL_CHECK(rank, ncclAllReduce(r.agreed, r.agreed, values.size(), ncclInt64, ncclMin, nccl, r.stream));
  NVRAR_CUDA_CHECK(rank, cudaStreamSynchronize(r.stream));
  NVRAR_CUDA_CHECK(rank, cudaMemcpy(values.data(), r.agreed, values.size() * sizeof(int64_t), cudaMemcpyDeviceToHost));
}

// Microseconds per call of one candidate at `count` bf16 elements on this rank (the median of kRounds replays).
double time_candidate(Communicator& comm, ncclComm_t nccl, Resources& r, const Choice& c, std::size_t count) {
  const int rank = comm.rank();
  comm.allreduce(r.in, r.out, count, DataType::kBFloat16, r.stream, c);
  comm.synchronize(r.stream);
  NVRAR_CUDA_CHECK(rank, cudaStreamBeginCapture(r.stream, cudaStreamCaptureModeThreadLocal));
  try {
    for (int i = 0; i < kCalls; ++i) comm.allreduce(r.in, r.out, count, DataType::kBFloat16, r.stream, c);
  } catch (...) {
    cudaGraph_t partial = nullptr;
    if (cudaStreamEndCapture(r.stream, &partial) == cudaSuccess && partial != nullptr) cudaGraphDestroy(partial);
    cudaGetLastError();
    throw;
  }
  NVRAR_CUDA_CHECK(rank, cudaStreamEndCapture(r.stream, &r.graph));
  NVRAR_CUDA_CHECK(rank, cudaGraphInstantiate(&r.exec, r.graph, 0));
  for (int i = 0; i < kWarmup; ++i) NVRAR_CUDA_CHECK(rank, cudaGraphLaunch(r.exec, r.stream));
  comm.synchronize(r.stream);
  std::vector<double> per_call_us;
  for (int i = 0; i < kRounds; ++i) {
    NVRAR_NCCL_CHECK(rank, ncclAllReduce(r.gate, r.gate, 1, ncclInt32, ncclMax, nccl, r.stream));
    NVRAR_CUDA_CHECK(rank, cudaEventRecord(r.start, r.stream));
    NVRAR_CUDA_CHECK(rank, cudaGraphLaunch(r.exec, r.stream));
    NVRAR_CUDA_CHECK(rank, cudaEventRecord(r.stop, r.stream));
    comm.synchronize(r.stream);  // turns a kernel's timeout into an error naming the peer
    float ms = 0;
    NVRAR_CUDA_CHECK(rank, cudaEventElapsedTime(&ms, r.start, r.stop));
    per_call_us.push_back(static_cast<double>(ms) * 1e3 / kCalls);
  }
  cudaGraphExecDestroy(r.exec);
  cudaGraphDestroy(r.graph);
  r.exec = nullptr;
  r.graph = nullptr;
  return median(per_call_us);
}

}  // namespace

TuneDecision decide_first_use_tune(ncclComm_t nccl, int rank, int nranks, const core::Topology& topo,
                                   const std::string& card, const config::Settings& settings, bool explicit_file,
                                   bool shipped, bool may_measure, std::optional<select::TuningTable>& cached) {
  TuneDecision d;
  d.mode = select::parse_tune_mode(settings.tune);
  d.key.card = card;
  d.key.ranks = nranks;
  d.key.nodes = topo.nodes;
  d.key.gpus_per_node = topo.gpus_per_node;
  NVRAR_CUDA_CHECK(rank, cudaDriverGetVersion(&d.key.driver_version));
  d.key.nvrar_version = select::nvrar_version();
  const std::string dir = select::tune_cache_dir([](const char* name) { return std::getenv(name); });
  if (!dir.empty()) d.cache_path = select::tune_cache_path(dir, d.key);

  // Rank 0 decides for all, with its settings and its cache (ranks on other hosts may see other cache folders, or
  // none, or another NVRAR_TUNE): its action and mode travel to every rank, then, for a cache hit, its table.
  std::optional<select::TuningTable> mine;
  int32_t agreed[2] = {0, 0};  // action, mode
  if (rank == 0) {
    select::TableFacts facts{d.mode, explicit_file, shipped, false, nranks > 1 && may_measure};
    if (!explicit_file && !shipped && d.mode == select::TuneMode::kAuto && facts.can_measure && !d.cache_path.empty()) {
      select::CacheRead read = select::read_tune_cache(d.cache_path, d.key);
      if (!read.warning.empty()) std::fprintf(stderr, "nvrar: rank 0 setup: warning: %s\n", read.warning.c_str());
      mine = std::move(read.table);
      facts.cache_hit = mine.has_value();
    }
    agreed[0] = static_cast<int32_t>(select::decide_table(facts));
    agreed[1] = static_cast<int32_t>(d.mode);
  }
  const select::BroadcastFn broadcast = [&](void* data, std::size_t bytes) {
    nccl_broadcast_bytes(nccl, rank, data, bytes, 0);
  };
  broadcast(agreed, sizeof agreed);
  d.action = static_cast<select::TableAction>(agreed[0]);
  d.mode = static_cast<select::TuneMode>(agreed[1]);
  cached.reset();
  if (d.action == select::TableAction::kCache) {
    cached = select::agree_on_table(rank, mine, broadcast);
    if (!cached) throw Error(fmt::format("nvrar: rank {} setup: rank 0 found a cached tuning table but sent none", rank));
  }
  return d;
}

select::TuningTable run_first_use_tune(Communicator& comm, ncclComm_t nccl, const TuneDecision& decision) {
  const int rank = comm.rank();
  Resources r;
  NVRAR_CUDA_CHECK(rank, cudaStreamCreateWithFlags(&r.stream, cudaStreamNonBlocking));
  NVRAR_CUDA_CHECK(rank, cudaMalloc(reinterpret_cast<void**>(&r.agreed), 8 * sizeof(int64_t)));
  // The plan from what every rank can run (the minimum of each rank's answers), so all ranks time the same
  // candidates in the same order.
  std::vector<int64_t> can = {comm.supports(Algorithm::kOneShot),      comm.supports(Algorithm::kHierarchical),
                              comm.supports(Algorithm::kLl128),        comm.supports(Algorithm::kPush),
                              static_cast<int64_t>(comm.oneshot_max_bytes()), static_cast<int64_t>(comm.ll128_max_bytes()),
                              static_cast<int64_t>(comm.push_max_bytes()),    static_cast<int64_t>(comm.max_bytes())};
  agree_min(rank, nccl, r, can);
  select::TuneCapabilities caps;
  caps.oneshot = can[0] != 0;
  caps.hierarchical = can[1] != 0;
  caps.ll128 = can[2] != 0;
  caps.push = can[3] != 0;
  caps.oneshot_max_bytes = can[4];
  caps.ll128_max_bytes = can[5];
  caps.push_max_bytes = can[6];
  select::TuneBudget budget;
  budget.max_bytes = std::min(budget.max_bytes, can[7]);
  budget.min_bytes = std::min(budget.min_bytes, budget.max_bytes);
  if (comm.nodes() > 1) budget.bandwidth_gbs = kNetworkEstimateGbs;
  const std::vector<select::TunePoint> plan = select::plan_first_use_tune(caps, budget);

  const std::size_t max_bytes = static_cast<std::size_t>(plan.back().bytes);
  NVRAR_CUDA_CHECK(rank, cudaEventCreate(&r.start));
  NVRAR_CUDA_CHECK(rank, cudaEventCreate(&r.stop));
  NVRAR_CUDA_CHECK(rank, cudaMalloc(&r.in, max_bytes));
  NVRAR_CUDA_CHECK(rank, cudaMalloc(&r.out, max_bytes));
  NVRAR_CUDA_CHECK(rank, cudaMemset(r.in, 0, max_bytes));  // zeros: the values do not change a kernel's time
  NVRAR_CUDA_CHECK(rank, cudaMalloc(reinterpret_cast<void**>(&r.gate), sizeof(int)));
  NVRAR_CUDA_CHECK(rank, cudaMemset(r.gate, 0, sizeof(int)));

  std::vector<double> times;
  for (const select::TunePoint& p : plan) {
    const std::size_t count = static_cast<std::size_t>(p.bytes) / dtype_size(DataType::kBFloat16);
    for (const std::string& c : p.candidates) {
      // A candidate that fails on one rank fails on all of them together (an agreed flag after each one), so no
      // rank is left waiting in the next candidate's collectives.
      std::string failure;
      try {
        times.push_back(time_candidate(comm, nccl, r, choice_of(c), count));
      } catch (const std::exception& e) {
        failure = e.what();
      }
      std::vector<int64_t> ok = {failure.empty() ? 1 : 0};
      agree_min(rank, nccl, r, ok);
      if (ok[0] == 0)
        throw Error(fmt::format("nvrar: rank {} setup: first-use tune ({} at {} bytes) failed {}; NVRAR_TUNE=off "
                                "skips the tune",
                                rank, c, p.bytes, failure.empty() ? "on another rank" : "here: " + failure));
    }
  }
  // The slowest rank's time of every measurement, in one all-reduce.
  NVRAR_CUDA_CHECK(rank, cudaMalloc(reinterpret_cast<void**>(&r.times), times.size() * sizeof(double)));
  NVRAR_CUDA_CHECK(rank, cudaMemcpy(r.times, times.data(), times.size() * sizeof(double), cudaMemcpyHostToDevice));
  NVRAR_NCCL_CHECK(rank, ncclAllReduce(r.times, r.times, times.size(), ncclDouble, ncclMax, nccl, r.stream));
  NVRAR_CUDA_CHECK(rank, cudaStreamSynchronize(r.stream));
  NVRAR_CUDA_CHECK(rank, cudaMemcpy(times.data(), r.times, times.size() * sizeof(double), cudaMemcpyDeviceToHost));

  std::optional<select::TuningTable> table;
  if (rank == 0) {
    select::TuningTable header;
    header.card = decision.key.card;
    header.created = utc_now();
    header.source = fmt::format("first-use tune (NVRAR_TUNE={}), bf16, {} calls x {} rounds, {:.0f} ms estimated",
                                decision.mode == select::TuneMode::kForce ? "force" : "auto", kCalls, kRounds,
                                select::estimate_plan_ms(plan, budget));
    header.ranks = decision.key.ranks;
    header.nodes = decision.key.nodes;
    header.gpus_per_node = decision.key.gpus_per_node;
    std::vector<select::SizeTimes> sizes;
    std::size_t k = 0;
    for (const select::TunePoint& p : plan) {
      select::SizeTimes s{p.bytes, {}};
      for (const std::string& c : p.candidates) s.times.push_back({c, times[k++], false});
      sizes.push_back(std::move(s));
    }
    table = select::table_from_measurements(header, sizes);
  }
  table = select::agree_on_table(rank, table, [&](void* data, std::size_t bytes) {
    nccl_broadcast_bytes(nccl, rank, data, bytes, 0);
  });
  if (!table) throw Error(fmt::format("nvrar: rank {} setup: first-use tune: rank 0 sent no table", rank));
  if (rank == 0 && !decision.cache_path.empty()) {
    try {
      select::write_tune_cache(decision.cache_path, decision.key, *table);
    } catch (const Error& e) {
      std::fprintf(stderr, "nvrar: rank 0 setup: warning: %s (the table is used, not kept)\n", e.what());
    }
  }
  return *table;
}

}  // namespace nvrar::gpu
