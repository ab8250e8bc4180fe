// nvrar-bench rows of multi-node runs as network-fit points (model/calibrate.h, network_points_from_bench): the same
// fit calibrate_network does for published times, with our implementation's profile, so a cluster's own bench run
// calibrates the network latency and bandwidth (scripts/cluster-check.sh).
#include <fmt/format.h>

#include "model/calibrate.h"

namespace nvrar::model {

std::vector<PublishedPoints> network_points_from_bench(const std::vector<BenchReport>& reports,
                                                       std::vector<std::string>& notes) {
  std::vector<PublishedPoints> out;
  for (const BenchReport& r : reports) {
    if (r.nodes < 2) continue;  // single-node reports are calibrate()'s
    if (r.hosts == 0) {
      notes.push_back(fmt::format("{}: {} nodes, but the report does not say on how many hosts (an nvrar-bench older "
                                  "than the 'hosts' field): not used for the network fit",
                                  r.origin, r.nodes));
      continue;
    }
    if (r.hosts < r.nodes) {
      notes.push_back(fmt::format("{}: {} nodes on {} host(s), so some inter-node steps ran over NVLink: not used for "
                                  "the network fit",
                                  r.origin, r.nodes, r.hosts));
      continue;
    }
    PublishedPoints f;
    f.origin = r.origin;
    f.source = fmt::format("nvrar-bench, {}", r.origin);
    f.device = r.device;
    f.profile = "ours";
    f.algorithm = "nvrar";  // calibrate_network's name for NVRAR's algorithm
    f.nodes = r.nodes;
    f.gpus_per_node = r.gpus_per_node;
    for (const char* algorithm : {"hierarchical", "nvrar"}) {
      for (const BenchPoint& p : r.points)
        if (p.algorithm == algorithm && p.time_us > 0) f.points.push_back(p);
      if (!f.points.empty()) break;
    }
    if (f.points.empty()) {
      notes.push_back(fmt::format("{}: no 'hierarchical' or 'nvrar' rows: not used for the network fit", r.origin));
      continue;
    }
    for (BenchPoint& p : f.points) p.algorithm = "nvrar";
    out.push_back(std::move(f));
  }
  return out;
}

}  // namespace nvrar::model
