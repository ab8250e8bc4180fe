#include "core/topology.h"

#include <fmt/format.h>

#include "nvrar/types.h"

namespace nvrar::core {

Topology make_topology(int nranks, int gpus_per_node, int rank) {
  if (nranks <= 0) throw Error(fmt::format("nvrar: rank {} topology: number of ranks must be positive, got {}", rank, nranks));
  if (rank < 0 || rank >= nranks)
    throw Error(fmt::format("nvrar: rank {} topology: rank out of range for {} ranks", rank, nranks));
  if (gpus_per_node <= 0)
    throw Error(fmt::format("nvrar: rank {} topology: GPUs per node must be positive, got {}", rank, gpus_per_node));
  if (nranks % gpus_per_node != 0)
    throw Error(fmt::format(
        "nvrar: rank {} topology: {} ranks is not a whole number of nodes of {} GPUs (NVRAR_GPUS_PER_NODE or the "
        "launcher's local size must divide the world size)",
        rank, nranks, gpus_per_node));
  Topology t;
  t.nranks = nranks;
  t.gpus_per_node = gpus_per_node;
  t.nodes = nranks / gpus_per_node;
  t.rank = rank;
  t.node = rank / gpus_per_node;
  t.local = rank % gpus_per_node;
  while (t.pow2_nodes * 2 <= t.nodes) {
    t.pow2_nodes *= 2;
    ++t.doubling_steps;
  }
  return t;
}

std::string describe(const Topology& t) {
  return fmt::format("P={} (N={} x G={})", t.nranks, t.nodes, t.gpus_per_node);
}

}  // namespace nvrar::core
