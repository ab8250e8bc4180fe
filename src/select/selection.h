// The one place that decides which algorithm runs a call. CPU-only and pure: it reads what the call asked for, the
// communicator's Options, the settings (NVRAR_ALGO, NVRAR_REGISTERED_*), the tuning table and the cost model, and what
// the algorithms of this communicator can run, and returns a Choice. Precedence:
//
//   1. the call's own algorithm (allreduce(..., choice)): strict; a choice the call cannot run is an error naming
//      the rank, the call and the algorithm's reason;
//   2. Options::algorithm, else NVRAR_ALGO: taken where they can run the call, auto otherwise (a default set for
//      the decode sizes must not break a prefill above an algorithm's capacity);
//   3. auto: the tuning table's entry for the size (NCCL above its last entry), else the cost model's pick, then
//      settled by settle_auto_choice (capacity and reach fallbacks, the registered two-shot for registered inputs),
//   4. for defaults and auto alike, where Options::auto_may_use_nccl is false: NVRAR's hierarchical kernel instead of
//      NCCL where it can run.
//
// tests/test_selection.cpp pins every rule.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "model/cost_model.h"
#include "nvrar/types.h"
#include "select/tuning_table.h"

namespace nvrar::select {

using nvrar::kAlgorithmCount;  // nvrar/types.h

// What the algorithms of a communicator can do with one call. The communicator answers from its registry; tests
// answer with fixed tables.
class CallView {
 public:
  virtual ~CallView() = default;
  // The algorithm is set up on this communicator (its build, topology and heap allow it).
  virtual bool available(Algorithm a) const = 0;
  // It can run this call in its default launch shape (available, the message fits, the input suits it).
  virtual bool runs(Algorithm a) const = 0;
  // Why `c` cannot run this call, "" when it can (called only for explicit requests, never on auto's path).
  virtual std::string refusal(const Choice& c) const = 0;
};

// Where the registered two-shot takes over for registered inputs: from min_bytes (NVRAR_REGISTERED_MIN_BYTES), and
// over an LL128 or push pick only from over_ll128_bytes (NVRAR_REGISTERED_OVER_LL128_BYTES).
struct RegisteredRule {
  int64_t min_bytes = int64_t{1} << 20;
  int64_t over_ll128_bytes = int64_t{32} << 20;
};

// Auto's last word on a pick: a registered pick this call cannot take and a one-shot pick over its capacity become
// the hierarchical two-shot; an LL128 or push pick over its capacity becomes NCCL (faster than the copy-in
// hierarchical form at those sizes on one node), one where that algorithm is off (e.g. its area did not fit the
// heap) the hierarchical two-shot; a hierarchical pick that cannot run becomes NCCL; then, where the registered
// two-shot can run and the message is at least rule.min_bytes, it replaces the pick, unless the pick is LL128 or push
// and the message is below rule.over_ll128_bytes.
Choice settle_auto_choice(Choice pick, int64_t bytes, const CallView& view, const RegisteredRule& rule);

// The cost model's pick where nothing was measured: one-shot (only on one NVLink domain), hierarchical or NCCL.
Algorithm decide_by_model(const model::Preset& preset, int nodes, bool single_nvlink_domain, int64_t bytes);

// Everything auto decides from besides the call, fixed at communicator setup.
class Policy {
 public:
  // table: the tuning table for this topology, if one applies; else the cost model preset `model_preset` (its GPUs
  // per node set to ours). Throws nvrar::Error naming NVRAR_MODEL_PRESET for an unknown preset.
  Policy(std::optional<TuningTable> table, const std::string& model_preset, int nodes, int gpus_per_node,
         RegisteredRule rule, Algorithm env_algorithm);

  // The table's pick for a message of `bytes`, else NCCL on one rank, else the model's; before settle_auto_choice.
  Choice pick(int64_t bytes, bool single_nvlink_domain) const;
  // The largest message the table gives to `a` (0 if none or no table): sizes the LL128 and push areas.
  int64_t table_max_bytes(Algorithm a) const;
  const std::optional<TuningTable>& table() const { return table_; }
  const RegisteredRule& registered_rule() const { return rule_; }
  Algorithm env_algorithm() const { return env_algorithm_; }

 private:
  struct Entry {
    int64_t max_bytes;
    Choice choice;  // parsed once here, not per call
  };
  std::optional<TuningTable> table_;
  std::vector<Entry> entries_;
  model::Preset preset_;
  int nodes_;
  int ranks_;
  RegisteredRule rule_;
  Algorithm env_algorithm_;
};

// One call as the selection sees it.
struct Request {
  Choice call;                                     // what the call asked for (kAuto: nothing)
  Algorithm options_algorithm = Algorithm::kAuto;  // Options::algorithm
  bool auto_may_use_nccl = true;                   // Options::auto_may_use_nccl
  int64_t bytes = 0;
  int rank = 0;  // for error messages
  const char* call_name = "allreduce";
};

// The algorithm and launch shape of a call, by the precedence above. Throws nvrar::Error for an explicit request
// the call cannot run: "nvrar: rank R <call>: <the algorithm's reason>".
Choice select(const Request& request, const Policy& policy, const CallView& view);

}  // namespace nvrar::select
