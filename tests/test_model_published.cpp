// The implementation profiles (src/model/profiles.cpp) and the model against the published prototype's times
// (tests/data/published_yalis_perlmutter_nvrar.json, issue 22): the profile's facts from the prototype's code, the
// launch-shape sweep's chunk rounds, the network fit with and without the sweep on synthetic and published points,
// the shipped numbers being the fit's, --validate's bound, NCCL's fitted per-hop cost and its ratio against the paper's
// range, and malformed files.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "model/calibrate.h"
#include "model/cost_model.h"
#include "model/published_speedup.h"
#include "nvrar/types.h"

namespace nvrar::model {
namespace {

constexpr double kMiB = 1024.0 * 1024.0;

void expect_close(double actual, double expected, double rel = 1e-9) {
  EXPECT_NEAR(actual, expected, rel * std::max(1.0, std::abs(expected))) << "expected " << expected;
}

// Round numbers for hand calculation: beta_intra = 1e-5 us/B (100 GB/s), beta_inter = 1e-4 us/B (10 GB/s), HBM
// 1e-6 us/B (1000 GB/s).
Preset hand_preset() {
  return Preset{.name = "hand",
                .gpus_per_node = 4,
                .nics_per_node = 4,
                .intra = {.alpha_us = 1.0, .bandwidth_gbs = 100.0},
                .inter = {.alpha_us = 2.0, .bandwidth_gbs = 10.0},
                .launch_us = 3.0,
                .poll_us = 0.5,
                .flag_factor = 2.0,
                .memory_bandwidth_gbs = 1000,
                .nccl = find_preset("h100-ndr400").nccl};
}

std::string data_file(const char* name) { return std::string(NVRAR_TEST_DATA_DIR) + "/" + name; }

PublishedPoints published_perlmutter() {
  return read_published_points(data_file("published_yalis_perlmutter_nvrar.json"));
}

PublishedSpeedupRange paper_nccl_range() {
  return read_published_speedup_range(data_file("published_paper_nccl_ratio.json"));
}

// ---- implementation profiles ----

TEST(ModelProfile, OursIsTheDefaultBreakdown) {
  const Preset p = hand_preset();
  EXPECT_EQ(profiles().front().name, "ours");
  for (int nodes : {1, 2, 3, 4, 8})
    for (double bytes : {4096.0, 1 * kMiB}) {
      const NvrarBreakdown a = nvrar_breakdown(p, nodes, bytes);
      const NvrarBreakdown b = nvrar_breakdown(p, find_profile("ours"), nodes, bytes);
      expect_close(b.total_us(), a.total_us());
      expect_close(b.fixed_us(), p.launch_us);
    }
}

// What axonn-ai/yalis at daeecc6 does per call (ll8_coll.cu, ll8_coll.cuh, the tuning script): docs/model.md.
TEST(ModelProfile, PrototypeIsWhatItsCodeDoes) {
  const ImplementationProfile& proto = find_profile("prototype");
  EXPECT_EQ(proto.kernel_launches, 6);         // 4 kernels of its own + reduce-scatter + fcollect
  EXPECT_EQ(proto.harness_launches, 1);        // tensor.fill_ in the timed loop
  EXPECT_EQ(proto.harness_write_factor, 1.0);  // ... over the whole message
  EXPECT_EQ(proto.net_flag_factor, 2.0);       // Payload8B: 4 data bytes + a 4-byte flag
  EXPECT_EQ(proto.intra_flag_factor, 1.0);     // NVSHMEM's collectives inside a node
  EXPECT_EQ(proto.copy_factor, 6.0);           // pack (1 read + 2 written) + unpack (2 read + 1 written)
  EXPECT_TRUE(proto.library_intra_collectives);
  EXPECT_EQ(proto.host_us, 0.0);
}

TEST(ModelProfile, PrototypeFixedCostsAndSteps) {
  const Preset p = hand_preset();
  const ImplementationProfile& proto = find_profile("prototype");
  const double m = 1 * kMiB;
  const NvrarBreakdown b = nvrar_breakdown(p, proto, 4, m);
  expect_close(b.launch_us, 7 * 3.0);
  expect_close(b.other_us, proto.other_us);
  expect_close(b.host_us, 0);
  // Pack and unpack move 6 x M/G, the refill writes M: (6 x 262144 + 1048576) x 1e-6 us.
  expect_close(b.pack_us, (6 * m / 4 + m) * 1e-6);
  // Cells between nodes: poll + alpha + 2 (M/G) beta_n per step, two steps.
  expect_close(b.doubling_us, 2 * (0.5 + 2.0 + 2 * (m / 4) * 1e-4));
  // NVSHMEM's reduce-scatter over NVLink moves payload: poll + alpha + 3 (M/G) beta_i.
  expect_close(b.reduce_scatter_us, 0.5 + 1.0 + 3 * (m / 4) * 1e-5);
  expect_close(b.all_gather_us, b.reduce_scatter_us);
  expect_close(b.total_us(), b.fixed_us() + b.steps_us());
}

TEST(ModelProfile, BadProfilesNameTheField) {
  ImplementationProfile bad = find_profile("ours");
  bad.kernel_launches = 0;
  EXPECT_THROW(nvrar_breakdown(hand_preset(), bad, 2, 4096), Error);
  bad = find_profile("prototype");
  bad.other_us = -1;
  try {
    nvrar_breakdown(hand_preset(), bad, 2, 4096);
    FAIL() << "no throw";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("other_us = -1"), std::string::npos) << e.what();
  }
  bad = find_profile("prototype");
  bad.net_flag_factor = 0.5;
  EXPECT_THROW(nvrar_breakdown(hand_preset(), bad, 2, 4096), Error);
  try {
    find_profile("nope");
    FAIL() << "no throw";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("prototype"), std::string::npos) << e.what();
  }
}

