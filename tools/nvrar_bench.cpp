// nvrar-bench: all-reduce latency and bandwidth over a sweep of message sizes, printed as an nccl-tests table
// (and optionally JSON), for every algorithm a backend offers.
//
//   nvrar-bench --backend host --ranks 12 --gpus-per-node 4 --check
//   nvrar-bench -b 4K -e 64M -d bf16 --algorithms nvrar,nccl --json out.json     (GPU backend, under mpirun)
//
// Exit status: 0 all good; 1 some element was wrong; 2 bad usage or a runtime error (message on stderr).
// How the numbers are measured: ../shared/BENCHMARKING.md and the backend's own file.
#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <fmt/ranges.h>

#include "bench/backend.h"
#include "bench/report.h"
#include "select/first_use_tune.h"
#include "select/tuning_table.h"
#include "nvrar/types.h"

namespace {

using nvrar::DataType;
using nvrar::Error;
namespace bench = nvrar::bench;

constexpr int kExitOk = 0;
constexpr int kExitWrong = 1;
constexpr int kExitError = 2;

struct Options {
  std::string backend = "auto";
  int ranks = 8;
  int gpus_per_node = 0;
  std::string min_bytes = "4K";
  std::string max_bytes;  // empty: the backend's default
  int step_factor = 2;
  std::string dtype = "bf16";
  std::vector<std::string> algorithms;
  int iters = 0;  // 0 (not given): the backend's default, likewise warmup and rounds
  int warmup = -1;
  bool no_start_gate = false;
  std::string ll128_max_bytes;  // empty: Options' default
  int rounds = 0;
  bool check = false;
  std::string json;
  std::string tune;  // write a tuning table here instead of the algorithm table
  bool ranks_given = false;  // --ranks was on the command line (the gpu backend takes its ranks from the launcher)
};

// The largest message -b, -e and --ll128-max-bytes take: 16 GiB, beyond what any sweep needs (an H200 holds about
// 141 GB, and a call needs an input, an output and the library's buffers of that size on every GPU). It keeps every
// product of a size with a factor, an element size or a rank count far from overflow.
constexpr std::size_t kMaxMessageBytes = std::size_t{16} << 30;

// A byte count as nccl-tests takes it: digits with an optional K, M or G (powers of 1024), e.g. "4K", "64M"; at most
// kMaxMessageBytes.
std::size_t parse_size(const std::string& text, const char* option) {
  std::size_t digits = 0;
  while (digits < text.size() && std::isdigit(static_cast<unsigned char>(text[digits]))) ++digits;
  const std::string suffix = text.substr(digits);
  std::size_t shift = 0;
  if (suffix.empty()) {
    shift = 0;
  } else if (suffix == "K" || suffix == "k") {
    shift = 10;
  } else if (suffix == "M" || suffix == "m") {
    shift = 20;
  } else if (suffix == "G" || suffix == "g") {
    shift = 30;
  } else {
    digits = 0;  // reported below
  }
  if (digits == 0)
    throw Error(
        fmt::format("{}: '{}' is not a size (digits with an optional K, M or G suffix, e.g. 4K, 64M)", option, text));
  unsigned long long value = 0;
  try {
    value = std::stoull(text.substr(0, digits));
  } catch (const std::out_of_range&) {
    value = std::numeric_limits<unsigned long long>::max();
  }
  if (value > (kMaxMessageBytes >> shift))
    throw Error(fmt::format("{}: '{}' is too large (at most 16G = {} bytes)", option, text, kMaxMessageBytes));
  return static_cast<std::size_t>(value) << shift;
}

DataType parse_dtype(const std::string& text) {
  if (text == "bf16" || text == "bfloat16") return DataType::kBFloat16;
  if (text == "fp16" || text == "half" || text == "float16") return DataType::kFloat16;
  if (text == "fp32" || text == "float" || text == "float32") return DataType::kFloat32;
  throw Error(fmt::format("--dtype: unknown type '{}' (bf16, fp16, fp32)", text));
}

// Message sizes min, min x f, ... <= max, each rounded down to whole elements; sizes that round to nothing or to
// an earlier size are dropped.
std::vector<std::size_t> sweep_counts(std::size_t min_bytes, std::size_t max_bytes, std::size_t factor,
                                      std::size_t elem) {
  std::vector<std::size_t> counts;
  for (std::size_t bytes = min_bytes; bytes <= max_bytes;) {
    const std::size_t count = bytes / elem;
    if (count > 0 && (counts.empty() || counts.back() != count)) counts.push_back(count);
    if (bytes > max_bytes / factor) break;  // the next step would pass max (or overflow)
    bytes *= factor;
  }
  return counts;
}

// --tune: every candidate the backend offers at each size (algorithms with launch shapes), the fastest kept; the
// table (select/tuning_table.h) is written by the root, adjacent sizes with the same winner merged.
int run_tuning(const Options& opt, bench::Backend& backend, const std::vector<std::size_t>& counts, DataType dtype,
               const bench::RunConfig& config) {
  const std::size_t elem = nvrar::dtype_size(dtype);
  nvrar::select::TuningTable table;
  table.card = backend.card();
  table.created = bench::iso8601_utc_now();
  table.source = fmt::format("nvrar-bench --tune, {}, iters {}, rounds {}", nvrar::dtype_name(dtype), config.iters,
                             config.rounds);
  table.ranks = backend.ranks();
  table.nodes = backend.nodes();
  table.gpus_per_node = backend.gpus_per_node();
  const bool root = backend.is_root();
  if (root)
    fmt::print("# nvrar-bench --tune: {} ranks ({} x {}), {}, {}\n#\n# {:>12}  {:<22} {:>9}  {}\n", table.ranks,
               table.nodes, table.gpus_per_node, backend.device(), nvrar::dtype_name(dtype), "bytes", "best",
               "time(us)", "others (us)");
  bool any_wrong = false;
  std::vector<nvrar::select::SizeTimes> sizes;
  for (std::size_t count : counts) {
    const std::size_t bytes = count * elem;
    const std::vector<std::string> candidates = backend.tuning_candidates(bytes);
    if (candidates.empty()) throw Error(fmt::format("--tune: the {} backend cannot tune", backend.name()));
    nvrar::select::SizeTimes size{static_cast<int64_t>(bytes), {}};
    std::string others;
    for (const std::string& c : candidates) {
      const bench::Measurement m = backend.run(c, count, dtype, config);
      any_wrong = any_wrong || m.wrong > 0;
      const bool wrong = m.checked && m.wrong > 0;  // a candidate that computed a wrong result never wins
      others += wrong ? fmt::format(" {}=WRONG({})", c, m.wrong) : fmt::format(" {}={:.1f}", c, m.time_us);
      size.times.push_back({c, m.time_us, wrong});
    }
    // The same choice as the first-use tune's (select/first_use_tune.h).
    const nvrar::select::TuningEntry best = nvrar::select::fastest_entry(size.bytes, size.times);
    const auto winner = std::find_if(size.times.begin(), size.times.end(), [&](const nvrar::select::CandidateTime& t) {
      return !t.wrong && t.time_us == best.time_us;
    });
    if (root) fmt::print("  {:>12}  {:<22} {:>9.2f} {}\n", bytes, winner->candidate, best.time_us, others);
    sizes.push_back(std::move(size));
  }
  table = nvrar::select::table_from_measurements(table, sizes);
  if (root) {
    nvrar::select::save_tuning_table(table, opt.tune);
    fmt::print("# tuning table written to {} ({} entries; sizes above {} bytes go to NCCL)\n", opt.tune,
               table.entries.size(), table.entries.empty() ? 0 : table.entries.back().max_bytes);
  }
  return any_wrong ? kExitWrong : kExitOk;
}

// Prints a one-line note on stderr that an option given on the command line does not apply, and why.
void note_ignored(const std::string& what) { std::fprintf(stderr, "nvrar-bench: note: %s; ignored\n", what.c_str()); }

// Fails now, not after a long sweep, on a file that cannot be written (append mode: nothing is truncated yet).
void probe_writable(const std::string& path, const char* option) {
  std::ofstream probe(path, std::ios::app);
  if (!probe) throw Error(fmt::format("{}: cannot open '{}' for writing", option, path));
}

// What the command line asks for, every option checked (ranges, relations between options, files) before any
// backend or device is set up.
struct Plan {
  DataType dtype = DataType::kBFloat16;
  std::string backend;
  std::vector<std::size_t> counts;  // elements per message, ascending
  bool rounded = false;             // -b or -e was not a whole number of elements
  bench::RunConfig config;
  bench::BackendOptions backend_options;
};

Plan check_options(const Options& opt) {
  Plan plan;
  plan.dtype = parse_dtype(opt.dtype);
  const std::size_t elem = nvrar::dtype_size(plan.dtype);
  plan.backend = bench::resolve_backend(opt.backend);
  const bench::BackendDefaults defaults = bench::backend_defaults(plan.backend);
  const bool host = plan.backend == "host";

  const std::size_t min_bytes = parse_size(opt.min_bytes, "-b/--min-bytes");
  // The sweep multiplies the size by -f at each step: from 0 it would never reach -e.
  if (min_bytes == 0) throw Error("-b/--min-bytes must be at least 1 byte (e.g. -b 4K)");
  const std::size_t max_bytes =
      opt.max_bytes.empty() ? defaults.max_bytes : parse_size(opt.max_bytes, "-e/--max-bytes");
  if (min_bytes > max_bytes)
    throw Error(fmt::format("-b/--min-bytes ({}) is larger than -e/--max-bytes ({})", min_bytes, max_bytes));
  plan.counts = sweep_counts(min_bytes, max_bytes, static_cast<std::size_t>(opt.step_factor), elem);
  if (plan.counts.empty())
    throw Error(fmt::format("no message size between {} and {} bytes holds a whole {} element ({} bytes)", min_bytes,
                            max_bytes, nvrar::dtype_name(plan.dtype), elem));
  plan.rounded = min_bytes % elem != 0 || max_bytes % elem != 0;
  if (!opt.ll128_max_bytes.empty())
    plan.backend_options.ll128_max_bytes = parse_size(opt.ll128_max_bytes, "--ll128-max-bytes");

  plan.config = defaults.config;
  if (opt.iters > 0) plan.config.iters = opt.iters;
  if (opt.warmup >= 0) plan.config.warmup = opt.warmup;
  if (opt.rounds > 0) plan.config.rounds = opt.rounds;
  plan.config.check = opt.check;

  if (host && opt.gpus_per_node > 0 && opt.ranks % opt.gpus_per_node != 0)
    throw Error(fmt::format("--gpus-per-node {} does not divide --ranks {} (every node has the same number of ranks)",
                            opt.gpus_per_node, opt.ranks));
  for (const std::string& a : opt.algorithms) bench::check_algorithm_spec(plan.backend, a);

  if (!opt.tune.empty()) {
    if (host) throw Error("--tune: the host backend cannot tune (tuning tables choose among GPU kernels)");
    if (!opt.json.empty() && opt.json == opt.tune) throw Error("--json and --tune name the same file");
    probe_writable(opt.tune, "--tune");
    if (!opt.json.empty()) note_ignored("--json does not apply with --tune (the tuning table is the output)");
    if (!opt.algorithms.empty())
      note_ignored("--algorithms does not apply with --tune (it compares every candidate the backend offers)");
  }
  if (!opt.json.empty() && opt.tune.empty()) probe_writable(opt.json, "--json");
  if (host) {
    if (!opt.ll128_max_bytes.empty()) note_ignored("--ll128-max-bytes does not apply to the host backend (no LL128)");
    if (opt.no_start_gate) note_ignored("--no-start-gate does not apply to the host backend (no CUDA graphs)");
  } else if (opt.ranks_given) {
    note_ignored("--ranks does not apply to the gpu backend (the launcher starts one rank per GPU)");
  }

  plan.backend_options.ranks = opt.ranks;
  plan.backend_options.gpus_per_node = opt.gpus_per_node;
  plan.backend_options.max_bytes = plan.counts.back() * elem;
  plan.backend_options.start_gate = !opt.no_start_gate;
  plan.backend_options.first_use_tune = opt.tune.empty();  // --tune measures every candidate itself
  return plan;
}

int run_benchmark(const Options& opt) {
  const Plan plan = check_options(opt);
  const DataType dtype = plan.dtype;
  const std::size_t elem = nvrar::dtype_size(dtype);
  const std::vector<std::size_t>& counts = plan.counts;
  const bench::RunConfig& config = plan.config;
  const std::unique_ptr<bench::Backend> backend = bench::make_backend(plan.backend, plan.backend_options);

  const std::vector<std::string> offered = backend->algorithms();
  std::vector<std::string> algorithms;
  for (const std::string& given : opt.algorithms.empty() ? offered : opt.algorithms) {
    // "name:options" (a launch shape, e.g. oneshot:t256) is the backend's to parse (its syntax was checked above);
    // the name must be offered by this communicator. The library's spelling of a name (auto for nvrar) is taken too
    // and reported under the bench's.
    const std::string a = bench::canonical_algorithm(backend->name(), given);
    const std::string base = a.substr(0, a.find(':'));
    if (std::find(offered.begin(), offered.end(), base) == offered.end())
      throw Error(fmt::format("--algorithms: the {} backend has no algorithm '{}' (it offers: {}; see --help)",
                              backend->name(), given, fmt::join(offered, ", ")));
    if (std::find(algorithms.begin(), algorithms.end(), a) == algorithms.end()) algorithms.push_back(a);
  }

  if (!opt.tune.empty()) return run_tuning(opt, *backend, counts, dtype, config);

  bench::RunInfo info;
  info.backend = backend->name();
  info.device = backend->device();
  info.ranks = backend->ranks();
  info.nodes = backend->nodes();
  info.gpus_per_node = backend->gpus_per_node();
  info.hosts = backend->hosts();
  info.dtype = dtype;
  info.min_bytes = counts.front() * elem;
  info.max_bytes = counts.back() * elem;
  info.step_factor = static_cast<std::size_t>(opt.step_factor);
  info.config = config;
  info.algorithms = algorithms;
  info.notes = backend->notes();
  if (plan.rounded)
    info.notes.push_back(fmt::format("sizes rounded down to whole {}-byte elements", elem));

  const bool root = backend->is_root();
  const std::string date = bench::iso8601_utc_now();
  if (root) bench::print_header(stdout, info);

  std::vector<bench::Result> results;
  bool any_wrong = false;
  for (const std::string& algorithm : algorithms) {
    if (root) bench::print_section_begin(stdout, algorithm);
    std::vector<bench::Result> rows;
    for (std::size_t count : counts) {
      if (count * elem > backend->max_bytes_for(algorithm)) continue;  // e.g. one-shot above its capacity
      const bench::Measurement m = backend->run(algorithm, count, dtype, config);
      rows.push_back(bench::make_result(algorithm, count, dtype, info.ranks, m));
      any_wrong = any_wrong || m.wrong > 0;
      if (root) bench::print_row(stdout, info, rows.back());
    }
    if (root) bench::print_section_end(stdout, rows);
    results.insert(results.end(), rows.begin(), rows.end());
  }
  if (root) bench::print_summary(stdout, info, results);
  if (root && !opt.json.empty()) bench::write_json(opt.json, info, results, date);
  return any_wrong ? kExitWrong : kExitOk;
}

}  // namespace

