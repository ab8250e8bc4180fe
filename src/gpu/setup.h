// The communicator's setup steps that are collectives over its NCCL communicator: node discovery, the tuning table
// every rank agrees on (and the selection policy built from it), and the check that every rank sized the exchange
// areas alike.
#pragma once

#include <nccl.h>

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "config/settings.h"
#include "gpu/algorithms/algorithm.h"
#include "core/topology.h"
#include "gpu/first_use_tune.h"
#include "nvrar/nvrar.h"
#include "select/selection.h"

namespace nvrar::gpu {

// The settings (config::settings()), agreed: every rank reads them, and if any rank refuses a value every rank throws
// (the refusing one with its message, the others naming it), so no rank is left waiting in the next collective.
const config::Settings& agreed_settings(ncclComm_t nccl, int rank, int nranks);

// Nodes are hosts (by host name) unless gpus_per_node (0: the ranks of this host) says smaller virtual nodes; a
// (virtual) node never spans hosts. Throws nvrar::Error naming the rank otherwise.
core::Topology discover_topology(ncclComm_t nccl, int rank, int nranks, int gpus_per_node);

struct SelectionSetup {
  std::unique_ptr<select::Policy> policy;
  std::string source;  // Communicator::tuning_source()
  TuneDecision tune;   // kMeasure: the communicator measures a table once it is set up (finish_first_use_tune)
};
// The tuning table (Options, NVRAR_TUNING_FILE, or a shipped one for this card and topology; else, by NVRAR_TUNE, the
// first-use tune's cached table or none yet; else the cost model), the same on every rank (fingerprints compared, rank
// 0's cache broadcast), and the policy built from it with the settings.
SelectionSetup make_selection_policy(ncclComm_t nccl, int rank, int nranks, const core::Topology& topo,
                                     const Options& options, const config::Settings& settings, int device);

// Where setup decided to measure: measures (first_use_tune.h) on the set-up communicator and rebuilds `policy` in
// place (the algorithms keep no pointer to it past setup) from the measured table. Returns the new tuning source.
std::string finish_first_use_tune(Communicator& comm, ncclComm_t nccl, const TuneDecision& decision,
                                  const core::Topology& topo, const config::Settings& settings, select::Policy& policy);

// The capacities size the exchange areas and must be equal on every rank: peers store at offsets computed from their
// own values (a larger layout on one rank would write past the area of another). Throws on every rank otherwise.
using NamedSizes = std::vector<std::pair<std::string, uint64_t>>;
void check_sizes_agree(ncclComm_t nccl, int rank, int nranks, const NamedSizes& sizes);

// What every algorithm entry is set up with: the shared kernel state, the topology, the options and the settings the
// launch shapes follow; the grid limit from the SM count (or NVRAR_MAX_BLOCKS), at most kMaxBlocks.
AlgorithmSetup make_algorithm_setup(const KernelCommon& common, const core::Topology& topo, const Options& options,
                                    const select::Policy* policy, const config::Settings& settings, int sms);

// Communicator::describe(): "P=4 (N=1 x G=4), bootstrap mpi, NVSHMEM x.y.z, inter-node puts, <each algorithm>, ...".
std::string describe_setup(const core::Topology& topo, const std::string& bootstrap,
                           const std::vector<std::unique_ptr<AllreduceAlgorithm>>& algorithms, int max_blocks);

}  // namespace nvrar::gpu
