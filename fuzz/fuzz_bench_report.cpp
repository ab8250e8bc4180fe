// Fuzz target: an nvrar-bench JSON report (model/calibrate.h, parse_bench_report) as text, then the calibration
// nvrar-model --calibrate runs on it against a built-in preset.
//
// calibrate() may refuse a report (an nvrar::Error naming the cause, e.g. all points at one size); its numerics
// run under UBSan, so a float-to-int conversion out of range or a signed overflow on hostile sizes is a finding.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "fuzz_check.h"
#include "model/calibrate.h"
#include "model/cost_model.h"

namespace {
constexpr const char* kOrigin = "fuzz/bench-report.json";
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::vector<nvrar::model::BenchReport> reports;
  try {
    reports.push_back(nvrar::model::parse_bench_report(std::string(nvrar::fuzz::as_text(data, size)), kOrigin));
  } catch (const nvrar::Error& e) {
    nvrar::fuzz::expect_names_origin(e, kOrigin);
    return 0;
  }
  nvrar::model::Preset preset = nvrar::model::presets().front();
  try {
    nvrar::model::calibrate(reports, preset);
  } catch (const nvrar::Error&) {
    // A refusal; whether it names the report is calibrate()'s business (it sees several reports), not the parser's.
    return 0;
  }
  // What nvrar-model then projects with: a fit the formulas cannot use must have been refused, not returned.
  try {
    nvrar::model::validate_preset(preset);
  } catch (const nvrar::Error& e) {
    FUZZ_EXPECT(false, std::string("calibrate() returned an invalid preset: ") + e.what());
  }
  return 0;
}
