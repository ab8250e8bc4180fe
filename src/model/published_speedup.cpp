// A published speedup range (tests/data/published_paper_nccl_ratio.json) as the cost model reads it, the ratio of
// NCCL's modelled time to the faster side's published times at every published size inside the range (each file's
// best marked), and the fit of NCCL's per-hop network cost that lifts each file's best ratio to the range's lower
// bound (model/published_speedup.h states the rule).
#include "model/published_speedup.h"

#include <fmt/format.h>

#include <cmath>
#include <functional>
#include <limits>
#include <optional>

#include "core/json_input.h"
#include "model/fit.h"
#include "nvrar/types.h"

namespace nvrar::model {

namespace {

using namespace fit;
namespace ji = nvrar::json_input;

constexpr const char* kRangeKind = "published-speedup-range";
// The only sides the model can put into a ratio: NVRAR by an implementation profile over NCCL's tuning model.
constexpr const char* kFasterAlgorithm = "nvrar";
constexpr const char* kSlowerAlgorithm = "nccl";
// Largest message size a range may name (as nvrar-model's --sizes: 1 TiB).
constexpr double kMaxRangeBytes = 1099511627776.0;
// Bisection stops when the bracket is this narrow (us): far below the 0.01 us the preset ships.
constexpr double kBisectionUs = 1e-9;

const Json& object_member(const Json& j, const char* key, const std::string& origin, const std::string& where) {
  const Json& v = member(j, key, origin);
  if (!v.is_object())
    throw Error(fmt::format("{}: '{}' is not an object (got {})", where, key, ji::describe(v)));
  return v;
}

// The smallest x in [0, kMaxNcclNetLatencyUs] with reached(x), for a predicate that, once true, stays true as x
// grows (a non-decreasing ratio against a bound); none when it is false at the top.
std::optional<double> smallest_reaching(const std::function<bool(double)>& reached) {
  if (reached(0)) return 0.0;
  if (!reached(kMaxNcclNetLatencyUs)) return std::nullopt;
  double lo = 0, hi = kMaxNcclNetLatencyUs;
  while (hi - lo > kBisectionUs) {
    const double mid = 0.5 * (lo + hi);
    (reached(mid) ? hi : lo) = mid;
  }
  return hi;
}

// Rows of one range against one published times file (speedup_rows keeps them together).
bool same_file(const SpeedupRow& a, const SpeedupRow& b) {
  return a.range_origin == b.range_origin && a.times_origin == b.times_origin && a.nodes == b.nodes;
}

}  // namespace

bool is_published_speedup_range(const std::string& json_text) { return fit::has_kind(json_text, kRangeKind); }

PublishedSpeedupRange parse_published_speedup_range(const std::string& json_text, const std::string& origin) {
  const std::string where = "nvrar-model: " + origin;
  const Json j = ji::parse(json_text, where, "not JSON");
  if (!j.is_object() || !j.contains("kind") || !j["kind"].is_string() || j["kind"].get<std::string>() != kRangeKind)
    throw Error(fmt::format("{}: not a published speedup range (no \"kind\": \"{}\")", where, kRangeKind));
  PublishedSpeedupRange r;
  r.origin = origin;

  const std::string source_name = origin + ": source";
  const Json& source = object_member(j, "source", origin, where);
  const std::string title = ji::to_string(member(source, "title", source_name), where, "source.title");
  const std::string arxiv = ji::to_string(member(source, "arxiv", source_name), where, "source.arxiv");
  const Json& authors = member(source, "authors", source_name);
  if (!authors.is_array() || authors.empty())
    ji::fail_field(where, "source.authors", fmt::format("expected a non-empty array of names, got {}",
                                                        ji::describe(authors)));
  std::vector<std::string> names;
  for (std::size_t i = 0; i < authors.size(); ++i)
    names.push_back(ji::to_string(authors[i], where, fmt::format("source.authors[{}]", i)));
  r.statement = ji::to_string(member(source, "statement", source_name), where, "source.statement");
  r.source = fmt::format("{}, arXiv {}, {}{}", title, arxiv, names.front(), names.size() > 1 ? " et al." : "");

  const Json& faster = object_member(j, "faster", origin, where);
  r.faster_algorithm = ji::to_string(member(faster, "algorithm", origin + ": faster"), where, "faster.algorithm");
  if (r.faster_algorithm != kFasterAlgorithm)
    ji::fail_field(where, "faster.algorithm",
                   fmt::format("'{}' (the model compares '{}' by a profile)", ji::excerpt(r.faster_algorithm),
                               kFasterAlgorithm));
  r.faster_profile = ji::to_string(member(faster, "profile", origin + ": faster"), where, "faster.profile");
  if (!has_profile(r.faster_profile))
    ji::fail_field(where, "faster.profile",
                   fmt::format("'{}' is not an implementation profile ({})", ji::excerpt(r.faster_profile),
                               profile_names()));
  const Json& slower = object_member(j, "slower", origin, where);
  r.slower_algorithm = ji::to_string(member(slower, "algorithm", origin + ": slower"), where, "slower.algorithm");
  if (r.slower_algorithm != kSlowerAlgorithm)
    ji::fail_field(where, "slower.algorithm",
                   fmt::format("'{}' (the model compares against '{}')", ji::excerpt(r.slower_algorithm),
                               kSlowerAlgorithm));

  r.min_bytes = ji::to_double(member(j, "min_bytes", origin), where, "min_bytes", 1, kMaxRangeBytes);
  r.max_bytes = ji::to_double(member(j, "max_bytes", origin), where, "max_bytes", 1, kMaxRangeBytes);
  if (r.max_bytes < r.min_bytes)
    ji::fail_field(where, "max_bytes", fmt::format("{:.0f} is below min_bytes {:.0f}", r.max_bytes, r.min_bytes));
  // A ratio is slower / faster: a range that starts below 1 would say the faster side is slower.
  r.ratio_min = ji::to_double(member(j, "ratio_min", origin), where, "ratio_min", 1, 1e6);
  r.ratio_max = ji::to_double(member(j, "ratio_max", origin), where, "ratio_max", 1, 1e6);
  if (r.ratio_max < r.ratio_min)
    ji::fail_field(where, "ratio_max", fmt::format("{:g} is below ratio_min {:g}", r.ratio_max, r.ratio_min));
  if (const auto systems = j.find("systems"); systems != j.end()) {
    if (!systems->is_array())
      ji::fail_field(where, "systems", fmt::format("expected an array of names, got {}", ji::describe(*systems)));
    for (std::size_t i = 0; i < systems->size(); ++i)
      r.systems.push_back(ji::to_string((*systems)[i], where, fmt::format("systems[{}]", i)));
  }
  return r;
}

PublishedSpeedupRange read_published_speedup_range(const std::string& path) {
  return parse_published_speedup_range(fit::read_text(path), path);
}

std::vector<SpeedupRow> speedup_rows(const std::vector<PublishedSpeedupRange>& ranges,
                                     const std::vector<PublishedPoints>& published, const Preset& preset,
                                     std::vector<std::string>* notes) {
  auto note = [&](std::string text) {
    if (notes != nullptr) notes->push_back(std::move(text));
  };
  std::vector<SpeedupRow> out;
  for (const PublishedSpeedupRange& range : ranges) {
    std::size_t paired = 0;
    for (const PublishedPoints& f : published) {
      if (f.algorithm != range.faster_algorithm || f.profile != range.faster_profile) continue;
      if (f.nodes < 2) {
        note(fmt::format("{}: one node, so NCCL crosses no network: not compared with {}", f.origin, range.origin));
        continue;
      }
      if (!f.preset.empty() && f.preset != preset.name)
        note(fmt::format("{} was measured on a '{}' system; compared here on preset '{}'", f.origin, f.preset,
                         preset.name));
      const Preset p = with_gpus(preset, f.gpus_per_node);
      const std::size_t first = out.size();
      for (const BenchPoint& point : f.points) {
        if (point.bytes < range.min_bytes || point.bytes > range.max_bytes) continue;
        const NcclPick nccl = pick_nccl(p, f.nodes, point.bytes);
        out.push_back(SpeedupRow{range.origin, f.origin, f.nodes, f.gpus_per_node, point.bytes, point.time_us,
                                 nccl.estimate.time_us, nccl.name(), range.ratio_min, range.ratio_max});
      }
      // The file's best: its largest ratio (a NaN loses to any number).
      std::size_t best = first;
      for (std::size_t i = first; i < out.size(); ++i)
        if (out[i].ratio() > out[best].ratio() || std::isnan(out[best].ratio())) best = i;
      if (best < out.size()) out[best].best = true;
      paired += out.size() - first;
    }
    if (paired == 0)
      note(fmt::format("{}: no published '{}' times of the '{}' profile on two or more nodes between {:.0f} and {:.0f} "
                       "bytes to compare with",
                       range.origin, range.faster_algorithm, range.faster_profile, range.min_bytes, range.max_bytes));
  }
  return out;
}

std::vector<SpeedupCheck> speedup_checks(const std::vector<SpeedupRow>& rows) {
  std::vector<SpeedupCheck> out;
  for (std::size_t i = 0; i < rows.size(); ++i) {
    const SpeedupRow& r = rows[i];
    if (i == 0 || !same_file(rows[i - 1], r))
      out.push_back(SpeedupCheck{r.range_origin, r.times_origin, r.nodes, r.gpus_per_node, 0, 0, 0, r.ratio_min,
                                 r.ratio_max, 0});
    SpeedupCheck& c = out.back();
    ++c.sizes;
    if (r.best) {
      c.best_bytes = r.bytes;
      c.best_ratio = r.ratio();
    }
    c.above_max += r.above_max() ? 1 : 0;
  }
  return out;
}

NcclCalibration fit_nccl_net_latency(const std::vector<PublishedSpeedupRange>& ranges,
                                     const std::vector<PublishedPoints>& published, Preset& preset) {
  validate_preset(preset);
  NcclCalibration c;
  const std::vector<SpeedupRow> rows = speedup_rows(ranges, published, preset, &c.notes);
  if (rows.empty()) {
    c.notes.push_back("NCCL's net latency not fitted: no published size inside a speedup range to compare with");
    return c;
  }
  // NCCL's modelled time over the published one at per-hop cost x, for one row.
  auto ratio_at = [&](const SpeedupRow& row, double x) {
    Preset p = with_gpus(preset, row.gpus_per_node);
    p.nccl.inter_latency_us = x;
    return pick_nccl(p, row.nodes, row.bytes).estimate.time_us / row.published_us;
  };
  double lower = 0;
  double upper = kMaxNcclNetLatencyUs;
  // Rows come grouped by range and times file (speedup_rows); [begin, end) is one group.
  for (std::size_t begin = 0, end = 0; begin < rows.size(); begin = end) {
    end = begin + 1;
    while (end < rows.size() && same_file(rows[end], rows[begin])) ++end;
    // The file's best ratio reaches the bound at the smallest of its sizes' costs; sizes that cannot reach it at
    // any cost are allowed ("up to"), as long as one can.
    std::optional<double> file_reach;
    double file_bytes = 0;
    for (std::size_t i = begin; i < end; ++i) {
      const SpeedupRow& row = rows[i];
      const std::optional<double> reach =
          smallest_reaching([&](double x) { return ratio_at(row, x) >= row.ratio_min; });
      if (reach && (!file_reach || *reach < *file_reach)) {
        file_reach = reach;
        file_bytes = row.bytes;
      }
      // The first cost past the upper bound; every smaller cost keeps this row's ratio at or below it (-1: above
      // the bound whatever NCCL's per-hop cost).
      const std::optional<double> past =
          smallest_reaching([&](double x) { return ratio_at(row, x) > row.ratio_max; });
      if (past) upper = std::min(upper, *past == 0 ? -1.0 : *past);
    }
    const SpeedupRow& head = rows[begin];
    if (!file_reach)
      throw Error(fmt::format("nvrar-model: {}: NCCL's modelled time stays below {:g} x the published time at every "
                              "size of {} on {} nodes inside the window, even at {:g} us per network hop",
                              head.range_origin, head.ratio_min, head.times_origin, head.nodes,
                              kMaxNcclNetLatencyUs));
    if (c.binding_nodes == 0 || *file_reach > lower) {
      lower = *file_reach;
      c.binding_bytes = file_bytes;
      c.binding_nodes = head.nodes;
      c.binding_origin = head.times_origin;
    }
  }
  preset.nccl.inter_latency_us = lower;
  validate_preset(preset);
  c.fitted = true;
  c.inter_latency_us = lower;
  c.upper_latency_us = upper;
  c.rows = speedup_rows(ranges, published, preset);
  c.checks = speedup_checks(c.rows);
  c.consistent = upper >= lower;
  for (const SpeedupCheck& check : c.checks) c.consistent = c.consistent && check.ok();
  if (!c.consistent)
    c.notes.push_back(fmt::format("no single NCCL per-hop cost meets the ranges: {:.2f} us lifts every file's best "
                                  "ratio to its lower bound, but above {:.2f} us some ratio passes its upper bound",
                                  lower, std::max(0.0, upper)));
  return c;
}

}  // namespace nvrar::model
