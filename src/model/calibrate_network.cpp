// The network fit from published all-reduce times and from multi-node bench rows (model/calibrate.h,
// calibrate_network). Two ways, by what the points can tell apart:
//  - Best times only (one launch shape per size): time = rest + steps x alpha + wire bytes x beta, linear in
//    (alpha, beta) with the profile's per-call costs as shipped. One node count cannot separate a per-call cost from
//    the per-step latency (docs/model.md).
//  - With a launch-shape sweep (the prototype's tuner timed every thread-block count and chunk size): at one size and
//    block count the bytes are the same and only the number of serial chunk rounds changes, so the time's slope in
//    (network steps x rounds) is what one round costs, poll + alpha, whatever the fixed costs. With alpha so fixed,
//    the best times give the profile's unattributed per-call cost (other_us) and the bandwidth, again linearly.
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <tuple>

#include "model/calibrate.h"
#include "model/fit.h"
#include "nvrar/types.h"

namespace nvrar::model {

namespace {

using namespace fit;

// Sweep rows with at most this many thread blocks give the round latency: one or two blocks, each sending one chunk
// at a time, cannot fill a NIC (the published 1 MB times with one block need 2.6 ms), so an extra round costs its full
// latency. With more blocks the rounds of one block hide behind the others' transfers and the slope drops.
constexpr int kSweepMaxBlocks = 2;

// The network part of a profile's cost at one point: network steps (doubling + fold) and the wire bytes one GPU sends
// over them.
struct NetworkTerms {
  double steps = 0;
  double wire_bytes = 0;
};
NetworkTerms network_terms(const Preset& p, const ImplementationProfile& profile, int nodes, double bytes) {
  const NvrarBreakdown b = nvrar_breakdown(p, profile, nodes, bytes);
  const double flags = profile.net_flag_factor > 0 ? profile.net_flag_factor : p.flag_factor;
  const double steps = b.doubling_steps + b.fold_steps;
  return NetworkTerms{steps, steps * flags * bytes / p.gpus_per_node};
}

struct SweepFit {
  bool identified = false;
  double round_us = 0;
  int points = 0;
  int groups = 0;
  double rms_relative = 0;
};

// Least squares with a free intercept per (file, size, block count): time = c_group + (steps x rounds) x round_us.
SweepFit fit_sweep(const std::vector<const PublishedPoints*>& files, const Preset& preset, const CalibrationOptions& o,
                   std::vector<std::string>& notes) {
  std::map<std::tuple<std::size_t, double, int>, std::vector<std::pair<double, double>>> groups;
  for (std::size_t i = 0; i < files.size(); ++i) {
    const PublishedPoints& f = *files[i];
    if (f.sweep.empty()) continue;
    const NvrarBreakdown b = nvrar_breakdown(with_gpus(preset, f.gpus_per_node), find_profile(f.profile), f.nodes, 0);
    const double steps = b.doubling_steps + b.fold_steps;
    for (const SweepPoint& s : f.sweep) {
      if (s.blocks > kSweepMaxBlocks || s.bytes < o.min_bytes || s.bytes > o.max_bytes) continue;
      const double rounds =
          static_cast<double>(sweep_rounds(s.bytes, f.gpus_per_node, f.dtype_bytes, s.blocks, s.chunk_bytes));
      groups[{i, s.bytes, s.blocks}].push_back({steps * rounds, s.time_us});
    }
  }
  SweepFit r;
  double sxy = 0, sxx = 0;
  for (const auto& [key, rows] : groups) {
    double mx = 0, my = 0;
    for (const auto& [x, y] : rows) {
      mx += x / rows.size();
      my += y / rows.size();
    }
    double gxx = 0;
    for (const auto& [x, y] : rows) {
      sxy += (x - mx) * (y - my);
      gxx += (x - mx) * (x - mx);
    }
    sxx += gxx;
    if (gxx > 0) {
      ++r.groups;
      r.points += static_cast<int>(rows.size());
    }
  }
  if (groups.empty()) return r;
  if (!(sxx > 0)) {
    notes.push_back(fmt::format("sweep not used: no size and block count (<= {} blocks) with two round counts",
                                kSweepMaxBlocks));
    return r;
  }
  r.round_us = sxy / sxx;
  double sum = 0;
  for (const auto& [key, rows] : groups) {
    double mx = 0, my = 0;
    for (const auto& [x, y] : rows) {
      mx += x / rows.size();
      my += y / rows.size();
    }
    for (const auto& [x, y] : rows) sum += std::pow((my + r.round_us * (x - mx) - y) / y, 2);
  }
  r.rms_relative = std::sqrt(sum / std::max(1, r.points));
  if (!(r.round_us > 0)) {
    notes.push_back(fmt::format("sweep not used: its times do not grow with the chunk rounds (slope {:.2f} us)",
                                r.round_us));
    return r;
  }
  r.identified = true;
  return r;
}

}  // namespace

NetworkCalibration calibrate_network(const std::vector<PublishedPoints>& published, Preset& preset,
                                     const CalibrationOptions& o) {
  validate_preset(preset);
  NetworkCalibration c;
  struct Use {
    const PublishedPoints* file;
    BenchPoint point;
  };
  std::vector<const PublishedPoints*> files;
  for (const PublishedPoints& f : published) {
    if (f.algorithm != "nvrar") {
      c.notes.push_back(fmt::format("{}: algorithm '{}' not used (the network fit uses NVRAR's times)", f.origin,
                                    f.algorithm));
      continue;
    }
    if (f.nodes < 2) {
      c.notes.push_back(fmt::format("{}: one node, no network steps: not used", f.origin));
      continue;
    }
    files.push_back(&f);
  }
  const SweepFit sweep = fit_sweep(files, preset, o, c.notes);
  if (sweep.identified)
    for (const PublishedPoints* f : files)
      if (f->profile != files.front()->profile)
        throw Error(fmt::format("nvrar-model: calibration: with a sweep the per-call cost is fitted for one profile, "
                                "but {} is '{}' and {} is '{}'",
                                files.front()->origin, files.front()->profile, f->origin, f->profile));
  double alpha = 0;
  if (sweep.identified) {
    alpha = sweep.round_us - preset.poll_us;
    if (alpha < 0) {
      c.notes.push_back(fmt::format("network alpha clamped to 0 (a sweep round costs {:.2f} us, below the poll {:.2f} "
                                    "us)",
                                    sweep.round_us, preset.poll_us));
      alpha = 0;
    }
  }

  // Each point: time = rest + x0 theta0 + wire_bytes x beta_gpu, where rest is the model with the network's bandwidth
  // unbounded (and alpha 0 without a sweep, the fitted alpha with one), beta_gpu = 1 / (the bandwidth one GPU gets
  // with all sending), and (x0, theta0) = (network steps, alpha) without a sweep, (1, other_us) with one.
  // Weighted least squares on relative error, as the intra-node fit.
  std::vector<Use> uses;
  std::vector<Row> rows;
  for (const PublishedPoints* f : files) {
    ImplementationProfile profile = find_profile(f->profile);
    if (sweep.identified) profile.other_us = 0;
    Preset zero = with_gpus(preset, f->gpus_per_node);
    zero.inter.alpha_us = alpha;
    zero.inter.bandwidth_gbs = std::numeric_limits<double>::max() / 1e6;
    for (const BenchPoint& p : f->points) {
      if (p.bytes < o.min_bytes || p.bytes > o.max_bytes) continue;
      const double rest = nvrar_breakdown(zero, profile, f->nodes, p.bytes).total_us();
      const NetworkTerms t = network_terms(zero, profile, f->nodes, p.bytes);
      rows.push_back(
          Row{{sweep.identified ? 1.0 : t.steps, 0.0, t.wire_bytes}, p.time_us - rest, 1 / (p.time_us * p.time_us)});
      uses.push_back(Use{f, p});
    }
  }
  if (rows.empty()) {
    c.notes.push_back("network not fitted: no published NVRAR points of two or more nodes in the size window");
    return c;
  }
  const char* first = sweep.identified ? "per-call cost other_us" : "network alpha";
  std::array<bool, 3> free = {true, false, true};
  std::array<double, 3> theta = {0, 0, 0};
  for (;;) {
    if (!weighted_least_squares(rows, free, theta))
      throw Error(fmt::format("nvrar-model: calibration: the {} published points cannot separate the {} from the "
                              "network's bandwidth (one message size?)",
                              rows.size(), first));
    if (!free[0] || theta[0] >= 0) break;
    c.notes.push_back(fmt::format("{} clamped to 0 (the fit wanted {:.2f} us: the profile's fixed costs may be too "
                                  "high)",
                                  first, theta[0]));
    free[0] = false;
    theta[0] = 0;
  }
  if (!(theta[2] > 0))
    throw Error("nvrar-model: calibration: the published times do not grow with message size");
  const double share = std::min(1.0, static_cast<double>(preset.nics_per_node) / preset.gpus_per_node);
  preset.inter.alpha_us = sweep.identified ? alpha : theta[0];
  preset.inter.bandwidth_gbs = 1e-3 / theta[2] / share;
  validate_preset(preset);

  c.fitted = true;
  c.alpha_us = preset.inter.alpha_us;
  c.bandwidth_gbs = preset.inter.bandwidth_gbs;
  c.sweep_used = sweep.identified;
  c.round_latency_us = sweep.round_us;
  c.sweep_points = sweep.points;
  c.sweep_groups = sweep.groups;
  c.sweep_rms_relative = sweep.rms_relative;
  c.other_fitted = sweep.identified;
  c.other_us = sweep.identified ? theta[0] : 0;
  std::vector<std::string> profiles_used;
  for (const Use& u : uses)
    if (std::find(profiles_used.begin(), profiles_used.end(), u.file->profile) == profiles_used.end())
      profiles_used.push_back(u.file->profile);
  for (const std::string& name : profiles_used) c.profile += c.profile.empty() ? name : ", " + name;
  std::vector<BenchPoint> points;
  for (const Use& u : uses) points.push_back(u.point);
  std::size_t k = 0;
  c.fit = quality(points, [&](const BenchPoint&) {
    const Use& u = uses[k++];
    ImplementationProfile profile = find_profile(u.file->profile);
    if (c.other_fitted) profile.other_us = c.other_us;
    return nvrar_breakdown(with_gpus(preset, u.file->gpus_per_node), profile, u.file->nodes, u.point.bytes)
        .total_us();
  });
  return c;
}

}  // namespace nvrar::model
