// nvrar-model --validate (tools/model/validate.h): published times point by point, published speedup ranges ratio by
// ratio.
#include "model/validate.h"

#include <fmt/format.h>

#include <cmath>
#include <fstream>
#include <sstream>

#include "model/print.h"
#include "nvrar/types.h"

namespace nvrar::model_tool {

std::string read_text(const std::string& path) {
  std::ifstream file(path);
  if (!file) throw Error(fmt::format("nvrar-model: cannot open '{}'", path));
  std::stringstream text;
  text << file.rdbuf();
  if (file.bad()) throw Error(fmt::format("nvrar-model: error reading '{}'", path));
  return text.str();
}

namespace {

// Model vs published time at every point; returns the points beyond the bound.
int print_points(std::FILE* out, const model::Preset& preset, const std::vector<model::PublishedPoints>& published,
                 double bound, const model::NetworkCalibration* network) {
  const std::vector<model::ValidationRow> rows = model::validate_against(published, preset, network);
  for (const model::PublishedPoints& f : published)
    fmt::print(out, "# {}: {} ({}, {}), {} x {} GPUs, {} profile; source: {}\n", f.origin, f.algorithm, f.system,
               f.device, f.nodes, f.gpus_per_node, f.profile, f.source);
  fmt::print(out, "{:>9} {:>6} {:>6} {:>6} {:>10} {:>10} {:>8} {:>4}\n", "profile", "nodes", "GPUs", "size",
             "published", "model", "error", "ok");
  int beyond = 0;
  for (const model::ValidationRow& r : rows) {
    const double e = r.relative_error();
    const bool ok = std::isfinite(r.model_us) && std::abs(e) <= bound;
    beyond += ok ? 0 : 1;
    fmt::print(out, "{:>9} {:>6} {:>6} {:>6} {:>10} {:>10} {:>+7.1f}% {:>4}\n", r.profile, r.nodes,
               r.nodes * r.gpus_per_node, human_size(r.bytes), format_us(r.published_us), format_us(r.model_us),
               100 * e, ok ? "yes" : "NO");
  }
  fmt::print(out, "# {} of {} points within {:.0f}%\n", rows.size() - beyond, rows.size(), 100 * bound);
  return beyond;
}

// NCCL's modelled time over the published faster side at every size inside each range, each file's best marked;
// returns the failed checks: rows above their range's upper bound, and best ratios below the lower one.
int print_ratios(std::FILE* out, const model::Preset& preset, const std::vector<model::PublishedSpeedupRange>& ranges,
                 const std::vector<model::PublishedPoints>& published) {
  std::vector<std::string> notes;
  const std::vector<model::SpeedupRow> rows = model::speedup_rows(ranges, published, preset, &notes);
  for (const model::PublishedSpeedupRange& r : ranges) {
    fmt::print(out, "# {}: {}\n#   \"{}\"\n", r.origin, r.source, r.statement);
    fmt::print(out,
               "#   checked: NCCL (model: best of ring and tree) / published {} ({} profile) at each published size "
               "from {} to {}; 'up to' is the best size: each file's best ratio within {:g}x-{:g}x and no ratio above "
               "{:g}x (sizes below {:g}x allowed)\n",
               r.faster_algorithm, r.faster_profile, human_size(r.min_bytes), human_size(r.max_bytes), r.ratio_min,
               r.ratio_max, r.ratio_max, r.ratio_min);
  }
  for (const std::string& n : notes) fmt::print(out, "# note: {}\n", n);
  fmt::print(out, "{:>6} {:>6} {:>6} {:>10} {:>10} {:>12} {:>7} {:>11} {:>4} {:>4}\n", "nodes", "GPUs", "size",
             "published", "nccl-model", "nccl-pick", "ratio", "range", "best", "ok");
  int failed = 0;
  for (const model::SpeedupRow& r : rows) {
    failed += r.ok() ? 0 : 1;
    fmt::print(out, "{:>6} {:>6} {:>6} {:>10} {:>10} {:>12} {:>6.2f}x {:>11} {:>4} {:>4}\n", r.nodes,
               r.nodes * r.gpus_per_node, human_size(r.bytes), format_us(r.published_us), format_us(r.nccl_us),
               r.nccl_pick, r.ratio(), fmt::format("{:g}x-{:g}x", r.ratio_min, r.ratio_max), r.best ? "*" : "",
               r.ok() ? "yes" : "NO");
  }
  const std::vector<model::SpeedupCheck> checks = model::speedup_checks(rows);
  int within = 0;
  int above = 0;
  for (const model::SpeedupCheck& c : checks) {
    within += c.best_within() ? 1 : 0;
    above += c.above_max;
    fmt::print(out, "# {} on {} x {} GPUs: best {:.2f}x at {}, {} {:g}x-{:g}x; {} of {} ratios above {:g}x\n",
               c.times_origin, c.nodes, c.gpus_per_node, c.best_ratio, human_size(c.best_bytes),
               c.best_within() ? "within" : "OUTSIDE", c.ratio_min, c.ratio_max, c.above_max, c.sizes, c.ratio_max);
  }
  fmt::print(out, "# {} of {} best ratios within the published range; {} of {} ratios above its upper bound\n", within,
             checks.size(), above, rows.size());
  return failed;
}

}  // namespace

int print_validation(std::FILE* out, const model::Preset& preset, const std::vector<std::string>& files, double bound,
                     const Fits& fits) {
  std::vector<model::PublishedPoints> published;
  std::vector<model::PublishedSpeedupRange> ranges;
  for (const std::string& path : files) {
    const std::string text = read_text(path);
    if (model::is_published_speedup_range(text))
      ranges.push_back(model::parse_published_speedup_range(text, path));
    else
      published.push_back(model::parse_published_points(text, path));
  }
  fmt::print(out, "# nvrar-model --validate: model vs published all-reduce times (us), bound {:.0f}%{}\n",
             100 * bound, ranges.empty() ? "" : "; NCCL / published NVRAR against published speedup ranges");
  print_preset(out, preset, false);
  if (fits.intra != nullptr) print_calibration(out, *fits.intra);
  if (fits.network != nullptr) print_network_calibration(out, *fits.network);
  if (fits.nccl != nullptr) print_nccl_calibration(out, *fits.nccl);
  int failed = 0;
  if (!published.empty()) failed += print_points(out, preset, published, bound, fits.network);
  if (!ranges.empty()) failed += print_ratios(out, preset, ranges, published);
  return failed;
}

}  // namespace nvrar::model_tool
