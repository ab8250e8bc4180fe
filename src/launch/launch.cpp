#include "nvrar/launch.h"

#include <cstdlib>
#include <stdexcept>
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
  } catch (const std::out_of_range&) {
    throw Error(fmt::format("nvrar: launch: environment variable {}='{}' is out of the range of an int", name, value));
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

namespace {

// A launcher that names all four numbers in its own variables.
struct LauncherVars {
  const char* launcher;
  const char* label;  // for messages
  const char* detect_a;
  const char* detect_b;  // nullptr: detect_a alone identifies the launcher
  const char* rank;
  const char* size;
  const char* local_rank;
  const char* local_size;  // nullptr: derived (Slurm)
};

// Checked in this order: an MPI launcher inside a Slurm allocation sets both families of variables.
constexpr LauncherVars kLaunchers[] = {
    {"openmpi", "OpenMPI", "OMPI_COMM_WORLD_RANK", nullptr, "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE",
     "OMPI_COMM_WORLD_LOCAL_RANK", "OMPI_COMM_WORLD_LOCAL_SIZE"},
    {"slurm", "Slurm", "SLURM_PROCID", "SLURM_NTASKS", "SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID", nullptr},
    {"pmi", "PMI", "PMI_RANK", nullptr, "PMI_RANK", "PMI_SIZE", "MPI_LOCALRANKID", "MPI_LOCALNRANKS"},
    {"torchrun", "torchrun", "RANK", "WORLD_SIZE", "RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE"},
};

// Slurm gives the local size as SLURM_NTASKS_PER_NODE, or only as the SLURM_TASKS_PER_NODE list.
int slurm_local_size(const EnvLookup& env) {
  if (auto n = get_int(env, "SLURM_NTASKS_PER_NODE")) return *n;
  if (auto t = env("SLURM_TASKS_PER_NODE")) return slurm_tasks_per_node(*t);
  throw Error("nvrar: launch: Slurm launch detected but neither SLURM_NTASKS_PER_NODE nor SLURM_TASKS_PER_NODE "
              "is set");
}

}  // namespace

LaunchInfo detect_launch(const EnvLookup& env) {
  LaunchInfo info;
  info.launcher = "single";
  for (const LauncherVars& l : kLaunchers) {
    if (!env(l.detect_a) || (l.detect_b != nullptr && !env(l.detect_b))) continue;
    info.launcher = l.launcher;
    info.rank = require_int(env, l.rank, l.label);
    info.size = require_int(env, l.size, l.label);
    info.local_rank = require_int(env, l.local_rank, l.label);
    info.local_size = l.local_size != nullptr ? require_int(env, l.local_size, l.label) : slurm_local_size(env);
    break;
  }
  if (auto addr = env("MASTER_ADDR")) info.master_addr = *addr;
  if (auto port = get_int(env, "MASTER_PORT")) {
    if (*port < 1 || *port > 65535)
      throw Error(fmt::format("nvrar: launch: environment variable MASTER_PORT='{}' is not a TCP port (1 to 65535)",
                              *port));
    info.master_port = *port;
  }
  validate(info);
  return info;
}

}  // namespace nvrar
