// The network fit from multi-node nvrar-bench reports (model/calibrate.h: network_points_from_bench, then
// calibrate_network), on synthetic reports: times made by the cost model from known network parameters, with +-3%
// noise, written as nvrar-bench JSON. The fit must recover the parameters within 10% (kTolerance) and keep the
// intra-node ones; and nvrar-model --calibrate, as scripts/cluster-check.sh runs it, must do the same.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <sys/wait.h>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "model/calibrate.h"
#include "model/cost_model.h"
#include "nvrar/types.h"

namespace {

namespace model = nvrar::model;

// What the synthetic cluster's network is (the preset's own are 2.0 us and 50 GB/s: the fit must move away from them).
constexpr double kTrueAlphaUs = 6.5;
constexpr double kTrueBandwidthGbs = 37.0;
constexpr double kNoise = 0.03;      // each time off by up to +-3%, as repeated runs on a real network are
constexpr double kTolerance = 0.10;  // the fitted parameters within 10% of the truth

model::Preset truth() {
  model::Preset p = model::find_preset("h100-ndr400");
  p.inter.alpha_us = kTrueAlphaUs;
  p.inter.bandwidth_gbs = kTrueBandwidthGbs;
  return p;
}

// An nvrar-bench JSON report of `nodes` x the preset's GPUs on `hosts` hosts: "hierarchical" rows from the model with
// noise, and "nccl" rows (which the network fit must not use) from NCCL's model with noise.
std::string synthetic_report(const model::Preset& p, int nodes, int hosts, std::mt19937& rng, bool with_hosts = true) {
  std::uniform_real_distribution<double> noise(1 - kNoise, 1 + kNoise);
  nlohmann::ordered_json j;
  j["tool"] = "nvrar-bench";
  j["backend"] = "gpu";
  j["device"] = "synthetic";
  j["ranks"] = nodes * p.gpus_per_node;
  j["nodes"] = nodes;
  j["gpus_per_node"] = p.gpus_per_node;
  if (with_hosts) j["hosts"] = hosts;
  j["dtype"] = "bfloat16";
  nlohmann::ordered_json rows = nlohmann::ordered_json::array();
  for (double bytes = 4096; bytes <= 4 << 20; bytes *= 2) {
    const double nvrar = model::nvrar_breakdown(p, model::find_profile("ours"), nodes, bytes).total_us();
    const double nccl =
        model::best_algorithm(p, nodes, bytes, {model::Algorithm::kNcclRing, model::Algorithm::kNcclTree}).time_us;
    rows.push_back({{"algorithm", "hierarchical"}, {"bytes", bytes}, {"count", bytes / 2}, {"time_us", nvrar * noise(rng)}});
    rows.push_back({{"algorithm", "nccl"}, {"bytes", bytes}, {"count", bytes / 2}, {"time_us", nccl * noise(rng)}});
  }
  j["results"] = std::move(rows);
  return j.dump(2);
}

TEST(ModelNetwork, FitRecoversSyntheticNetworkParameters) {
  std::mt19937 rng(2026);
  const model::Preset real = truth();
  std::vector<model::BenchReport> reports;
  for (int nodes : {2, 3, 4, 8})  // 3: the fold steps of a node count that is not a power of two
    reports.push_back(model::parse_bench_report(synthetic_report(real, nodes, nodes, rng), "np" + std::to_string(nodes)));
  std::vector<std::string> notes;
  const std::vector<model::PublishedPoints> points = model::network_points_from_bench(reports, notes);
  ASSERT_EQ(points.size(), 4u);
  EXPECT_TRUE(notes.empty());
  for (const model::PublishedPoints& f : points) EXPECT_EQ(f.points.size(), 11u) << f.origin;  // no NCCL rows

  model::Preset fitted = model::find_preset("h100-ndr400");  // starts from 2.0 us, 50 GB/s
  const model::LinkParams intra_before = fitted.intra;
  const model::NetworkCalibration c = model::calibrate_network(points, fitted);
  ASSERT_TRUE(c.fitted);
  EXPECT_NEAR(c.alpha_us, kTrueAlphaUs, kTolerance * kTrueAlphaUs);
  EXPECT_NEAR(c.bandwidth_gbs, kTrueBandwidthGbs, kTolerance * kTrueBandwidthGbs);
  EXPECT_EQ(fitted.inter.alpha_us, c.alpha_us);
  EXPECT_LT(c.fit.rms_relative, kNoise);  // the model reproduces the points within their noise
  // The intra-node parameters are kept.
  EXPECT_EQ(fitted.intra.alpha_us, intra_before.alpha_us);
  EXPECT_EQ(fitted.intra.bandwidth_gbs, intra_before.bandwidth_gbs);
  EXPECT_EQ(fitted.intra.message_us, intra_before.message_us);
}

TEST(ModelNetwork, VirtualNodesAndOldReportsAreNotUsed) {
  std::mt19937 rng(7);
  const model::Preset real = truth();
  std::vector<model::BenchReport> reports = {
      model::parse_bench_report(synthetic_report(real, 2, 1, rng), "virtual.json"),  // 2 nodes on one host
      model::parse_bench_report(synthetic_report(real, 2, 2, rng, false), "old.json"),
      model::parse_bench_report(synthetic_report(real, 1, 1, rng), "one-node.json"),
  };
  EXPECT_EQ(reports[0].hosts, 1);
  EXPECT_EQ(reports[1].hosts, 0);
  std::vector<std::string> notes;
  EXPECT_TRUE(model::network_points_from_bench(reports, notes).empty());
  ASSERT_EQ(notes.size(), 2u);  // the one-node report is calibrate()'s, without a note here
  EXPECT_NE(notes[0].find("virtual.json: 2 nodes on 1 host(s)"), std::string::npos) << notes[0];
  EXPECT_NE(notes[1].find("old.json"), std::string::npos) << notes[1];
  EXPECT_THROW(model::parse_bench_report(R"({"ranks": 2, "nodes": 2, "gpus_per_node": 1, "hosts": 0, "results": []})",
                                         "zero-hosts.json"),
               nvrar::Error);
}

#ifdef NVRAR_MODEL_PATH
// nvrar-model --calibrate with a single-node report (the intra-node fit) and multi-node ones (the network fit), as
// scripts/cluster-check.sh calls it; the fitted parameters are read back from its --json output.
TEST(ModelNetwork, CommandLineRecoversThem) {
  const std::filesystem::path dir = std::filesystem::path(testing::TempDir()) / "nvrar_model_network";
  std::filesystem::create_directories(dir);
  std::mt19937 rng(11);
  const model::Preset real = truth();
  std::string files;
  for (int nodes : {1, 2, 4}) {
    const std::filesystem::path path = dir / ("bench_n" + std::to_string(nodes) + ".json");
    std::ofstream(path) << synthetic_report(real, nodes, nodes, rng);
    files += " --calibrate " + path.string();
  }
  const std::filesystem::path out = dir / "model.json";
  const std::string command = std::string(NVRAR_MODEL_PATH) + " --preset h100-ndr400" + files +
                              " --nodes 1,2,4 --sizes 64K..1M --json " + out.string() + " > " +
                              (dir / "stdout.txt").string() + " 2>&1";
  ASSERT_EQ(std::system(command.c_str()), 0) << command;
  std::ifstream in(out);
  const nlohmann::json j = nlohmann::json::parse(in);
  ASSERT_TRUE(j.contains("network_calibration")) << j.dump(2);
  const double alpha = j["network_calibration"]["alpha_us"].get<double>();
  const double bandwidth = j["network_calibration"]["bandwidth_gbs"].get<double>();
  EXPECT_NEAR(alpha, kTrueAlphaUs, kTolerance * kTrueAlphaUs);
  EXPECT_NEAR(bandwidth, kTrueBandwidthGbs, kTolerance * kTrueBandwidthGbs);
  EXPECT_TRUE(j["calibration"]["intra_fitted"].get<bool>());
  // The intra-node fit (from the one-node report, made with the preset's own NVLink) lands near the preset's values.
  EXPECT_NEAR(j["preset"]["intra"]["bandwidth_gbs"].get<double>(), real.intra.bandwidth_gbs,
              0.2 * real.intra.bandwidth_gbs);
  EXPECT_EQ(j["rows"].size(), 3u * 5u);  // 3 node counts x 64K..1M
  std::filesystem::remove_all(dir);
}
#endif

#ifdef NVRAR_CLUSTER_SCRIPT
// scripts/cluster-check.sh on CPU: its model and report steps on synthetic bench reports of a 2 x 8 cluster (the
// network fit through the script, the report with its heatmap), and the launch commands --dry-run prints.
class ClusterScript : public testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::path(testing::TempDir()) /
           ("nvrar_cluster_" + std::string(testing::UnitTest::GetInstance()->current_test_info()->name()));
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_ / "bin");
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  // Runs the script with `args` (and `env` before it); returns its exit status, its output in `output`.
  int script(const std::string& args, std::string& output, const std::string& env = "") {
    const std::string log = (dir_ / "script.log").string();
    const std::string command = env + " /bin/bash " NVRAR_CLUSTER_SCRIPT " " + args + " > " + log + " 2>&1";
    const int status = std::system(command.c_str());
    std::ifstream in(log);
    std::stringstream text;
    text << in.rdbuf();
    output = text.str();
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }
  // An executable stand-in for a launcher on PATH (the script only asks whether it exists).
  void fake_tool(const std::string& name) {
    const std::filesystem::path path = dir_ / "bin" / name;
    std::ofstream(path) << "#!/bin/sh\nexit 0\n";
    std::filesystem::permissions(path, std::filesystem::perms::owner_all);
  }
  std::filesystem::path dir_;
};

