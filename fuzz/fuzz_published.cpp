// Fuzz target: the published-measurement files nvrar-model --calibrate / --validate read (issue 22): a
// "published-allreduce-times" file (model/calibrate.h, parse_published_points) or a "published-speedup-range" file
// (model/published_speedup.h, parse_published_speedup_range), chosen by the input's "kind" as the tool does; then the
// fit each feeds: calibrate_network on the points, fit_nccl_net_latency on the range against a fixed set of points
// (the shipped Perlmutter times' shape).
//
// A parser may refuse an input only with an nvrar::Error naming the file; a fit may refuse (an nvrar::Error naming
// the cause); what a fit returns must be a preset the formulas accept (validate_preset). UBSan turns a float-to-int
// conversion out of range or a signed overflow on hostile sizes into a finding.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "fuzz_check.h"
#include "model/calibrate.h"
#include "model/cost_model.h"
#include "model/published_speedup.h"

namespace {

constexpr const char* kOrigin = "fuzz/published.json";

// Published prototype times of 4 nodes x 4 GPUs at 128 KB - 1 MB: what a range is compared against.
nvrar::model::PublishedPoints fixed_points() {
  nvrar::model::PublishedPoints p;
  p.origin = "fuzz/fixed-points";
  p.profile = "prototype";
  p.algorithm = "nvrar";
  p.nodes = 4;
  p.gpus_per_node = 4;
  p.dtype_bytes = 2;
  for (const auto& [bytes, us] : {std::pair{131072.0, 76.7}, {262144.0, 81.6}, {524288.0, 105.4}, {1048576.0, 157.5}}) {
    nvrar::model::BenchPoint point;
    point.bytes = bytes;
    point.time_us = us;
    p.points.push_back(point);
  }
  return p;
}

void expect_valid(const nvrar::model::Preset& preset, const char* fit) {
  try {
    nvrar::model::validate_preset(preset);
  } catch (const nvrar::Error& e) {
    FUZZ_EXPECT(false, std::string(fit) + " returned an invalid preset: " + e.what());
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string text(nvrar::fuzz::as_text(data, size));
  nvrar::model::Preset preset = nvrar::model::presets().front();
  if (nvrar::model::is_published_speedup_range(text)) {
    nvrar::model::PublishedSpeedupRange range;
    try {
      range = nvrar::model::parse_published_speedup_range(text, kOrigin);
    } catch (const nvrar::Error& e) {
      nvrar::fuzz::expect_names_origin(e, kOrigin);
      return 0;
    }
    try {
      nvrar::model::fit_nccl_net_latency({range}, {fixed_points()}, preset);
    } catch (const nvrar::Error&) {
      return 0;  // a range no cost can meet is refused
    }
    expect_valid(preset, "fit_nccl_net_latency");
    return 0;
  }
  nvrar::model::PublishedPoints points;
  try {
    points = nvrar::model::parse_published_points(text, kOrigin);
  } catch (const nvrar::Error& e) {
    nvrar::fuzz::expect_names_origin(e, kOrigin);
    return 0;
  }
  try {
    nvrar::model::calibrate_network({points}, preset);
  } catch (const nvrar::Error&) {
    return 0;  // points that cannot separate the terms are refused
  }
  expect_valid(preset, "calibrate_network");
  return 0;
}
