#include "gpu/setup.h"

#include <cuda_runtime_api.h>
#include <unistd.h>

#include <algorithm>
#include <functional>

#include <fmt/format.h>

#include "core/hash.h"
#include "gpu/algorithms/hierarchical.h"
#include "gpu/runtime/bootstrap.h"
#include "gpu/runtime/nvshmem_runtime.h"
#include "select/table_source.h"

namespace nvrar::gpu {

namespace {

uint64_t host_hash() {
  char name[256] = {};
  gethostname(name, sizeof(name) - 1);
  return std::hash<std::string>{}(name);
}

}  // namespace

const config::Settings& agreed_settings(ncclComm_t nccl, int rank, int nranks) {
  std::string refusal;
  try {
    config::settings();
  } catch (const Error& e) {
    refusal = e.what();
  }
  const auto all = nccl_allgather_u64(nccl, rank, nranks, refusal.empty() ? 1 : 0);
  if (!refusal.empty()) throw Error(fmt::format("nvrar: rank {} setup: {}", rank, refusal));
  for (int r = 0; r < nranks; ++r)
    if (all[r] == 0)
      throw Error(fmt::format("nvrar: rank {} setup: rank {} refused its NVRAR_* settings (see its message)", rank, r));
  return config::settings();
}

// Nodes are hosts (by host name) unless G says smaller virtual nodes; a (virtual) node never spans hosts.
core::Topology discover_topology(ncclComm_t nccl, int rank, int nranks, int gpus_per_node) {
  const auto hashes = nccl_allgather_u64(nccl, rank, nranks, host_hash());
  int host_ranks = 0;
  for (uint64_t h : hashes) host_ranks += h == hashes[rank] ? 1 : 0;
  const int G = gpus_per_node > 0 ? gpus_per_node : host_ranks;
  const core::Topology topo = core::make_topology(nranks, G, rank);
  if (G > kMaxGpusPerNode)
    throw Error(
        fmt::format("nvrar: rank {} setup: {} GPUs per node exceeds the supported {}", rank, G, kMaxGpusPerNode));
  for (int l = 0; l < G; ++l) {
    const int peer = topo.rank_of(topo.node, l);
    if (hashes[peer] != hashes[rank])
      throw Error(
          fmt::format("nvrar: rank {} setup: node {} of {} GPUs would span hosts (rank {} is on another "
                      "host); ranks must be numbered host by host and NVRAR_GPUS_PER_NODE must divide the "
                      "GPUs per host",
                      rank, topo.node, G, peer));
  }
  return topo;
}

// The tuning table (every rank must decide alike: the tables' fingerprints are compared) and the selection policy.
SelectionSetup make_selection_policy(ncclComm_t nccl, int rank, int nranks, const core::Topology& topo,
                                     const Options& options, const config::Settings& settings, int device) {
  cudaDeviceProp prop{};
  NVRAR_CUDA_CHECK(rank, cudaGetDeviceProperties(&prop, device));
  select::TableSearch search;
  search.file = options.tuning_file.empty() ? settings.tuning_file : options.tuning_file;
  search.directories = settings.tuning_dir.empty()
                           ? std::vector<std::string>{NVRAR_DEFAULT_TUNING_DIR, NVRAR_INSTALLED_TUNING_DIR}
                           : std::vector<std::string>{settings.tuning_dir};
  search.card = prop.name;
  search.ranks = nranks;
  search.nodes = topo.nodes;
  search.gpus_per_node = topo.gpus_per_node;
  select::FoundTable found;
  try {
    found = select::find_tuning_table(search);
  } catch (const Error& e) {
    throw Error(fmt::format("nvrar: rank {} setup: {}", rank, e.what()));
  }
  const auto prints = nccl_allgather_u64(nccl, rank, nranks, found.table ? found.table->fingerprint() : 0);
  for (int r = 0; r < nranks; ++r)
    if (prints[r] != prints[0])
      throw Error(
          fmt::format("nvrar: rank {} setup: ranks 0 and {} use different tuning tables (this rank: {}); "
                      "every rank must read the same file",
                      rank, r, found.table ? found.file : std::string("none, cost model")));
  SelectionSetup out;
  std::optional<select::TuningTable> cached;
  out.tune = decide_first_use_tune(nccl, rank, nranks, topo, search.card, settings, !search.file.empty(),
                                   found.table.has_value(), options.first_use_tune, cached);
  switch (out.tune.action) {
    case select::TableAction::kCache:
      found.table = std::move(cached);
      found.file = out.tune.cache_path + " (first-use tune, cached)";
      break;
    case select::TableAction::kMeasure:
      found.table.reset();  // sized and chosen by the cost model until the measured table replaces it
      break;
    default:
      break;
  }
  out.source = found.table
                   ? fmt::format("tuning table {} ({}, {})", found.file, found.table->card, found.table->created)
                   : fmt::format("cost model {}", settings.model_preset);
  const select::RegisteredRule rule{settings.registered_min_bytes, settings.registered_over_ll128_bytes};
  try {
    out.policy = std::make_unique<select::Policy>(std::move(found.table), settings.model_preset, topo.nodes,
                                                  topo.gpus_per_node, rule, parse_algorithm(settings.algo));
  } catch (const Error& e) {
    throw Error(fmt::format("nvrar: rank {} setup: {}", rank, e.what()));
  }
  return out;
}

std::string finish_first_use_tune(Communicator& comm, ncclComm_t nccl, const TuneDecision& decision,
                                  const core::Topology& topo, const config::Settings& settings, select::Policy& policy) {
  select::TuningTable table = run_first_use_tune(comm, nccl, decision);
  const std::string source =
      fmt::format("tuning table measured at first use ({} entries{}{})", table.entries.size(),
                  decision.cache_path.empty() ? "" : ", cached in ", decision.cache_path);
  const select::RegisteredRule rule{settings.registered_min_bytes, settings.registered_over_ll128_bytes};
  policy = select::Policy(std::move(table), settings.model_preset, topo.nodes, topo.gpus_per_node, rule,
                          parse_algorithm(settings.algo));
  return source;
}

void check_sizes_agree(ncclComm_t nccl, int rank, int nranks, const NamedSizes& sizes) {
  std::vector<uint64_t> values;
  std::string mine;
  for (const auto& [name, value] : sizes) {
    values.push_back(value);
    mine += fmt::format("{}{} {}", mine.empty() ? "" : ", ", name, value);
  }
  const uint64_t h = core::fnv1a64_words(values);
  const auto all = nccl_allgather_u64(nccl, rank, nranks, h);
  for (int r = 0; r < nranks; ++r)
    if (all[r] != h)
      throw Error(fmt::format("nvrar: rank {} setup: rank {} was created with other Options sizes (max_bytes, "
                              "oneshot_max_bytes, ll128_max_bytes; LL128 and push capacities after sizing from the "
                              "tuning table) or another NVRAR_PUSH_PIECE_UNITS than this rank ({}); they size the "
                              "exchange areas and must be the same on every rank",
                              rank, r, mine));
}

AlgorithmSetup make_algorithm_setup(const KernelCommon& common, const core::Topology& topo, const Options& options,
                                    const select::Policy* policy, const config::Settings& settings, int sms) {
  AlgorithmSetup s;
  s.common = common;
  s.topo = topo;
  s.options = &options;
  s.policy = policy;
  s.max_bytes = options.max_bytes;
  s.max_blocks = std::min(settings.max_blocks > 0 ? static_cast<int>(settings.max_blocks) : sms, kMaxBlocks);
  s.nvshmem = shmem::available();
  s.inter_node_stores = settings.inter_node_stores != 0;
  s.push_piece_units = settings.push_piece_units;
  s.chunk_units = static_cast<int>(settings.chunk_units);
  s.bulk_min_bytes = settings.bulk_min_bytes;
  s.bulk_sync = static_cast<int>(settings.bulk_sync);
  return s;
}

std::string describe_setup(const core::Topology& topo, const std::string& bootstrap,
                           const std::vector<std::unique_ptr<AllreduceAlgorithm>>& algorithms, int max_blocks) {
  const char* inter = config::settings().inter_node_stores ? "stores where NVLink-reachable" : "puts";
  std::string s = fmt::format("{}, bootstrap {}, {}", core::describe(topo), bootstrap,
                              shmem::available() ? fmt::format("NVSHMEM {}, inter-node {}", shmem::version(), inter)
                                                 : std::string("no NVSHMEM in this build: NCCL only"));
  for (const auto& a : algorithms) s += ", " + a->describe();
  return s + fmt::format(", {} blocks max", max_blocks);
}

}  // namespace nvrar::gpu
