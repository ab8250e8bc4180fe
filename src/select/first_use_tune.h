// First-use tuning, its CPU half: where no shipped table matches this card and topology, a communicator measures a
// small table at creation (gpu/first_use_tune.h does the measuring) and caches it. Everything here is pure or touches
// only files, so tests/test_first_use_tune.cpp checks it with fake measurements:
//
//   - the decision (NVRAR_TUNE): off never measures; auto measures only where no explicit or shipped table applies
//     and the cache has none; force always measures (unless a table is named explicitly) and overwrites the cache;
//   - the cache: one file per key (card, ranks, nodes, GPUs per node, CUDA driver version, NVRAR version) in
//     $XDG_CACHE_HOME/nvrar, else ~/.cache/nvrar; written to a temporary file and renamed, so a reader never sees half
//     a file; a corrupt file or one for another key is ignored with a one-line warning, and measured again;
//   - what to measure: the candidates nvrar-bench --tune tries (a shorter list), at doubling sizes thinned until the
//     estimated time fits the budget (a few seconds);
//   - measurements to a table: the fastest correct candidate per size (the code nvrar-bench --tune uses), equal
//     neighbours merged;
//   - agreement: rank 0's table travels to every rank (a broadcast the caller supplies), so all decide alike.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "select/tuning_table.h"

namespace nvrar::select {

enum class TuneMode { kOff, kAuto, kForce };
// "off", "auto", "force" (NVRAR_TUNE); throws nvrar::Error naming NVRAR_TUNE otherwise.
TuneMode parse_tune_mode(const std::string& text);

// NVRAR's version as built (CMake's project version), part of the cache key.
const char* nvrar_version();

// What a cached table was measured for; a table is reused only where every field is equal.
struct TuneKey {
  std::string card;  // cudaDeviceProp::name
  int ranks = 0;
  int nodes = 0;
  int gpus_per_node = 0;
  int driver_version = 0;  // cudaDriverGetVersion
  std::string nvrar_version;
  bool operator==(const TuneKey&) const = default;
  // One line, e.g. "NVIDIA H200, 8 ranks = 2 x 4, driver 13000, NVRAR 0.1.0", for messages.
  std::string describe() const;
};

// The cache folder: $XDG_CACHE_HOME/nvrar where XDG_CACHE_HOME is an absolute path, else $HOME/.cache/nvrar, else ""
// (no cache: the table is measured at every creation). getenv_fn returns nullptr for an unset variable.
std::string tune_cache_dir(const std::function<const char*(const char*)>& getenv_fn);
// The key's file in `dir`: "<card>-np<R>-n<N>-g<G>-<hash of the whole key>.json", the card's name with every
// character outside [A-Za-z0-9._-] replaced by '_'.
std::string tune_cache_path(const std::string& dir, const TuneKey& key);

struct CacheRead {
  std::optional<TuningTable> table;
  std::string warning;  // one line where a file exists but cannot be used ("" when there is none, or it was used)
};
// The cached table for `key` at `path`. A missing file: no table and no warning. A file that cannot be read, is not
// a cache file, holds another key or a table for another topology: no table and a warning naming the file and why.
CacheRead read_tune_cache(const std::string& path, const TuneKey& key);
// Writes key and table to `path` (creating the folder): a temporary file beside it, then rename(), so readers see the
// old file or the new one, never a part. Throws nvrar::Error naming the file on failure.
void write_tune_cache(const std::string& path, const TuneKey& key, const TuningTable& table);

// Where a communicator's table comes from.
enum class TableAction {
  kExplicit,   // Options::tuning_file or NVRAR_TUNING_FILE: always that file
  kShipped,    // a table of NVRAR_TUNING_DIR (default: the shipped ones) for this card and topology
  kCache,      // the first-use tune's cached table
  kMeasure,    // measure one now (and cache it)
  kCostModel,  // no table: the cost model decides
};
const char* table_action_name(TableAction a);

struct TableFacts {
  TuneMode mode = TuneMode::kAuto;
  bool explicit_file = false;  // a table was named (it is then used whatever the mode)
  bool shipped = false;        // a shipped table matches
  bool cache_hit = false;      // the cache has a usable table for the key (only looked at in auto)
  bool can_measure = false;    // more than one rank (on one rank an all-reduce is a copy: nothing to tune)
};
TableAction decide_table(const TableFacts& facts);

// What the communicator can run, for the candidate list (the bench asks its communicator the same questions).
struct TuneCapabilities {
  bool oneshot = false;
  bool hierarchical = false;
  bool ll128 = false;
  bool push = false;
  int64_t oneshot_max_bytes = 0;
  int64_t ll128_max_bytes = 0;
  int64_t push_max_bytes = 0;
};
// The candidates ("name[:option...]", parse_algorithm_spec) at one size: every launch shape nvrar-bench --tune tries
// (full), or the shorter list of the first-use tune (the shapes that won somewhere in the shipped tables). NCCL last.
std::vector<std::string> tuning_candidates(const TuneCapabilities& caps, int64_t bytes, bool full);

struct TunePoint {
  int64_t bytes = 0;
  std::vector<std::string> candidates;
};

struct TuneBudget {
  int64_t min_bytes = int64_t{4} << 10;  // the smallest decode all-reduce of the models of the study
  int64_t max_bytes = int64_t{64} << 20;  // prefill sizes too: above the table's last size calls go to NCCL
  double budget_ms = 3000;                // "a few seconds at most"
  // The estimate of one measurement (gpu/first_use_tune.cpp: graph capture and instantiation, 1 + (warmup + rounds)
  // x calls of the message): fixed_ms + calls x (latency_us + bytes / bandwidth) / 1000.
  double fixed_ms = 3;
  int calls = 71;
  double latency_us = 20;
  double bandwidth_gbs = 100;  // one node's NVLink at worst; callers pass a network's for several nodes
};
// The estimated milliseconds of one measurement at `bytes` (TuneBudget's formula).
double estimate_measurement_ms(const TuneBudget& budget, int64_t bytes);
// Sizes min, min x f, ... <= max (f = 2, 4, 8, ...: the smallest factor whose plan fits the budget), each with its
// short candidate list. The largest size is always kept (the table's end decides where NCCL takes over); where even
// f = max / min does not fit, the plan is the two end sizes.
std::vector<TunePoint> plan_first_use_tune(const TuneCapabilities& caps, const TuneBudget& budget);
double estimate_plan_ms(const std::vector<TunePoint>& plan, const TuneBudget& budget);

// One candidate's result at one size.
struct CandidateTime {
  std::string candidate;
  double time_us = 0;
  bool wrong = false;  // computed a wrong result: never wins
};
// The fastest correct candidate as a table entry of max_bytes = bytes; throws nvrar::Error when none is correct.
TuningEntry fastest_entry(int64_t bytes, const std::vector<CandidateTime>& times);

struct SizeTimes {
  int64_t bytes = 0;
  std::vector<CandidateTime> times;
};
// `header` (card, topology, created, source; its entries ignored) with the fastest entry per size, ascending, equal
// neighbours merged.
TuningTable table_from_measurements(const TuningTable& header, const std::vector<SizeTimes>& sizes);

// Broadcast of `bytes` bytes at `data` from rank 0 to every rank (collective; every rank passes the same size).
using BroadcastFn = std::function<void(void* data, std::size_t bytes)>;
// Every rank returns rank 0's `table` (none where rank 0 has none): its length, then its JSON, are broadcast.
std::optional<TuningTable> agree_on_table(int rank, const std::optional<TuningTable>& table,
                                          const BroadcastFn& broadcast);

}  // namespace nvrar::select
