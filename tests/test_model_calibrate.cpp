// The intra-node calibration of the cost model (src/model/calibrate.h, calibrate()) on synthetic points made by the
// model itself and on real nvrar-bench reports (tests/data/bench_h100_*.json), and the report parser's errors.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "model/calibrate.h"
#include "model/cost_model.h"
#include "nvrar/types.h"

namespace nvrar::model {
namespace {

constexpr double kMiB = 1024.0 * 1024.0;

// ---- calibration ----

// A report of the given algorithm on one node of G GPUs, times from the model itself.
BenchReport synthetic_report(const Preset& truth, int g, const std::string& algorithm, double max_bytes) {
  Preset shaped = truth;
  shaped.gpus_per_node = g;
  BenchReport r;
  r.origin = "synthetic";
  r.ranks = g;
  r.nodes = 1;
  r.gpus_per_node = g;
  for (double bytes = 4096; bytes <= max_bytes; bytes *= 2) {
    const double t = algorithm == "nccl"
                         ? best_algorithm(shaped, 1, bytes, {Algorithm::kNcclRing, Algorithm::kNcclTree}).time_us
                         : predict_us(Algorithm::kNvrar, shaped, 1, bytes);
    r.points.push_back(BenchPoint{algorithm, 1, g, bytes, t});
  }
  return r;
}

TEST(ModelCalibration, RecoversKnownParameters) {
  Preset truth = find_preset("h100-ndr400");
  truth.intra.alpha_us = 1.7;
  truth.intra.message_us = 0.4;
  truth.intra.bandwidth_gbs = 300;
  truth.nccl.intra_bus_bw_gbs = 250;
  std::vector<BenchReport> reports;
  for (int g : {2, 4, 8}) {
    reports.push_back(synthetic_report(truth, g, "hierarchical", 4 * kMiB));
    reports.push_back(synthetic_report(truth, g, "nccl", 64 * kMiB));
  }
  Preset guess = find_preset("h100-ndr400");
  guess.intra.alpha_us = 5;
  guess.intra.bandwidth_gbs = 50;
  guess.nccl.intra_bus_bw_gbs = 1000;
  CalibrationOptions options;
  options.max_bytes = 64 * kMiB;
  const Calibration c = calibrate(reports, guess, options);
  ASSERT_TRUE(c.intra_fitted);
  EXPECT_EQ(c.intra_algorithm, "hierarchical");
  EXPECT_NEAR(guess.intra.alpha_us, 1.7, 1e-6);
  EXPECT_NEAR(guess.intra.message_us, 0.4, 1e-6);
  EXPECT_NEAR(guess.intra.bandwidth_gbs, 300, 1e-4);
  EXPECT_LT(c.intra_fit.rms_relative, 1e-9);
  ASSERT_TRUE(c.nccl_fitted);
  EXPECT_NEAR(guess.nccl.intra_bus_bw_gbs, 250, 0.25);
  EXPECT_LT(c.nccl_fit.rms_relative, 1e-3);
  // The network side is untouched.
  EXPECT_EQ(guess.inter.alpha_us, truth.inter.alpha_us);
  EXPECT_EQ(guess.inter.bandwidth_gbs, truth.inter.bandwidth_gbs);
}

TEST(ModelCalibration, OneGpuCountKeepsTheMessageCost) {
  Preset truth = find_preset("h100-ndr400");
  truth.intra.alpha_us = 1.2;
  truth.intra.bandwidth_gbs = 280;
  Preset guess = find_preset("h100-ndr400");
  guess.intra.message_us = 0.05;
  truth.intra.message_us = 0.05;
  const Calibration c = calibrate({synthetic_report(truth, 4, "nvrar", 4 * kMiB)}, guess);
  ASSERT_TRUE(c.intra_fitted);
  EXPECT_EQ(c.intra_algorithm, "nvrar");  // no 'hierarchical' rows: the 'nvrar' ones
  EXPECT_NEAR(guess.intra.alpha_us, 1.2, 1e-6);
  EXPECT_NEAR(guess.intra.bandwidth_gbs, 280, 1e-4);
  EXPECT_DOUBLE_EQ(guess.intra.message_us, 0.05);
  EXPECT_FALSE(c.nccl_fitted);
  EXPECT_FALSE(c.notes.empty());
}

TEST(ModelCalibration, NegativeLatencyIsPinnedAtZero) {
  Preset truth = find_preset("h100-ndr400");
  truth.intra.alpha_us = 0;
  Preset guess = truth;
  guess.launch_us = truth.launch_us + 1;  // the fit would need alpha = -0.5
  const Calibration c = calibrate({synthetic_report(truth, 8, "hierarchical", 4 * kMiB)}, guess);
  EXPECT_EQ(guess.intra.alpha_us, 0);
  bool noted = false;
  for (const std::string& n : c.notes) noted = noted || n.find("alpha clamped") != std::string::npos;
  EXPECT_TRUE(noted);
}

TEST(ModelCalibration, OneSizeIsAnError) {
  BenchReport r = synthetic_report(find_preset("h100-ndr400"), 4, "hierarchical", 4096);
  Preset p = find_preset("h100-ndr400");
  EXPECT_THROW(calibrate({r}, p), Error);
}

std::string data_file(const char* name) { return std::string(NVRAR_TEST_DATA_DIR) + "/" + name; }

TEST(ModelBenchJson, ReadsARealReport) {
  const BenchReport r = read_bench_report(data_file("bench_h100_np4_g4.json"));
  EXPECT_EQ(r.ranks, 4);
  EXPECT_EQ(r.nodes, 1);
  EXPECT_EQ(r.gpus_per_node, 4);
  EXPECT_EQ(r.device, "4 x NVIDIA H100 80GB HBM3");
  ASSERT_EQ(r.points.size(), 60u);  // 4 algorithms x 15 sizes
  EXPECT_EQ(r.points[0].algorithm, "nvrar");
  EXPECT_EQ(r.points[0].bytes, 4096);
  EXPECT_NEAR(r.points[0].time_us, 9.8928, 1e-3);
  int hierarchical = 0;
  for (const BenchPoint& p : r.points) hierarchical += p.algorithm == "hierarchical";
  EXPECT_EQ(hierarchical, 15);
}

TEST(ModelBenchJson, CalibratesOnMeasuredH100) {
  std::vector<BenchReport> reports = {read_bench_report(data_file("bench_h100_np4_g4.json")),
                                      read_bench_report(data_file("bench_h100_np2_g2.json"))};
  Preset p = find_preset("h100-ndr400");
  const Calibration c = calibrate(reports, p);
  ASSERT_TRUE(c.intra_fitted);
  ASSERT_TRUE(c.nccl_fitted);
  // Physically sensible values, and a fit within the run-to-run spread of small all-reduces.
  EXPECT_GT(p.intra.bandwidth_gbs, 100);
  EXPECT_LT(p.intra.bandwidth_gbs, 450);  // below NVLink4's 450 GB/s per direction
  EXPECT_GE(p.intra.alpha_us, 0);
  EXPECT_LT(p.intra.alpha_us, 5);
  EXPECT_LT(c.intra_fit.rms_relative, 0.2);
  EXPECT_LT(c.nccl_fit.rms_relative, 0.2);
  EXPECT_EQ(c.intra_fit.points, 22);  // 11 sizes 4K..4M x 2 reports
}

TEST(ModelBenchJson, MalformedReportsNameTheProblem) {
  auto message = [](const std::string& text) {
    try {
      parse_bench_report(text, "x.json");
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  EXPECT_NE(message("{not json").find("x.json: not JSON"), std::string::npos);
  EXPECT_NE(message(R"({"ranks": 4, "nodes": 1, "results": []})").find("'gpus_per_node'"), std::string::npos);
  EXPECT_NE(message(R"({"ranks": 4, "nodes": 2, "gpus_per_node": 4, "results": []})").find("ranks 4"),
            std::string::npos);
  EXPECT_NE(message(R"({"ranks": 1, "nodes": 1, "gpus_per_node": 1, "results": [{"algorithm": "nccl"}]})")
                .find("results[0]: no field 'bytes'"),
            std::string::npos);
  EXPECT_THROW(read_bench_report(data_file("no_such_file.json")), Error);
}

// Issue 21: a hostile report gives an error naming the file and the field, never a bare nlohmann exception.
TEST(ModelBenchJson, HostileReportsNameTheFileAndTheField) {
  auto message = [](const std::string& text) {
    try {
      parse_bench_report(text, "x.json");
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  const std::string head = R"({"ranks": 1, "nodes": 1, "gpus_per_node": 1, )";
  EXPECT_EQ(message(head + R"("device": 3, "results": []})"),
            "nvrar-model: x.json: field 'device': wrong type: expected a string, got the number 3");
  EXPECT_EQ(message(head + R"("results": [{"algorithm": "nccl", "bytes": 1e999, "time_us": 1}]})"),
            "nvrar-model: x.json: JSON number '1e999' is out of the range of a double");
  EXPECT_EQ(message(head + R"("results": [{"algorithm": "nccl", "bytes": "4K", "time_us": 1}]})"),
            "nvrar-model: x.json: results[0]: field 'bytes': wrong type: expected a number, got the string \"4K\"");
  EXPECT_NE(message(head + R"("results": [{"algorithm": "nccl", "bytes": -4, "time_us": 1}]})")
                .find("x.json: results[0]: field 'bytes': -4 is out of range"),
            std::string::npos);
  EXPECT_EQ(message(head + R"("results": [7]})"), "nvrar-model: x.json: results[0]: expected an object, got the number 7");
  EXPECT_EQ(message(head + R"("results": {"a": 1}})"),
            "nvrar-model: x.json: 'results' is not an array (got an object of 1 fields)");
  EXPECT_EQ(message(R"({"ranks": 131073, "nodes": 65537, "gpus_per_node": 65537, "results": []})"),
            "nvrar-model: x.json: ranks 131073 is not nodes 65537 x gpus_per_node 65537");
  EXPECT_EQ(message(R"({"ranks": 1e30, "nodes": 1, "gpus_per_node": 1, "results": []})"),
            "nvrar-model: x.json: field 'ranks': 1e+30 is out of range (1 to 1048576)");
  EXPECT_EQ(message(R"({"ranks": 2.5, "nodes": 1, "gpus_per_node": 1, "results": []})"),
            "nvrar-model: x.json: field 'ranks': expected an integer, got 2.5");
  EXPECT_EQ(message(std::string(200000, '[')), "nvrar-model: x.json: JSON nested deeper than 64 levels");
  EXPECT_EQ(message(head + R"("results": [], "extra": )" + std::string(100000, '[') + std::string(100000, ']') + "}"),
            "nvrar-model: x.json: JSON nested deeper than 64 levels");
}

}  // namespace
}  // namespace nvrar::model