// ---- the launch-shape sweep ----

TEST(ModelSweep, RoundsFollowTheKernelsChunking) {
  // bf16 on 4 GPUs: M/4 bytes in cells of 4 payload bytes; a chunk of c / 4 elements = c / 8 cells (at least 32).
  EXPECT_EQ(sweep_rounds(8192, 4, 2, 1, 4096), 1);      // 512 cells, chunks of 512
  EXPECT_EQ(sweep_rounds(65536, 4, 2, 1, 4096), 8);     // 4096 cells
  EXPECT_EQ(sweep_rounds(65536, 4, 2, 2, 4096), 4);     // 2048 cells per block
  EXPECT_EQ(sweep_rounds(1048576, 4, 2, 1, 4096), 128);
  EXPECT_EQ(sweep_rounds(1048576, 4, 2, 16, 32768), 1);  // the published best at 1 MB
  EXPECT_EQ(sweep_rounds(8192, 4, 2, 1, 16), 16);        // chunks of at least 32 cells
  EXPECT_EQ(sweep_rounds(65536, 4, 4, 1, 4096), 4);      // fp32: 4096 cells of one element, chunks of 1024
  EXPECT_THROW(sweep_rounds(8192, 4, 8, 1, 4096), Error);
  EXPECT_THROW(sweep_rounds(8192, 4, 2, 0, 4096), Error);
}

// A synthetic published file: best times from the model with known network and per-call cost, and a sweep whose
// times are any intercept per (size, blocks) plus network steps x rounds x (poll + alpha).
PublishedPoints synthetic(const Preset& truth, double other_us) {
  PublishedPoints f;
  f.origin = "synthetic.json";
  f.profile = "prototype";
  f.algorithm = "nvrar";
  f.nodes = 4;
  f.gpus_per_node = 4;
  f.dtype_bytes = 2;
  f.sweep_rule = "yalis-ll8";
  ImplementationProfile proto = find_profile("prototype");
  proto.other_us = other_us;
  for (double bytes = 8192; bytes <= kMiB; bytes *= 2) {
    f.points.push_back(BenchPoint{"nvrar", 4, 4, bytes, nvrar_breakdown(truth, proto, 4, bytes).total_us()});
    for (int blocks : {1, 2, 4})
      for (double chunk = 4096; chunk <= 131072; chunk *= 2) {
        const double rounds = static_cast<double>(sweep_rounds(bytes, 4, 2, blocks, chunk));
        // Four blocks: a smaller slope, as the published rows show; the fit must not use them.
        const double round_us = blocks <= 2 ? truth.poll_us + truth.inter.alpha_us : 3.0;
        f.sweep.push_back(SweepPoint{bytes, blocks, chunk, 40 + bytes * 1e-4 / blocks + 2 * rounds * round_us});
      }
  }
  return f;
}

