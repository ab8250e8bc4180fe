// Where this process sits in a job: rank, world size, local rank and local size, read from the launcher's
// environment (mpirun/OpenMPI, MPICH/Intel MPI (PMI), srun (Slurm), torchrun).
#pragma once

#include <functional>
#include <optional>
#include <string>

namespace nvrar {

struct LaunchInfo {
  int rank = 0;
  int size = 1;
  int local_rank = 0;
  int local_size = 1;
  std::string launcher;  // "openmpi", "pmi", "slurm", "torchrun" or "single" (no launcher variables)
  // torchrun's rendezvous address, used to build NCCL_COMM_ID when no MPI is available.
  std::string master_addr;
  int master_port = 0;
};

// Reads one environment variable; std::nullopt when unset. Tests pass a fake environment.
using EnvLookup = std::function<std::optional<std::string>(const std::string&)>;
EnvLookup process_env();

// Detects the launcher from its variables, in the order OpenMPI, Slurm, PMI (MPICH/Intel MPI), torchrun.
// A launcher whose variables are incomplete or inconsistent (rank >= size, local size missing where it
// cannot be derived, non-numeric values) gives an nvrar::Error naming the variable. No variables at all means
// a single process (rank 0 of 1).
LaunchInfo detect_launch(const EnvLookup& env = process_env());

}  // namespace nvrar
