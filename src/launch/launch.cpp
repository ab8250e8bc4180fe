#include "nvrar/launch.h"

#include <cstdlib>
#include <string>

#include <fmt/format.h>

#include "nvrar/types.h"

namespace nvrar {

namespace {

int parse_int(const std::string& name, const std::string& value) {
  std::size_t used = 0;
  int v = 0;
  try {
    v = std::stoi(value, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used == 0 || used != value.size())
    throw Error(fmt::format("nvrar: launch: environment variable {}='{}' is not an integer", name, value));
  return v;
}

std::optional<int> get_int(const EnvLookup& env, const std::string& name) {
  auto v = env(name);
  if (!v || v->empty()) return std::nullopt;
  return parse_int(name, *v);
}

int require_int(const EnvLookup& env, const std::string& name, const std::string& launcher) {
  auto v = get_int(env, name);
  if (!v) throw Error(fmt::format("nvrar: launch: {} launch detected but {} is not set", launcher, name));
  return *v;
}

// Slurm's SLURM_TASKS_PER_NODE looks like "4(x2),3": the count for the first node is what we need when all
// nodes are alike; a mixed list is rejected since NVRAR needs the same GPUs per node everywhere.
int slurm_tasks_per_node(const std::string& text) {
  int first = -1;
  std::size_t pos = 0;
  while (pos < text.size()) {
    std::size_t end = text.find(',', pos);
    if (end == std::string::npos) end = text.size();
    const std::string item = text.substr(pos, end - pos);
    const std::string count = item.substr(0, item.find('('));
    const int n = parse_int("SLURM_TASKS_PER_NODE", count);
    if (first >= 0 && n != first)
      throw Error(fmt::format("nvrar: launch: SLURM_TASKS_PER_NODE='{}' has nodes with different task counts; "
                              "NVRAR needs the same number of GPUs on every node",
                              text));
    first = n;
    pos = end + 1;
  }
  if (first <= 0) throw Error(fmt::format("nvrar: launch: cannot read SLURM_TASKS_PER_NODE='{}'", text));
  return first;
}

void validate(const LaunchInfo& info) {
  if (info.size <= 0 || info.rank < 0 || info.rank >= info.size)
    throw Error(fmt::format("nvrar: launch ({}): rank {} is not in [0, {})", info.launcher, info.rank, info.size));
  if (info.local_size <= 0 || info.local_rank < 0 || info.local_rank >= info.local_size)
    throw Error(fmt::format("nvrar: launch ({}): rank {} local rank {} is not in [0, {})", info.launcher, info.rank,
                            info.local_rank, info.local_size));
  if (info.size % info.local_size != 0)
    throw Error(fmt::format("nvrar: launch ({}): rank {}: world size {} is not a multiple of the local size {}; "
                            "NVRAR needs the same number of ranks on every node",
                            info.launcher, info.rank, info.size, info.local_size));
}

}  // namespace

EnvLookup process_env() {
  return [](const std::string& name) -> std::optional<std::string> {
    const char* v = std::getenv(name.c_str());
    if (v == nullptr) return std::nullopt;
    return std::string(v);
  };
}

LaunchInfo detect_launch(const EnvLookup& env) {
  LaunchInfo info;
  if (env("OMPI_COMM_WORLD_RANK")) {
    info.launcher = "openmpi";
    info.rank = require_int(env, "OMPI_COMM_WORLD_RANK", "OpenMPI");
    info.size = require_int(env, "OMPI_COMM_WORLD_SIZE", "OpenMPI");
    info.local_rank = require_int(env, "OMPI_COMM_WORLD_LOCAL_RANK", "OpenMPI");
    info.local_size = require_int(env, "OMPI_COMM_WORLD_LOCAL_SIZE", "OpenMPI");
  } else if (env("SLURM_PROCID") && env("SLURM_NTASKS")) {
    info.launcher = "slurm";
    info.rank = require_int(env, "SLURM_PROCID", "Slurm");
    info.size = require_int(env, "SLURM_NTASKS", "Slurm");
    info.local_rank = require_int(env, "SLURM_LOCALID", "Slurm");
    if (auto n = get_int(env, "SLURM_NTASKS_PER_NODE")) {
      info.local_size = *n;
    } else if (auto t = env("SLURM_TASKS_PER_NODE")) {
      info.local_size = slurm_tasks_per_node(*t);
    } else {
      throw Error("nvrar: launch: Slurm launch detected but neither SLURM_NTASKS_PER_NODE nor SLURM_TASKS_PER_NODE "
                  "is set");
    }
  } else if (env("PMI_RANK")) {
    info.launcher = "pmi";
    info.rank = require_int(env, "PMI_RANK", "PMI");
    info.size = require_int(env, "PMI_SIZE", "PMI");
    info.local_rank = require_int(env, "MPI_LOCALRANKID", "PMI");
    info.local_size = require_int(env, "MPI_LOCALNRANKS", "PMI");
  } else if (env("RANK") && env("WORLD_SIZE")) {
    info.launcher = "torchrun";
    info.rank = require_int(env, "RANK", "torchrun");
    info.size = require_int(env, "WORLD_SIZE", "torchrun");
    info.local_rank = require_int(env, "LOCAL_RANK", "torchrun");
    info.local_size = require_int(env, "LOCAL_WORLD_SIZE", "torchrun");
  } else {
    info.launcher = "single";
  }
  if (auto addr = env("MASTER_ADDR")) info.master_addr = *addr;
  if (auto port = get_int(env, "MASTER_PORT")) info.master_port = *port;
  validate(info);
  return info;
}

}  // namespace nvrar
