// Shared pieces of the nvrar-llm subcommands (common.h).
#include "llm/common.h"

#include <algorithm>

#include <fmt/format.h>

namespace nvrar::llm {

double percentile(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  const double pos = p / 100.0 * static_cast<double>(v.size() - 1);
  const std::size_t lo = static_cast<std::size_t>(pos);
  const std::size_t hi = std::min(lo + 1, v.size() - 1);
  return v[lo] + (v[hi] - v[lo]) * (pos - static_cast<double>(lo));
}

std::optional<engine::Checkpoint> open_checkpoint(const std::string& dir, const engine::ModelConfig& config) {
  if (dir.empty()) return std::nullopt;
  std::optional<nvrar::engine::Checkpoint> checkpoint(std::in_place, dir);
  nvrar::engine::check_checkpoint(config, *checkpoint);
  return checkpoint;
}

std::unique_ptr<Communicator> make_comm(int tp, eg::AllReduceBackend backend) {
  auto comm = nvrar::Communicator::create(eg::communicator_options(backend));
  if (comm->size() != tp)
    throw Error(fmt::format("nvrar-llm: rank {}: --tp {} but the launcher started {} processes (one per GPU)",
                            comm->rank(), tp, comm->size()));
  return comm;
}

}  // namespace nvrar::llm
