// CPU executor backend of nvrar-bench.
//
// Each run() starts one thread per rank. A thread fills its input with fresh random values, makes the warm-up
// calls, optionally one checked call, then `rounds` rounds of: barrier, `iters` back-to-back calls timed with
// steady_clock, mean per call. The reported time is, as on GPUs (../shared/BENCHMARKING.md), the median over
// rounds per rank and the maximum over ranks. There are no CUDA graphs here: each round is a plain loop.
//
// Failure handling: a rank thread that throws records the message and leaves the barrier (arrive_and_drop),
// so the others never wait for it at a barrier; they stop at their next barrier, or time out inside the
// all-reduce (the executor's spin-waits have deadlines) if they were waiting for the failed rank's data.
// run() then throws the first failure, never hangs and never lets an exception escape a thread.
#include "bench/host_backend.h"

#include <algorithm>
#include <atomic>
#include <barrier>
#include <chrono>
#include <cmath>
#include <cstring>
#include <fstream>
#include <mutex>
#include <new>
#include <system_error>
#include <thread>

#include <unistd.h>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "check/verify.h"
#include "core/schedule.h"
#include "core/topology.h"

namespace nvrar::bench {

namespace {

uint64_t derive_seed(uint64_t base, std::size_t count, DataType dtype, uint64_t stage) {
  return check::mix_seed(check::mix_seed(check::mix_seed(base) ^ count) ^ (static_cast<uint64_t>(dtype) << 32 | stage));
}

// Seed stages: warm-up input, checked call, then one per timed round.
constexpr uint64_t kStageWarmup = 0;
constexpr uint64_t kStageCheck = 1;
constexpr uint64_t kStageFirstRound = 2;

// Thrown inside a rank thread that leaves because another rank failed; not itself a failure.
struct Aborted {};

std::string cpu_model() {
  std::ifstream cpuinfo("/proc/cpuinfo");
  std::string line;
  while (std::getline(cpuinfo, line)) {
    if (line.rfind("model name", 0) == 0) {
      const auto colon = line.find(':');
      if (colon != std::string::npos) {
        const auto start = line.find_first_not_of(' ', colon + 1);
        if (start != std::string::npos) return line.substr(start);
      }
    }
  }
  return "unknown CPU";
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n % 2 == 1 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

}  // namespace

BackendDefaults host_backend_defaults() {
  BackendDefaults d;
  // 4 MB keeps the host heaps (about 14 x max_bytes per rank for 3 nodes of 4) well under a few GB at 12 ranks.
  d.max_bytes = std::size_t{4} << 20;
  // Rank threads usually outnumber cores, so a 4 MB call takes a good fraction of a second: few calls per round,
  // and the median of 3 rounds to ride out scheduling noise. No warm-up beyond one call is needed on the host
  // (no graphs, no lazy loading; the heap is touched at construction).
  d.config.warmup = 1;
  d.config.iters = 3;
  d.config.rounds = 3;
  return d;
}

std::vector<AlgorithmName> HostBackend::algorithm_names() {
  // "hierarchical" is NVRAR's algorithm under the library's name; on the host both run the same executor, listed so
  // that the host and GPU tables have the same sections.
  return {{"nvrar", "NVRAR on the CPU executor: the hierarchical schedule, ranks as threads", "auto", false},
          {algorithm_name(Algorithm::kHierarchical), "the same executor, under the library's name", "", false}};
}

std::vector<std::string> HostBackend::algorithms() const {
  std::vector<std::string> names;
  for (const AlgorithmName& a : algorithm_names()) names.push_back(a.name);
  return names;
}

HostBackend::HostBackend(const BackendOptions& options) {
  HostGroupOptions group_options;
  group_options.ranks = options.ranks;
  group_options.gpus_per_node = options.gpus_per_node;
  group_options.max_bytes = options.max_bytes;
  try {
    group_ = std::make_unique<HostGroup>(group_options);
    heap_bytes_per_rank_ =
        core::make_heap_layout(core::make_topology(group_->size(), group_->gpus_per_node(), 0), options.max_bytes)
            .total_bytes;
    // Every rank also holds an input and an output of max_bytes; refuse what the machine cannot hold before
    // touching it (the executor has checked its heaps the same way).
    const long pages = sysconf(_SC_PHYS_PAGES);
    const long page_bytes = sysconf(_SC_PAGE_SIZE);
    const double total = (static_cast<double>(heap_bytes_per_rank_) + 2.0 * static_cast<double>(options.max_bytes)) *
                         group_->size();
    if (pages > 0 && page_bytes > 0 && total > static_cast<double>(pages) * static_cast<double>(page_bytes))
      throw Error(fmt::format("{} host ranks with messages up to {} bytes need {:.1f} GiB (heap, input and output), "
                              "more than this machine's memory; lower -e/--max-bytes or --ranks",
                              group_->size(), options.max_bytes, total / (1 << 30)));
    inputs_.assign(static_cast<std::size_t>(group_->size()), std::vector<std::byte>(options.max_bytes));
    outputs_.assign(static_cast<std::size_t>(group_->size()), std::vector<std::byte>(options.max_bytes));
  } catch (const std::bad_alloc&) {
    throw Error(
        fmt::format("out of memory setting up {} host ranks for messages up to {} bytes (each rank needs a "
                    "heap of several times that); lower -e/--max-bytes or --ranks",
                    options.ranks, options.max_bytes));
  }
}

std::string HostBackend::device() const {
  return fmt::format("CPU executor, {} rank threads on {} hardware threads ({})", group_->size(),
                     std::thread::hardware_concurrency(), cpu_model());
}

std::vector<std::string> HostBackend::notes() const {
  const double mib = 1024.0 * 1024.0;
  const int p = group_->size();
  const double per_rank = static_cast<double>(heap_bytes_per_rank_ + 2 * group_->max_bytes()) / mib;
  return {fmt::format("host memory: {:.1f} MiB per rank (heap + input + output), {:.1f} MiB for {} ranks; it grows "
                      "with -e/--max-bytes x ranks",
                      per_rank, per_rank * p, p),
          "host times come from threads sharing CPU cores: compare them with each other, never with GPU numbers"};
}

Measurement HostBackend::run(const std::string& algorithm, std::size_t count, DataType dtype, const RunConfig& config) {
  const auto offered = algorithms();
  if (std::find(offered.begin(), offered.end(), algorithm) == offered.end())
    throw Error(fmt::format("host backend: unknown algorithm '{}' ({})", algorithm, fmt::join(offered, ", ")));
  const std::size_t esize = dtype_size(dtype);
  const std::size_t bytes = count * esize;
  if (count == 0 || bytes > group_->max_bytes())
    throw Error(fmt::format("host backend: message of {} bytes outside 1..{} (the group's max_bytes)", bytes,
                            group_->max_bytes()));
  if (config.iters < 1 || config.rounds < 1 || config.warmup < 0)
    throw Error("host backend: iterations and rounds must be at least 1, warm-up at least 0");

  const int p = group_->size();
  const int roundings = check::hierarchical_roundings(group_->nodes());
  const auto rounds = static_cast<std::size_t>(config.rounds);

  std::barrier<> sync(p);
  std::atomic<bool> abort{false};
  std::mutex failure_mutex;
  std::string first_failure;
  int failed_ranks = 0;
  std::vector<std::vector<double>> round_us(static_cast<std::size_t>(p), std::vector<double>(rounds, 0.0));
  std::vector<std::size_t> wrong_by_thread(static_cast<std::size_t>(p), 0);

  auto record_failure = [&](const std::string& message) {
    std::lock_guard<std::mutex> lock(failure_mutex);
    if (first_failure.empty()) first_failure = message;
    ++failed_ranks;
    abort.store(true);
  };

  // Barrier, then leave if some rank failed meanwhile (its data will never come).
  auto barrier = [&] {
    sync.arrive_and_wait();
    if (abort.load()) throw Aborted{};
  };

  // Thread t checks elements [count*t/P, count*(t+1)/P) of every rank's output, so the float64 reference is built
  // once and the work is spread over the threads. An element is wrong when it is outside the tolerance of the
  // reference or differs bitwise from rank 0's (the schedule sums in the same order on every rank); one wrong by
  // both tests counts once.
  auto verify_share = [&](int t) -> std::size_t {
    const std::size_t begin = count * static_cast<std::size_t>(t) / static_cast<std::size_t>(p);
    const std::size_t end = count * static_cast<std::size_t>(t + 1) / static_cast<std::size_t>(p);
    const std::size_t len = end - begin;
    if (len == 0) return 0;
    std::vector<const void*> ins;
    for (int q = 0; q < p; ++q) ins.push_back(inputs_[static_cast<std::size_t>(q)].data() + begin * esize);
    const check::Reference ref = check::reference_sum(ins, len, dtype);
    const std::byte* root = outputs_[0].data() + begin * esize;
    std::size_t wrong = 0;
    for (int q = 0; q < p; ++q) {
      const std::byte* out = outputs_[static_cast<std::size_t>(q)].data() + begin * esize;
      wrong += check::count_wrong(out, ref, len, dtype, roundings, p);
      if (q == 0 || std::memcmp(out, root, len * esize) == 0) continue;
      // Differs from rank 0 somewhere: count the differing elements count_wrong let through.
      for (std::size_t i = 0; i < len; ++i) {
        if (std::memcmp(out + i * esize, root + i * esize, esize) == 0) continue;
        const double err = std::fabs(check::element_as_double(out, i, dtype) - ref.sum[i]);
        if (err <= check::tolerance(ref.abs_sum[i], dtype, roundings, p)) ++wrong;
      }
    }
    return wrong;
  };

  auto rank_main = [&](int r) {
    try {
      HostCommunicator& comm = group_->comm(r);
      std::byte* in = inputs_[static_cast<std::size_t>(r)].data();
      std::byte* out = outputs_[static_cast<std::size_t>(r)].data();

      check::fill_random(in, count, dtype, derive_seed(config.seed, count, dtype, kStageWarmup), r);
      barrier();
      for (int i = 0; i < config.warmup; ++i) comm.allreduce(in, out, count, dtype);

      if (config.check) {
        check::fill_random(in, count, dtype, derive_seed(config.seed, count, dtype, kStageCheck), r);
        // Poison the output so that an element the call never writes cannot pass as a stale correct value.
        std::memset(out, 0xA5, bytes);
        barrier();
        comm.allreduce(in, out, count, dtype);
        barrier();  // every output complete before any thread reads them
        wrong_by_thread[static_cast<std::size_t>(r)] = verify_share(r);
        barrier();  // every share checked before inputs are refilled and outputs overwritten
      }

      for (std::size_t round = 0; round < rounds; ++round) {
        check::fill_random(in, count, dtype, derive_seed(config.seed, count, dtype, kStageFirstRound + round), r);
        barrier();
        const auto t0 = std::chrono::steady_clock::now();
        for (int i = 0; i < config.iters; ++i) comm.allreduce(in, out, count, dtype);
        const auto t1 = std::chrono::steady_clock::now();
        round_us[static_cast<std::size_t>(r)][round] =
            std::chrono::duration<double, std::micro>(t1 - t0).count() / config.iters;
      }
      barrier();
      sync.arrive_and_drop();
    } catch (const Aborted&) {
      sync.arrive_and_drop();
    } catch (const std::exception& e) {
      const std::string what = e.what();
      // nvrar errors already name the rank.
      record_failure(what.rfind("nvrar:", 0) == 0 ? what : fmt::format("rank {}: {}", r, what));
      sync.arrive_and_drop();
    } catch (...) {
      record_failure(fmt::format("rank {}: unknown exception", r));
      sync.arrive_and_drop();
    }
  };

  std::vector<std::thread> threads;
  threads.reserve(static_cast<std::size_t>(p));
  try {
    for (int r = 0; r < p; ++r) threads.emplace_back(rank_main, r);
  } catch (const std::system_error& e) {
    // The started threads wait at their first barrier: stand in for the missing ranks so they can leave.
    record_failure(fmt::format("cannot start rank thread {} of {}: {}", threads.size(), p, e.what()));
    for (std::size_t r = threads.size(); r < static_cast<std::size_t>(p); ++r) sync.arrive_and_drop();
  }
  for (std::thread& t : threads) t.join();

  if (!first_failure.empty()) {
    const std::string others =
        failed_ranks > 1 ? fmt::format(" (and {} more rank failures, likely consequences)", failed_ranks - 1) : "";
    throw Error(
        fmt::format("{} algorithm, {} bytes of {}: {}{}", algorithm, bytes, dtype_name(dtype), first_failure, others));
  }

  Measurement m;
  for (const auto& per_round : round_us) m.time_us = std::max(m.time_us, median(per_round));
  m.checked = config.check;
  for (std::size_t w : wrong_by_thread) m.wrong += w;
  return m;
}

}  // namespace nvrar::bench
