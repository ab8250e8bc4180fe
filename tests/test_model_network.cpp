// The network fit from multi-node nvrar-bench reports (model/calibrate.h: network_points_from_bench, then
// calibrate_network), on synthetic reports: times made by the cost model from known network parameters, with +-3%
// noise, written as nvrar-bench JSON. The fit must recover the parameters within 10% (kTolerance) and keep the
// intra-node ones; and nvrar-model --calibrate, as scripts/cluster-check.sh runs it, must do the same.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
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

}  // namespace
