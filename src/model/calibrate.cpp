#include "model/calibrate.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <fstream>
#include <functional>
#include <limits>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/json_input.h"
#include "model/fit.h"
#include "nvrar/types.h"

namespace nvrar::model {

namespace fit {

std::string read_text(const std::string& path) {
  std::ifstream file(path);
  if (!file) throw Error(fmt::format("nvrar-model: cannot open '{}'", path));
  std::stringstream text;
  text << file.rdbuf();
  if (file.bad()) throw Error(fmt::format("nvrar-model: error reading '{}'", path));
  return text.str();
}

bool has_kind(const std::string& json_text, const std::string& kind) {
  Json j;
  try {
    j = json_input::parse(json_text, "nvrar-model", "not JSON");  // bounded nesting; errors are the parsers' to report
  } catch (const std::exception&) {
    return false;
  }
  if (!j.is_object()) return false;
  const auto tag = j.find("kind");
  return tag != j.end() && tag->is_string() && tag->get<std::string>() == kind;
}

const Json& member(const Json& object, const char* key, const std::string& where) {
  const auto it = object.find(key);
  if (it == object.end()) throw Error(fmt::format("nvrar-model: {}: no field '{}'", where, key));
  return *it;
}

// Rows of `reports` the intra-node fits can use: one node, at least two GPUs, the algorithm, the size range.
std::vector<BenchPoint> single_node_points(const std::vector<BenchReport>& reports, const std::string& algorithm,
                                           const CalibrationOptions& o) {
  std::vector<BenchPoint> out;
  for (const BenchReport& r : reports)
    for (const BenchPoint& p : r.points)
      if (p.algorithm == algorithm && p.nodes == 1 && p.gpus_per_node >= 2 && p.bytes >= o.min_bytes &&
          p.bytes <= o.max_bytes && p.time_us > 0)
        out.push_back(p);
  return out;
}

FitQuality quality(const std::vector<BenchPoint>& points, const std::function<double(const BenchPoint&)>& model) {
  FitQuality q;
  double sum = 0;
  for (const BenchPoint& p : points) {
    const double rel = std::abs(model(p) - p.time_us) / p.time_us;
    sum += rel * rel;
    if (rel >= q.max_relative) {
      q.max_relative = rel;
      q.worst_bytes = p.bytes;
      q.worst_gpus = p.gpus_per_node;
    }
  }
  q.points = static_cast<int>(points.size());
  q.rms_relative = points.empty() ? 0 : std::sqrt(sum / static_cast<double>(points.size()));
  return q;
}

Preset with_gpus(const Preset& p, int gpus_per_node) {
  Preset q = p;
  q.gpus_per_node = gpus_per_node;
  q.nics_per_node = std::max(1, p.nics_per_node * gpus_per_node / p.gpus_per_node);  // keep the NIC ratio
  return q;
}

bool weighted_least_squares(const std::vector<Row>& rows, const std::array<bool, 3>& free,
                            std::array<double, 3>& theta) {
  std::vector<int> cols;
  for (int k = 0; k < 3; ++k)
    if (free[k]) cols.push_back(k);
  const std::size_t n = cols.size();
  // Normal equations A t = b over the free columns, with the fixed columns moved to the right-hand side.
  double a[3][4] = {};
  for (const Row& r : rows) {
    double y = r.y;
    for (int k = 0; k < 3; ++k)
      if (!free[k]) y -= theta[k] * r.x[k];
    for (std::size_t i = 0; i < n; ++i) {
      for (std::size_t j = 0; j < n; ++j) a[i][j] += r.w * r.x[cols[i]] * r.x[cols[j]];
      a[i][n] += r.w * r.x[cols[i]] * y;
    }
  }
  // Gaussian elimination with partial pivoting; a pivot far below its column's scale means no unique solution.
  double scale[3];
  for (std::size_t i = 0; i < n; ++i) scale[i] = a[i][i];
  for (std::size_t c = 0; c < n; ++c) {
    std::size_t pivot = c;
    for (std::size_t r = c + 1; r < n; ++r)
      if (std::abs(a[r][c]) > std::abs(a[pivot][c])) pivot = r;
    for (std::size_t j = 0; j <= n; ++j) std::swap(a[c][j], a[pivot][j]);
    if (!(std::abs(a[c][c]) > 1e-9 * scale[c])) return false;
    for (std::size_t r = 0; r < n; ++r) {
      if (r == c) continue;
      const double f = a[r][c] / a[c][c];
      for (std::size_t j = c; j <= n; ++j) a[r][j] -= f * a[c][j];
    }
  }
  for (std::size_t i = 0; i < n; ++i) theta[cols[i]] = a[i][n] / a[i][i];
  return true;
}

}  // namespace fit

namespace {

using namespace fit;
namespace ji = nvrar::json_input;

void fit_intra(const std::vector<BenchReport>& reports, Preset& preset, const CalibrationOptions& o, Calibration& c) {
  std::string algorithm = "hierarchical";
  std::vector<BenchPoint> points = single_node_points(reports, algorithm, o);
  if (points.empty()) {
    algorithm = "nvrar";
    points = single_node_points(reports, algorithm, o);
  }
  if (points.empty()) {
    c.notes.push_back("NVLink link not fitted: no 'hierarchical' or 'nvrar' rows on one node with >= 2 GPUs");
    return;
  }
  // One node: y = launch + 2 poll + 2 alpha + 2 (G - 2) message + x beta, x = 2 f (M/G) max(G - 1, r) (r: the
  // bandwidth over one peer's). Columns (alpha, message, beta), weights 1/y^2 (relative error). The per-message
  // cost is only told apart from alpha with two or more node sizes G; else it keeps the preset's value.
  const double r = preset.intra.peer_beta_us_per_byte() / preset.intra.beta_us_per_byte();
  const double fixed = preset.launch_us + 2 * preset.poll_us;
  std::vector<Row> rows;
  std::vector<int> gpu_counts;
  for (const BenchPoint& p : points) {
    const double x = 2 * preset.flag_factor * (p.bytes / p.gpus_per_node) * std::max(p.gpus_per_node - 1.0, r);
    rows.push_back(Row{{2.0, 2.0 * (p.gpus_per_node - 2), x}, p.time_us - fixed, 1 / (p.time_us * p.time_us)});
    if (std::find(gpu_counts.begin(), gpu_counts.end(), p.gpus_per_node) == gpu_counts.end())
      gpu_counts.push_back(p.gpus_per_node);
  }
  std::array<bool, 3> free = {true, gpu_counts.size() >= 2, true};
  std::array<double, 3> theta = {0, preset.intra.message_us, 0};
  if (!free[1])
    c.notes.push_back(fmt::format("NVLink per-message cost kept at {:.2f} us: the rows have one GPU count only",
                                  preset.intra.message_us));
  // A latency cannot be negative: a column whose fit goes below 0 is pinned there and the rest refitted.
  for (;;) {
    if (!weighted_least_squares(rows, free, theta))
      throw Error(
          fmt::format("nvrar-model: calibration: the {} '{}' rows cannot separate latency from bandwidth "
                      "(one message size?)",
                      points.size(), algorithm));
    const char* names[] = {"alpha", "per-message cost"};
    int negative = -1;
    for (int k = 0; k < 2; ++k)
      if (free[k] && theta[k] < 0) negative = k;
    if (negative < 0) break;
    c.notes.push_back(
        fmt::format("NVLink {} clamped to 0 (the fit wanted {:.2f} us; launch + 2 x poll = {:.2f} us "
                    "may be too high)",
                    names[negative], theta[negative], fixed));
    free[negative] = false;
    theta[negative] = 0;
  }
  if (!(theta[2] > 0))
    throw Error(fmt::format("nvrar-model: calibration: the '{}' times do not grow with message size", algorithm));

  const double old_bw = preset.intra.bandwidth_gbs;
  preset.intra.alpha_us = theta[0];
  preset.intra.message_us = theta[1];
  preset.intra.bandwidth_gbs = 1e-3 / theta[2];
  if (preset.intra.peer_bandwidth_gbs > 0) preset.intra.peer_bandwidth_gbs *= preset.intra.bandwidth_gbs / old_bw;

  c.intra_fitted = true;
  c.intra_algorithm = algorithm;
  c.intra_alpha_us = preset.intra.alpha_us;
  c.intra_message_us = preset.intra.message_us;
  c.intra_bandwidth_gbs = preset.intra.bandwidth_gbs;
  c.intra_fit = quality(points, [&](const BenchPoint& p) {
    return predict_us(Algorithm::kNvrar, with_gpus(preset, p.gpus_per_node), 1, p.bytes);
  });
}

void fit_nccl(const std::vector<BenchReport>& reports, Preset& preset, const CalibrationOptions& o, Calibration& c) {
  const std::vector<BenchPoint> points = single_node_points(reports, "nccl", o);
  if (points.empty()) {
    c.notes.push_back("NCCL bus bandwidth not fitted: no 'nccl' rows on one node with >= 2 GPUs");
    return;
  }
  auto predict = [&](double bus_bw, const BenchPoint& p) {
    Preset q = with_gpus(preset, p.gpus_per_node);
    q.nccl.intra_bus_bw_gbs = bus_bw;
    return best_algorithm(q, 1, p.bytes, {Algorithm::kNcclRing, Algorithm::kNcclTree}).time_us;
  };
  auto cost = [&](double log_bw) {
    double sum = 0;
    for (const BenchPoint& p : points) {
      const double rel = (predict(std::exp(log_bw), p) - p.time_us) / p.time_us;
      sum += rel * rel;
    }
    return sum;
  };
  // NCCL's minimum over protocols makes the cost piecewise smooth: a log-spaced scan from 1 GB/s to 10 TB/s, then
  // a golden-section search between the best scan point's neighbours.
  constexpr int kScan = 400;
  const double lo = std::log(1.0), hi = std::log(10000.0), step = (hi - lo) / kScan;
  int best = 0;
  double best_cost = std::numeric_limits<double>::infinity();
  for (int i = 0; i <= kScan; ++i) {
    const double v = cost(lo + i * step);
    if (v < best_cost) {
      best_cost = v;
      best = i;
    }
  }
  double a = lo + std::max(0, best - 1) * step, b = lo + std::min(kScan, best + 1) * step;
  const double inv_phi = (std::sqrt(5.0) - 1) / 2;
  for (int it = 0; it < 60; ++it) {
    const double m1 = b - inv_phi * (b - a), m2 = a + inv_phi * (b - a);
    if (cost(m1) <= cost(m2))
      b = m2;
    else
      a = m1;
  }
  preset.nccl.intra_bus_bw_gbs = std::exp((a + b) / 2);
  c.nccl_fitted = true;
  c.nccl_intra_bus_bw_gbs = preset.nccl.intra_bus_bw_gbs;
  c.nccl_fit = quality(points, [&](const BenchPoint& p) { return predict(preset.nccl.intra_bus_bw_gbs, p); });
}

}  // namespace

BenchReport parse_bench_report(const std::string& json_text, const std::string& origin) {
  const std::string where = "nvrar-model: " + origin;
  const Json j = ji::parse(json_text, where, "not JSON");
  if (!j.is_object())
    throw Error(fmt::format("{}: not an nvrar-bench report (no top-level object; got {})", where, ji::describe(j)));
  BenchReport r;
  r.origin = origin;
  if (const auto device = j.find("device"); device != j.end()) r.device = ji::to_string(*device, where, "device");
  r.ranks = ji::to_integer<int>(member(j, "ranks", origin), where, "ranks", 1, kMaxRanks);
  r.nodes = ji::to_integer<int>(member(j, "nodes", origin), where, "nodes", 1, kMaxRanks);
  r.gpus_per_node = ji::to_integer<int>(member(j, "gpus_per_node", origin), where, "gpus_per_node", 1, kMaxRanks);
  if (const auto hosts = j.find("hosts"); hosts != j.end())
    r.hosts = ji::to_integer<int>(*hosts, where, "hosts", 1, kMaxRanks);
  if (std::int64_t(r.nodes) * r.gpus_per_node != r.ranks)
    throw Error(fmt::format("{}: ranks {} is not nodes {} x gpus_per_node {}", where, r.ranks, r.nodes,
                            r.gpus_per_node));
  const Json& results = member(j, "results", origin);
  if (!results.is_array())
    throw Error(fmt::format("{}: 'results' is not an array (got {})", where, ji::describe(results)));
  for (std::size_t i = 0; i < results.size(); ++i) {
    const std::string row = fmt::format("{}: results[{}]", origin, i);
    const std::string row_where = "nvrar-model: " + row;
    const Json& result = results[i];
    if (!result.is_object()) throw Error(fmt::format("{}: expected an object, got {}", row_where, ji::describe(result)));
    BenchPoint p;
    p.algorithm = ji::to_string(member(result, "algorithm", row), row_where, "algorithm");
    p.bytes = ji::to_double(member(result, "bytes", row), row_where, "bytes", 0);
    p.time_us = ji::to_double(member(result, "time_us", row), row_where, "time_us");
    p.nodes = r.nodes;
    p.gpus_per_node = r.gpus_per_node;
    r.points.push_back(p);
  }
  return r;
}

BenchReport read_bench_report(const std::string& path) { return parse_bench_report(fit::read_text(path), path); }
Calibration calibrate(const std::vector<BenchReport>& reports, Preset& preset, const CalibrationOptions& options) {
  validate_preset(preset);
  Calibration c;
  int multi_node = 0;
  for (const BenchReport& r : reports)
    if (r.nodes > 1) multi_node += static_cast<int>(r.points.size());
  if (multi_node > 0)
    c.notes.push_back(
        fmt::format("{} rows of runs with several nodes not used for the intra-node fit (the network fit takes "
                    "those whose nodes are hosts)",
                    multi_node));
  fit_intra(reports, preset, options, c);
  fit_nccl(reports, preset, options, c);
  return c;
}

}  // namespace nvrar::model