TEST(ModelSweep, FitRecoversLatencyCostAndBandwidth) {
  Preset truth = find_preset("a100-slingshot11");
  truth.inter.alpha_us = 7.0;
  truth.inter.bandwidth_gbs = 15.0;
  Preset p = find_preset("a100-slingshot11");
  const NetworkCalibration c = calibrate_network({synthetic(truth, 30.0)}, p);
  ASSERT_TRUE(c.fitted);
  ASSERT_TRUE(c.sweep_used);
  EXPECT_NEAR(c.round_latency_us, 7.5, 1e-9);
  EXPECT_NEAR(c.alpha_us, 7.0, 1e-9);
  ASSERT_TRUE(c.other_fitted);
  EXPECT_NEAR(c.other_us, 30.0, 1e-6);
  EXPECT_NEAR(c.bandwidth_gbs, 15.0, 1e-6);
  // NCCL's per-hop cost is its own: the network fit leaves it as the preset has it (model/published_speedup.h).
  EXPECT_EQ(p.nccl.inter_latency_us, find_preset("a100-slingshot11").nccl.inter_latency_us);
  EXPECT_LT(c.fit.max_relative, 1e-9);
  EXPECT_LT(c.sweep_rms_relative, 1e-9);
}

TEST(ModelSweep, OneProfileAtATime) {
  const Preset truth = find_preset("a100-slingshot11");
  PublishedPoints other = synthetic(truth, 30.0);
  other.origin = "ours.json";
  other.profile = "ours";
  Preset p = truth;
  try {
    calibrate_network({synthetic(truth, 30.0), other}, p);
    FAIL() << "no throw";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("ours.json is 'ours'"), std::string::npos) << e.what();
  }
}

// ---- published points (issue 22) ----

TEST(ModelPublished, ReadsTheShippedFile) {
  const PublishedPoints f = published_perlmutter();
  EXPECT_EQ(f.profile, "prototype");
  EXPECT_EQ(f.nodes, 4);
  EXPECT_EQ(f.gpus_per_node, 4);
  EXPECT_EQ(f.dtype_bytes, 2);
  EXPECT_NE(f.source.find("axonn-ai/yalis"), std::string::npos);
  EXPECT_NE(f.source.find("@ daeecc6"), std::string::npos);
  ASSERT_EQ(f.points.size(), 6u);
  EXPECT_EQ(f.points.front().bytes, 8192);
  EXPECT_DOUBLE_EQ(f.points.back().time_us, 157.5);
  EXPECT_EQ(f.sweep_rule, "yalis-ll8");
  ASSERT_EQ(f.sweep.size(), 118u);  // every launch shape the tuner timed (3 + 15 + 20 + 24 + 27 + 29)
  // Each best time is one of the sweep's rows, and the fastest of its size, at one chunk round.
  for (const BenchPoint& best : f.points) {
    double fastest = 1e30;
    int best_blocks = 0;
    double best_chunk = 0;
    for (const SweepPoint& s : f.sweep)
      if (s.bytes == best.bytes && s.time_us < fastest) {
        fastest = s.time_us;
        best_blocks = s.blocks;
        best_chunk = s.chunk_bytes;
      }
    EXPECT_NEAR(fastest, best.time_us, 0.051) << best.bytes;
    EXPECT_EQ(sweep_rounds(best.bytes, 4, 2, best_blocks, best_chunk), 1) << best.bytes;
  }
}

// The bound of `nvrar-model --validate`: every published point within 25% with the shipped preset.
TEST(ModelPublished, ValidateWithinTheBound) {
  const std::vector<ValidationRow> rows = validate_against({published_perlmutter()}, find_preset("a100-slingshot11"));
  ASSERT_EQ(rows.size(), 6u);
  for (const ValidationRow& r : rows)
    EXPECT_LE(std::abs(r.relative_error()), 0.25) << r.bytes << " bytes: model " << r.model_us << " us, published "
                                                  << r.published_us << " us";
}

// The shipped Slingshot-11 numbers and the prototype's other_us are the fit's, not hand-set: refitting gives them back.
TEST(ModelPublished, ShippedPresetAndProfileAreTheFit) {
  const Preset shipped = find_preset("a100-slingshot11");
  Preset p = shipped;
  p.inter.alpha_us = 1;
  p.inter.bandwidth_gbs = 100;
  const NetworkCalibration c = calibrate_network({published_perlmutter()}, p);
  ASSERT_TRUE(c.fitted);
  ASSERT_TRUE(c.sweep_used);
  EXPECT_EQ(c.sweep_groups, 10);  // 5 sizes with two or more round counts x 1 and 2 blocks
  EXPECT_NEAR(c.alpha_us, shipped.inter.alpha_us, 0.005 * shipped.inter.alpha_us);
  EXPECT_NEAR(c.round_latency_us, shipped.inter.alpha_us + shipped.poll_us, 0.01);
  EXPECT_NEAR(c.bandwidth_gbs, shipped.inter.bandwidth_gbs, 0.005 * shipped.inter.bandwidth_gbs);
  ASSERT_TRUE(c.other_fitted);
  const double other = find_profile("prototype").other_us;
  EXPECT_NEAR(c.other_us, other, 0.005 * other);
  EXPECT_LE(c.fit.max_relative, 0.25);
  EXPECT_LE(c.sweep_rms_relative, 0.05);
}

