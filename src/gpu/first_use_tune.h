// First-use tuning, the GPU half: the decision at setup (explicit or shipped table, the cache, or measure) and the
// measurement itself, run inside communicator creation before the first collective of the caller. The decisions, the
// cache, the plan and the table-making are select/first_use_tune.h (CPU, unit-tested); this file times candidates.
//
// Timing (as nvrar-bench's GPU backend, shorter): per (size, candidate) one eager call (lets NCCL connect outside a
// capture), then kCalls back-to-back calls captured into one CUDA graph, kWarmup untimed replays and kRounds replays
// timed with CUDA events after a one-element NCCL all-reduce that starts the ranks together; per call = the median
// replay / kCalls; then the maximum over ranks of every time (one NCCL all-reduce). Rank 0 turns the times into a
// table and broadcasts it, so every rank uses the same one.
#pragma once

#include <nccl.h>

#include <optional>
#include <string>

#include "config/settings.h"
#include "core/topology.h"
#include "nvrar/nvrar.h"
#include "select/first_use_tune.h"

namespace nvrar::gpu {

// What setup decided about the table (make_selection_policy fills it, the communicator acts on it).
struct TuneDecision {
  select::TableAction action = select::TableAction::kCostModel;
  select::TuneMode mode = select::TuneMode::kAuto;
  select::TuneKey key;
  std::string cache_path;  // this rank's cache file ("" where there is no cache folder); rank 0's is written
};

// The decision, collective: rank 0 decides (explicit or shipped table, both compared across ranks beforehand; its
// NVRAR_TUNE; in auto its cache) and broadcasts the action, then for a cache hit its table (returned in `cached`), so
// every rank takes the same table or measures. may_measure: Options::first_use_tune (rank 0's counts). Warnings about
// unusable cache files are printed by rank 0.
TuneDecision decide_first_use_tune(ncclComm_t nccl, int rank, int nranks, const core::Topology& topo,
                                   const std::string& card, const config::Settings& settings, bool explicit_file,
                                   bool shipped, bool may_measure, std::optional<select::TuningTable>& cached);

// Measures the plan for `comm` (fully set up, no call of the caller's in flight) and returns the table, the same on
// every rank; rank 0 writes it to decision.cache_path (a failure to write is a warning). Collective.
select::TuningTable run_first_use_tune(Communicator& comm, ncclComm_t nccl, const TuneDecision& decision);

}  // namespace nvrar::gpu