TEST_F(ClusterScript, ModelAndReportStepsRecoverTheNetwork) {
  std::mt19937 rng(5);
  const model::Preset real = truth();
  std::ofstream(dir_ / "bench_n1_g8.json") << synthetic_report(real, 1, 1, rng);
  std::ofstream(dir_ / "bench_n2_g8.json") << synthetic_report(real, 2, 2, rng);
  std::string out;
  ASSERT_EQ(script("--steps model,report --nodes 2 --gpus-per-node 8 --build " NVRAR_BUILD_DIR " --out " +
                       dir_.string(), out),
            0)
      << out;
  std::ifstream in(dir_ / "model.json");
  const nlohmann::json j = nlohmann::json::parse(in);
  EXPECT_NEAR(j["network_calibration"]["alpha_us"].get<double>(), kTrueAlphaUs, kTolerance * kTrueAlphaUs);
  EXPECT_NEAR(j["network_calibration"]["bandwidth_gbs"].get<double>(), kTrueBandwidthGbs,
              kTolerance * kTrueBandwidthGbs);
  EXPECT_EQ(j["preset"]["gpus_per_node"].get<int>(), 8);
  std::ifstream report_file(dir_ / "report.md");
  std::stringstream report;
  report << report_file.rdbuf();
  const std::string r = report.str();
  EXPECT_NE(r.find("# NVRAR cluster check: 2 x 8 GPUs"), std::string::npos) << r;
  EXPECT_NE(r.find("- Network: alpha "), std::string::npos) << r;
  EXPECT_NE(r.find("(fitted, rms error"), std::string::npos) << r;
  EXPECT_NE(r.find("NVRAR speedup over NCCL (nccl-best / nvrar)"), std::string::npos) << r;  // the heatmap as text
  EXPECT_NE(r.find("| 4K | "), std::string::npos) << r;  // the measured table
  EXPECT_NE(r.find("No tuning_n2_g8.json"), std::string::npos) << r;  // the tune step did not run here
}