// Without the sweep the fit takes alpha and the bandwidth from the best times with the profile as shipped; with the
// shipped (fitted) other_us it lands on the same network.
TEST(ModelPublished, BestTimesAloneAgreeWithTheSweepFit) {
  PublishedPoints f = published_perlmutter();
  f.sweep.clear();
  const Preset shipped = find_preset("a100-slingshot11");
  Preset p = shipped;
  const NetworkCalibration c = calibrate_network({f}, p);
  ASSERT_TRUE(c.fitted);
  EXPECT_FALSE(c.sweep_used);
  EXPECT_FALSE(c.other_fitted);
  EXPECT_NEAR(c.alpha_us, shipped.inter.alpha_us, 0.01 * shipped.inter.alpha_us);
  EXPECT_NEAR(c.bandwidth_gbs, shipped.inter.bandwidth_gbs, 0.01 * shipped.inter.bandwidth_gbs);
}

// The paper puts NVRAR up to 1.9x-3.6x below NCCL at 128 KB - 2 MB (tests/data/published_paper_nccl_ratio.json):
// "up to" is the best size on each system. With the shipped preset, NCCL's modelled time over the published
// prototype's is at its best (256 KB) inside that range and at no published size of the window (128 KB - 1 MB at
// 4 nodes) above 3.6x; sizes below 1.9x are allowed, as `nvrar-model --validate` checks.
TEST(ModelPublished, NcclWithinThePapersRange) {
  const std::vector<SpeedupRow> rows =
      speedup_rows({paper_nccl_range()}, {published_perlmutter()}, find_preset("a100-slingshot11"));
  ASSERT_EQ(rows.size(), 4u);
  int best = 0;
  for (const SpeedupRow& r : rows) {
    EXPECT_GE(r.bytes, 128 * 1024.0);
    EXPECT_LE(r.bytes, 1 * kMiB);
    EXPECT_LE(r.ratio(), 3.6) << r.bytes << " bytes: NCCL " << r.nccl_us << " us, published " << r.published_us;
    EXPECT_TRUE(r.ok()) << r.bytes;
    best += r.best ? 1 : 0;
  }
  EXPECT_EQ(best, 1);
  const std::vector<SpeedupCheck> checks = speedup_checks(rows);
  ASSERT_EQ(checks.size(), 1u);
  EXPECT_EQ(checks[0].best_bytes, 256 * 1024.0);
  EXPECT_GE(checks[0].best_ratio, 1.9);
  EXPECT_LE(checks[0].best_ratio, 3.6);
  EXPECT_EQ(checks[0].above_max, 0);
  EXPECT_TRUE(checks[0].ok());
}

// The shipped NCCL net latency is the fit's, not hand-set: both stages refitted from the two files give it back
// (the smallest per-hop cost at which the best ratio reaches 1.9, rounded up to 0.01 us), needed at 256 KB, and every
// ratio stays <= 3.6 up to a larger cost. The network fit alone no longer touches it.
TEST(ModelPublished, ShippedNcclLatencyIsTheFit) {
  const Preset shipped = find_preset("a100-slingshot11");
  Preset p = shipped;
  p.inter.alpha_us = 1;
  p.inter.bandwidth_gbs = 100;
  p.nccl.inter_latency_us = 0;
  const std::vector<PublishedPoints> published = {published_perlmutter()};
  ASSERT_TRUE(calibrate_network(published, p).fitted);
  EXPECT_EQ(p.nccl.inter_latency_us, 0);
  const NcclCalibration c = fit_nccl_net_latency({paper_nccl_range()}, published, p);
  ASSERT_TRUE(c.fitted);
  EXPECT_TRUE(c.consistent);
  EXPECT_EQ(p.nccl.inter_latency_us, c.inter_latency_us);
  EXPECT_GE(shipped.nccl.inter_latency_us, c.inter_latency_us);
  EXPECT_LE(shipped.nccl.inter_latency_us, c.inter_latency_us + 0.01);
  EXPECT_NE(shipped.nccl.inter_latency_us, shipped.inter.alpha_us);  // NCCL's own, not NVSHMEM's alpha
  EXPECT_EQ(c.binding_bytes, 256 * 1024.0);
  EXPECT_EQ(c.binding_nodes, 4);
  EXPECT_GT(c.upper_latency_us, shipped.nccl.inter_latency_us);
  ASSERT_EQ(c.rows.size(), 4u);
  ASSERT_EQ(c.checks.size(), 1u);
  EXPECT_NEAR(c.checks[0].best_ratio, 1.9, 1e-6);  // the best size sits on the bound
  for (const SpeedupRow& r : c.rows) {
    EXPECT_EQ(r.best, r.bytes == 256 * 1024.0) << r.bytes;
    EXPECT_TRUE(r.ok()) << r.bytes;
  }
}

