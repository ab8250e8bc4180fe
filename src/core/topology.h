// Topology of a hierarchical all-reduce: P ranks = N nodes x G GPUs per node, numbered node-major.
//
// Shared by the CPU executor and the CUDA kernels. A topology is always valid once built: make_topology()
// (host) rejects P not divisible by G with an nvrar::Error before any kernel sees it.
#pragma once

#include <string>

#include "core/hd.h"

namespace nvrar::core {

struct Topology {
  int nranks = 1;         // P
  int gpus_per_node = 1;  // G: ranks sharing one NVLink domain (real or virtual node)
  int nodes = 1;          // N = P / G
  int rank = 0;           // this rank, node * G + local
  int node = 0;
  int local = 0;
  // Recursive doubling runs over the largest power of two pow2_nodes <= N; the N - pow2_nodes "excess" nodes
  // fold their slice into node (n - pow2_nodes) before the doubling and get the result back after it.
  int pow2_nodes = 1;
  int doubling_steps = 0;  // log2(pow2_nodes)

  NVRAR_HD int rank_of(int node_index, int local_index) const { return node_index * gpus_per_node + local_index; }
  // An excess node only sends its slice to its fold partner and receives the result.
  NVRAR_HD bool is_excess_node() const { return node >= pow2_nodes; }
  // A node below N - pow2_nodes receives one excess node's slice before doubling and returns the result.
  NVRAR_HD bool has_fold_partner() const { return node < nodes - pow2_nodes; }
  NVRAR_HD int fold_partner_node() const { return is_excess_node() ? node - pow2_nodes : node + pow2_nodes; }
  // Partner in doubling step k (0-based) for a node below pow2_nodes.
  NVRAR_HD int doubling_partner_node(int step) const { return node ^ (1 << step); }
};

// Builds the topology of `rank` in a job of `nranks` ranks with `gpus_per_node` per node.
// Throws nvrar::Error naming the rank and the cause if nranks <= 0, gpus_per_node <= 0, rank out of range,
// or nranks is not a multiple of gpus_per_node.
Topology make_topology(int nranks, int gpus_per_node, int rank);

// "P=12 (N=3 x G=4)" for messages and tables.
std::string describe(const Topology& topo);

}  // namespace nvrar::core