TEST_F(ClusterScript, DryRunPrintsEachLaunchersCommands) {
  std::string out;
  ASSERT_EQ(script("--dry-run --launcher srun --nodes 2 --gpus-per-node 4 --build /b --out /o", out), 0) << out;
  EXPECT_NE(out.find("+ srun -N 2 --ntasks=8 --ntasks-per-node=4 --gpus-per-node=4 --kill-on-bad-exit=1 --export=ALL "
                     "/b/tests/test_gpu_allreduce --suite correctness"),
            std::string::npos)
      << out;
  EXPECT_NE(out.find("+ srun -N 1 --ntasks=4 --ntasks-per-node=4"), std::string::npos) << out;  // the one-node bench
  EXPECT_NE(out.find("--json /o/bench_n2_g4.json"), std::string::npos) << out;
  EXPECT_NE(out.find("/b/tools/nvrar-bench -b 4K -e 64M --tune /o/tuning_n2_g4.json"), std::string::npos) << out;
  EXPECT_NE(out.find("--calibrate /o/bench_n1_g4.json --calibrate /o/bench_n2_g4.json"), std::string::npos) << out;

  ASSERT_EQ(script("--dry-run --launcher mpirun --hostfile hosts.txt --nodes 4 --gpus-per-node 8 --steps correct", out),
            0)
      << out;
  EXPECT_NE(out.find("+ mpirun -np 32 --bind-to none"), std::string::npos) << out;
  EXPECT_NE(out.find("--hostfile hosts.txt --map-by ppr:8:node"), std::string::npos) << out;
  EXPECT_NE(out.find("-x NVRAR_GPUS_PER_NODE"), std::string::npos) << out;

  // srun-env: scripts/srun-env.sh, the srun environment this repo reproduces without Slurm (one host).
  ASSERT_EQ(script("--dry-run --launcher srun-env --nodes 2 --gpus-per-node 2 --steps correct", out), 0) << out;
  EXPECT_NE(out.find("scripts/srun-env.sh 4 "), std::string::npos) << out;
}

