// Launcher detection (include/nvrar/launch.h) from fake environments of mpirun, srun, PMI and torchrun.
#include <gtest/gtest.h>

#include <map>
#include <string>

#include "nvrar/launch.h"
#include "nvrar/types.h"

namespace {

nvrar::EnvLookup fake(std::map<std::string, std::string> vars) {
  return [vars](const std::string& name) -> std::optional<std::string> {
    auto it = vars.find(name);
    if (it == vars.end()) return std::nullopt;
    return it->second;
  };
}

std::string error_of(const std::map<std::string, std::string>& vars) {
  try {
    nvrar::detect_launch(fake(vars));
  } catch (const nvrar::Error& e) {
    return e.what();
  }
  return "";
}

TEST(Launch, NoVariablesIsASingleProcess) {
  const auto info = nvrar::detect_launch(fake({}));
  EXPECT_EQ(info.launcher, "single");
  EXPECT_EQ(info.rank, 0);
  EXPECT_EQ(info.size, 1);
  EXPECT_EQ(info.local_size, 1);
}

TEST(Launch, OpenMpi) {
  const auto info = nvrar::detect_launch(fake({{"OMPI_COMM_WORLD_RANK", "5"}, {"OMPI_COMM_WORLD_SIZE", "8"},
                                               {"OMPI_COMM_WORLD_LOCAL_RANK", "1"}, {"OMPI_COMM_WORLD_LOCAL_SIZE", "4"}}));
  EXPECT_EQ(info.launcher, "openmpi");
  EXPECT_EQ(info.rank, 5);
  EXPECT_EQ(info.size, 8);
  EXPECT_EQ(info.local_rank, 1);
  EXPECT_EQ(info.local_size, 4);
}

TEST(Launch, SlurmWithTasksPerNodeList) {
  const auto info = nvrar::detect_launch(
      fake({{"SLURM_PROCID", "6"}, {"SLURM_NTASKS", "8"}, {"SLURM_LOCALID", "2"}, {"SLURM_TASKS_PER_NODE", "4(x2)"}}));
  EXPECT_EQ(info.launcher, "slurm");
  EXPECT_EQ(info.local_size, 4);
  EXPECT_EQ(info.local_rank, 2);
}

TEST(Launch, SlurmRejectsUnevenNodes) {
  const std::string msg =
      error_of({{"SLURM_PROCID", "0"}, {"SLURM_NTASKS", "7"}, {"SLURM_LOCALID", "0"}, {"SLURM_TASKS_PER_NODE", "4,3"}});
  EXPECT_NE(msg.find("different task counts"), std::string::npos) << msg;
}

TEST(Launch, PmiFromMpichOrIntelMpi) {
  const auto info = nvrar::detect_launch(
      fake({{"PMI_RANK", "3"}, {"PMI_SIZE", "4"}, {"MPI_LOCALRANKID", "3"}, {"MPI_LOCALNRANKS", "4"}}));
  EXPECT_EQ(info.launcher, "pmi");
  EXPECT_EQ(info.rank, 3);
}

TEST(Launch, TorchrunWithRendezvousAddress) {
  const auto info = nvrar::detect_launch(fake({{"RANK", "1"}, {"WORLD_SIZE", "2"}, {"LOCAL_RANK", "1"},
                                               {"LOCAL_WORLD_SIZE", "2"}, {"MASTER_ADDR", "10.0.0.1"},
                                               {"MASTER_PORT", "29500"}}));
  EXPECT_EQ(info.launcher, "torchrun");
  EXPECT_EQ(info.master_addr, "10.0.0.1");
  EXPECT_EQ(info.master_port, 29500);
}

TEST(Launch, ClearErrorsForBrokenEnvironments) {
  EXPECT_NE(error_of({{"RANK", "0"}, {"WORLD_SIZE", "2"}, {"LOCAL_RANK", "0"}}).find("LOCAL_WORLD_SIZE is not set"),
            std::string::npos);
  EXPECT_NE(error_of({{"OMPI_COMM_WORLD_RANK", "x"}, {"OMPI_COMM_WORLD_SIZE", "2"}}).find("'x' is not an integer"),
            std::string::npos);
  EXPECT_NE(error_of({{"RANK", "2"}, {"WORLD_SIZE", "2"}, {"LOCAL_RANK", "0"}, {"LOCAL_WORLD_SIZE", "2"}})
                .find("rank 2 is not in [0, 2)"),
            std::string::npos);
  EXPECT_NE(error_of({{"RANK", "0"}, {"WORLD_SIZE", "6"}, {"LOCAL_RANK", "0"}, {"LOCAL_WORLD_SIZE", "4"}})
                .find("world size 6 is not a multiple of the local size 4"),
            std::string::npos);
}

}  // namespace