int main(int argc, char** argv) {
  Options opt;
  CLI::App app{
      "nvrar-bench: all-reduce latency and bandwidth per message size, printed as an nccl-tests table.\n"
      "Exit status: 0 all good, 1 wrong elements found (--check), 2 usage or runtime error."};
  app.add_option("--backend", opt.backend,
                 "Where to run: host (CPU executor, ranks as threads), gpu, or auto "
                 "(gpu when built with it and a GPU is present, else host)")
      ->check(CLI::IsMember({"host", "gpu", "auto"}))
      ->capture_default_str();
  CLI::Option* ranks_option =
      app.add_option("--ranks", opt.ranks, "Host backend: number of ranks (threads); gpu takes them from the launcher")
          ->check(CLI::Range(1, 4096))
          ->capture_default_str();
  app.add_option("--gpus-per-node", opt.gpus_per_node,
                 "Ranks per (virtual) node; 0 takes NVRAR_GPUS_PER_NODE, else all ranks on one node (host) or the "
                 "launcher's local size (gpu)")
      ->check(CLI::Range(0, 4096));
  app.add_option("-b,--min-bytes", opt.min_bytes, "Smallest message in bytes; K, M, G suffixes (powers of 1024)")
      ->capture_default_str();
  app.add_option("-e,--max-bytes", opt.max_bytes,
                 "Largest message in bytes (default: 64M on gpu; 4M on host, whose heaps take ranks x several times "
                 "this in memory)");
  app.add_option("-f,--step-factor", opt.step_factor, "Multiply the size by this much per step")
      ->check(CLI::Range(2, 1 << 20))
      ->capture_default_str();
  app.add_option("-d,--dtype", opt.dtype, "Element type: bf16, fp16, fp32")
      ->check(CLI::IsMember({"bf16", "bfloat16", "fp16", "half", "float16", "fp32", "float", "float32"}))
      ->capture_default_str();
  app.add_option("--algorithms", opt.algorithms,
                 "Comma-separated algorithms, each name[:shape] (default: all the backend offers; names below)")
      ->delimiter(',');
  app.add_option("-n,--iters", opt.iters,
                 "Timed back-to-back calls per round (gpu: calls per CUDA graph; default: gpu 20, host 3)")
      ->check(CLI::Range(1, 1000000));
  app.add_option("-w,--warmup", opt.warmup,
                 "Untimed warm-up calls per size (gpu: graph replays; default: gpu 3, host 1)")
      ->check(CLI::Range(0, 1000000));
  app.add_option("--rounds", opt.rounds,
                 "Timed rounds (gpu: graph replays) per size; time = max over ranks of the per-rank median "
                 "(default: gpu 15, host 3)")
      ->check(CLI::Range(1, 1000000));
  app.add_option("--ll128-max-bytes", opt.ll128_max_bytes,
                 "gpu: Options::ll128_max_bytes of the communicator (default: the tuning table's largest LL128 or "
                 "push size, at least 16M; 0: neither): the largest message the LL128 and push two-shots may take, "
                 "here and in --tune's candidates (so a re-tune that may extend their range needs it)");
  app.add_flag("--no-start-gate", opt.no_start_gate,
               "gpu: time each replay from when the host records the start event, without first aligning the ranks "
               "(spin + one-element all-reduce); for comparison with runs made before the gate");
  app.add_flag("--check", opt.check, "Verify one call per size against a float64 reference and rank 0's output");
  app.add_option("--json", opt.json, "Also write the results as JSON to this file");
  app.add_option("--tune", opt.tune,
                 "Measure every algorithm and launch shape at each size and write the fastest as a tuning table "
                 "(JSON) to this file, for NVRAR_TUNING_FILE or the tuning/ folder");

  app.footer(bench::algorithms_help());

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? kExitOk : kExitError;
  }
  opt.ranks_given = ranks_option->count() > 0;

  try {
    return run_benchmark(opt);
  } catch (const std::exception& e) {
    // The GPU backend's messages already start with the tool's name (they may also reach other callers).
    std::string what = e.what();
    if (what.rfind("nvrar-bench: ", 0) == 0) what.erase(0, std::string("nvrar-bench: ").size());
    std::fprintf(stderr, "nvrar-bench: error: %s\n", what.c_str());
    return kExitError;
  }
}