TEST_F(ClusterScript, AutoPicksTheLauncherOfTheJob) {
  fake_tool("srun");
  fake_tool("mpirun");
  const std::string path = "PATH=" + (dir_ / "bin").string() + ":/usr/bin:/bin";
  std::string out;
  ASSERT_EQ(script("--dry-run --nodes 2 --gpus-per-node 4 --steps correct", out, "env -u SLURM_JOB_ID SLURM_JOB_ID=42 " + path), 0)
      << out;
  EXPECT_NE(out.find("+ srun -N 2"), std::string::npos) << out;
  ASSERT_EQ(script("--dry-run --nodes 2 --gpus-per-node 4 --steps correct", out, "env -u SLURM_JOB_ID " + path), 0)
      << out;
  EXPECT_NE(out.find("+ mpirun -np 8"), std::string::npos) << out;
  EXPECT_EQ(out.find("--map-by"), std::string::npos) << "one host: no per-node placement\n" << out;
  std::filesystem::remove(dir_ / "bin" / "mpirun");
  // Nothing but the stand-ins on PATH (this machine may have a real mpirun).
  EXPECT_EQ(script("--dry-run --nodes 2 --gpus-per-node 4", out, "env -u SLURM_JOB_ID PATH=" + (dir_ / "bin").string()),
            2);
  EXPECT_NE(out.find("no mpirun on PATH"), std::string::npos) << out;
}

TEST_F(ClusterScript, RefusesBadArguments) {
  std::string out;
  EXPECT_EQ(script("--nodes 0 --gpus-per-node 2 --dry-run", out), 2);
  EXPECT_NE(out.find("--nodes '0'"), std::string::npos) << out;
  EXPECT_EQ(script("--launcher pbs --nodes 1 --gpus-per-node 2 --dry-run", out), 2);
  EXPECT_NE(out.find("--launcher 'pbs'"), std::string::npos) << out;
  EXPECT_EQ(script("--steps bench,plot --nodes 1 --gpus-per-node 2 --dry-run", out), 2);
  EXPECT_NE(out.find("unknown step 'plot'"), std::string::npos) << out;
  // The model step without any bench report says so and fails.
  EXPECT_EQ(script("--steps model --launcher mpirun --nodes 2 --gpus-per-node 2 --out " + dir_.string(), out), 1);
  EXPECT_NE(out.find("no bench JSON"), std::string::npos) << out;
}
#endif

}  // namespace