TEST(ModelPublished, MalformedFilesNameTheProblem) {
  auto error_of = [](const std::string& text) {
    try {
      parse_published_points(text, "p.json");
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  const std::string head = R"({"kind": "published-allreduce-times", "source": {"repository": "r", "file": "f"}, )";
  const std::string body = R"("profile": "prototype", "algorithm": "nvrar", "nodes": 4, "gpus_per_node": 4, )"
                           R"("results": [{"bytes": 8192, "time_us": 60}])";
  EXPECT_NE(error_of(R"({"kind": "other"})").find("not a published-times file"), std::string::npos);
  EXPECT_NE(error_of(R"({"kind": "published-allreduce-times"})").find("'source'"), std::string::npos);
  EXPECT_NE(error_of(head + R"("profile": "x", "algorithm": "nvrar", "nodes": 2, "gpus_per_node": 1, "results": []})")
                .find("field 'profile': 'x' is not an implementation profile (ours, prototype)"),
            std::string::npos);
  EXPECT_NE(error_of(head + R"("profile": "ours", "algorithm": "nvrar", "nodes": 2, "gpus_per_node": 1, )" +
                     R"("results": []})")
                .find("non-empty array"),
            std::string::npos);
  EXPECT_NE(error_of(head + R"("profile": "ours", "algorithm": "nvrar", "nodes": 2, "gpus_per_node": 1, )" +
                     R"("results": [{"bytes": 8, "time_us": -1}]})")
                .find("time_us"),
            std::string::npos);
  EXPECT_NE(error_of(head + body + R"(, "dtype": "int8"})").find("p.json: dtype 'int8'"), std::string::npos);
  // The sweep: its rule, the dtype it needs, its rows.
  const std::string rows = R"("rows": [{"bytes": 8192, "num_blocks": 1, "chunk_bytes": 4096, "time_us": 60}])";
  EXPECT_NE(error_of(head + body + R"(, "dtype": "bf16", "sweep": {"rule": "nccl", )" + rows + "}}")
                .find("p.json: sweep.rule 'nccl'"),
            std::string::npos);
  EXPECT_NE(
      error_of(head + body + R"(, "sweep": {"rule": "yalis-ll8", )" + rows + "}}").find("needs the file's 'dtype'"),
      std::string::npos);
  EXPECT_NE(error_of(head + body + R"(, "dtype": "bf16", "sweep": {"rule": "yalis-ll8", "rows": [{"bytes": 8192, )"
                                   R"("num_blocks": 0, "chunk_bytes": 4096, "time_us": 60}]}})")
                .find("p.json: sweep.rows[0]: field 'num_blocks'"),
            std::string::npos);
  EXPECT_NE(error_of(head + body + R"(, "dtype": "bf16", "sweep": {"rule": "yalis-ll8", "rows": [{"bytes": 8192, )"
                                   R"("num_blocks": 1, "chunk_bytes": 4096}]}})")
                .find("sweep.rows[0]: no field 'time_us'"),
            std::string::npos);
  EXPECT_EQ(error_of(head + body + R"(, "dtype": "bf16", "sweep": {"rule": "yalis-ll8", )" + rows + "}}"), "no error");
  EXPECT_TRUE(is_published_points(head + "\"x\": 1}"));
  EXPECT_FALSE(is_published_points("[[[["));
  // One size only: latency and bandwidth cannot be told apart.
  Preset p = find_preset("a100-slingshot11");
  const PublishedPoints one = parse_published_points(
      head + R"("profile": "prototype", "algorithm": "nvrar", "nodes": 4, "gpus_per_node": 4, )" +
          R"("results": [{"bytes": 8192, "time_us": 60}, {"bytes": 8192, "time_us": 61}]})",
      "one.json");
  EXPECT_THROW(calibrate_network({one}, p), Error);
}

}  // namespace
}  // namespace nvrar::model
