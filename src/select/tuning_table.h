// The tuner's data: which algorithm and launch shape runs a call of a given size, for one topology.
//
// A tuning table is measured by `nvrar-bench --tune FILE` on the machine it is for and saved as JSON:
//   {"format": "nvrar-tuning-1", "card": "NVIDIA H100 80GB HBM3", "created": "...",
//    "ranks": 4, "nodes": 1, "gpus_per_node": 4,
//    "entries": [{"max_bytes": 65536, "algorithm": "oneshot", "threads": 256, "blocks": 0, "bulk": -1,
//                 "time_us": 4.1}, ...]}
// Entries are sorted by max_bytes; a call of B bytes takes the first entry with max_bytes >= B; calls larger than
// the last entry go to NCCL. A table applies only to the topology it names (ranks, nodes, GPUs per node).
// Where no table applies, the selection module decides with the cost model (select/selection.h).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace nvrar::select {

// Algorithms a table may name (the runtime's, see nvrar::Algorithm): "oneshot", "hierarchical", "ll128", "push",
// "nccl".
struct TuningEntry {
  int64_t max_bytes = 0;
  std::string algorithm;
  int threads = 0;   // 0: the kernel's own choice
  int blocks = 0;    // 0: the kernel's own choice
  int bulk = -1;     // hierarchical only: 1 bulk form, 0 cells, -1 by NVRAR_BULK_MIN_BYTES
  int piece_units = 0;  // push only: 16-byte units per piece, 0: NVRAR_PUSH_PIECE_UNITS (written only when set)
  double time_us = 0;  // what the tuning run measured (informative)
};

struct TuningTable {
  std::string card;
  std::string created;
  std::string source;  // how it was measured (informative), e.g. "nvrar-bench --tune"
  int ranks = 0;
  int nodes = 0;
  int gpus_per_node = 0;
  std::vector<TuningEntry> entries;

  // The entry for a call of `bytes`, nullptr above the last entry (NCCL).
  const TuningEntry* lookup(int64_t bytes) const;
  bool matches(int ranks_, int nodes_, int gpus_per_node_) const {
    return ranks == ranks_ && nodes == nodes_ && gpus_per_node == gpus_per_node_;
  }
  // 64-bit FNV-1a of the canonical JSON: ranks compare it so that every rank decides alike.
  uint64_t fingerprint() const;
};

// The text form of a choice, as nvrar-bench takes it: "name[:option...]", options t<threads>, b<blocks>, bulk,
// cells, p<piece units>; e.g. "oneshot:t128", "hierarchical:bulk:b64", "push:t256:p1024". The name is not checked here (the bench has more names than
// a table); options are, with errors naming the spec.
struct AlgorithmSpec {
  std::string name;
  int threads = 0;
  int blocks = 0;
  int bulk = -1;
  int piece_units = 0;
};
AlgorithmSpec parse_algorithm_spec(const std::string& spec);

// Parses and validates a table (JSON text); `origin` names the file in errors. Throws nvrar::Error naming the field.
TuningTable parse_tuning_table(const std::string& json_text, const std::string& origin);
TuningTable load_tuning_table(const std::string& path);
std::string tuning_table_json(const TuningTable& table);
void save_tuning_table(const TuningTable& table, const std::string& path);

// Adjacent entries with the same choice merged, so the table reads as a few size ranges.
TuningTable merge_equal_neighbours(const TuningTable& table);

}  // namespace nvrar::select
