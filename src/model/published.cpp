// Published all-reduce times as the cost model reads them (model/calibrate.h): the JSON files of
// tests/data/published_*.json with their optional launch-shape sweep, the prototype kernel's rule that turns a launch
// shape into serial chunk rounds, and the comparison of the model with every published point (--validate).
#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "core/json_input.h"
#include "model/calibrate.h"
#include "model/fit.h"
#include "nvrar/types.h"

namespace nvrar::model {

namespace {

using namespace fit;
namespace ji = nvrar::json_input;

constexpr const char* kPublishedKind = "published-allreduce-times";
constexpr const char* kLl8Rule = "yalis-ll8";

std::string optional_string(const Json& j, const char* key, const std::string& where) {
  const auto it = j.find(key);
  return it == j.end() ? std::string() : ji::to_string(*it, where, key);
}

// Element bytes of the dtypes a published file may name.
int dtype_bytes(const std::string& dtype, const std::string& where) {
  if (dtype == "bf16" || dtype == "bfloat16" || dtype == "fp16" || dtype == "float16") return 2;
  if (dtype == "fp32" || dtype == "float32") return 4;
  throw Error(fmt::format("{}: dtype '{}' (known: bf16, fp16, fp32)", where, dtype));
}

double positive_finite(const Json& row, const char* key, const std::string& row_name) {
  const std::string where = "nvrar-model: " + row_name;
  const double v = ji::to_double(member(row, key, row_name), where, key);
  if (!(v > 0) || !std::isfinite(v))
    throw Error(fmt::format("{}: {} {} (must be a positive finite number)", where, key, v));
  return v;
}

constexpr double kMaxSweepBytes = 1125899906842624.0;  // 2^50

void parse_sweep(const Json& sweep, const std::string& origin, PublishedPoints& r) {
  const std::string where = "nvrar-model: " + origin;
  if (!sweep.is_object()) throw Error(fmt::format("{}: 'sweep' is not an object (got {})", where, ji::describe(sweep)));
  r.sweep_rule = ji::to_string(member(sweep, "rule", origin + ": sweep"), where, "sweep.rule");
  if (r.sweep_rule != kLl8Rule)
    throw Error(fmt::format("{}: sweep.rule '{}' (the model knows '{}': the published prototype's LL8 kernel)", where,
                            ji::excerpt(r.sweep_rule), kLl8Rule));
  if (r.dtype_bytes == 0)
    throw Error(fmt::format("{}: a sweep needs the file's 'dtype' (its cells depend on it)", where));
  const Json& rows = member(sweep, "rows", origin + ": sweep");
  if (!rows.is_array() || rows.empty())
    throw Error(fmt::format("{}: 'sweep.rows' is not a non-empty array (got {})", where, ji::describe(rows)));
  for (std::size_t i = 0; i < rows.size(); ++i) {
    const std::string row = fmt::format("{}: sweep.rows[{}]", origin, i);
    if (!rows[i].is_object())
      throw Error(fmt::format("nvrar-model: {}: expected an object, got {}", row, ji::describe(rows[i])));
    SweepPoint p;
    // Sizes within 1 byte .. 1 PiB: sweep_rounds counts cells and chunks in 64-bit integers.
    p.bytes = ji::to_double(member(rows[i], "bytes", row), "nvrar-model: " + row, "bytes", 1, kMaxSweepBytes);
    p.blocks = ji::to_integer<int>(member(rows[i], "num_blocks", row), "nvrar-model: " + row, "num_blocks", 1, 1 << 16);
    p.chunk_bytes =
        ji::to_double(member(rows[i], "chunk_bytes", row), "nvrar-model: " + row, "chunk_bytes", 1, kMaxSweepBytes);
    p.time_us = positive_finite(rows[i], "time_us", row);
    r.sweep.push_back(p);
  }
}

}  // namespace

bool is_published_points(const std::string& json_text) { return fit::has_kind(json_text, kPublishedKind); }

PublishedPoints parse_published_points(const std::string& json_text, const std::string& origin) {
  const std::string where = "nvrar-model: " + origin;
  const Json j = ji::parse(json_text, where, "not JSON");
  if (!j.is_object() || optional_string(j, "kind", where) != kPublishedKind)
    throw Error(fmt::format("{}: not a published-times file (no \"kind\": \"{}\")", where, kPublishedKind));
  PublishedPoints r;
  r.origin = origin;
  const Json& source = member(j, "source", origin);
  if (!source.is_object()) throw Error(fmt::format("{}: 'source' is not an object", where));
  const std::string repo = ji::to_string(member(source, "repository", origin + ": source"), where, "source.repository");
  const std::string file = ji::to_string(member(source, "file", origin + ": source"), where, "source.file");
  r.source = fmt::format("{}, {}", repo, file);
  if (const std::string commit = optional_string(source, "commit", where); !commit.empty()) r.source += " @ " + commit;
  if (const std::string date = optional_string(source, "date", where); !date.empty()) r.source += ", " + date;
  r.system = optional_string(j, "system", where);
  r.device = optional_string(j, "device", where);
  r.preset = optional_string(j, "preset", where);
  r.profile = ji::to_string(member(j, "profile", origin), where, "profile");
  if (!has_profile(r.profile))
    ji::fail_field(where, "profile",
                   fmt::format("'{}' is not an implementation profile ({})", ji::excerpt(r.profile), profile_names()));
  r.algorithm = ji::to_string(member(j, "algorithm", origin), where, "algorithm");
  r.nodes = ji::to_integer<int>(member(j, "nodes", origin), where, "nodes", 1, kMaxRanks);
  r.gpus_per_node = ji::to_integer<int>(member(j, "gpus_per_node", origin), where, "gpus_per_node", 1, 4096);
  if (std::int64_t(r.nodes) * r.gpus_per_node > kMaxRanks)
    throw Error(fmt::format("{}: nodes {} x gpus_per_node {} is more than {} GPUs", where, r.nodes, r.gpus_per_node,
                            kMaxRanks));
  if (const std::string dtype = optional_string(j, "dtype", where); !dtype.empty())
    r.dtype_bytes = dtype_bytes(dtype, where);
  const Json& results = member(j, "results", origin);
  if (!results.is_array() || results.empty())
    throw Error(fmt::format("{}: 'results' is not a non-empty array (got {})", where, ji::describe(results)));
  for (std::size_t i = 0; i < results.size(); ++i) {
    const std::string row = fmt::format("{}: results[{}]", origin, i);
    const std::string row_where = "nvrar-model: " + row;
    if (!results[i].is_object())
      throw Error(fmt::format("{}: expected an object, got {}", row_where, ji::describe(results[i])));
    BenchPoint p;
    p.algorithm = r.algorithm;
    p.nodes = r.nodes;
    p.gpus_per_node = r.gpus_per_node;
    p.bytes = ji::to_double(member(results[i], "bytes", row), row_where, "bytes", 0);
    p.time_us = ji::to_double(member(results[i], "time_us", row), row_where, "time_us");
    if (!(p.time_us > 0) || !std::isfinite(p.time_us) || !std::isfinite(p.bytes))
      throw Error(fmt::format("{}: time_us {} (must be a positive finite number)", row_where, p.time_us));
    r.points.push_back(p);
  }
  if (const auto sweep = j.find("sweep"); sweep != j.end()) parse_sweep(*sweep, origin, r);
  return r;
}

PublishedPoints read_published_points(const std::string& path) {
  return parse_published_points(fit::read_text(path), path);
}

long long sweep_rounds(double bytes, int gpus_per_node, int dtype_bytes, int blocks, double chunk_bytes) {
  if (!(bytes > 0) || !(bytes <= kMaxSweepBytes) || gpus_per_node < 1 || blocks < 1 || !(chunk_bytes > 0) ||
      !(chunk_bytes <= kMaxSweepBytes) || dtype_bytes < 1 || dtype_bytes > 4)
    throw Error(fmt::format("nvrar-model: sweep_rounds: {} bytes, {} GPUs per node, {}-byte elements, {} blocks, "
                            "chunk {} (all must be positive, sizes at most 2^50 bytes, elements at most 4 bytes)",
                            bytes, gpus_per_node, dtype_bytes, blocks, chunk_bytes));
  // Integer arithmetic as the kernel's host side does it (size_t division); 4 payload bytes per 8-byte cell.
  const long long per_cell = 4 / dtype_bytes;
  const long long slice_elements = static_cast<long long>(bytes) / dtype_bytes / gpus_per_node;
  const long long cells = (slice_elements + per_cell - 1) / per_cell;
  const long long cells_per_block = cells / blocks;
  const long long chunk_elements = static_cast<long long>(chunk_bytes) / gpus_per_node;
  const long long chunk_cells = std::max(32LL, (chunk_elements + per_cell - 1) / per_cell);
  return (cells_per_block + chunk_cells - 1) / chunk_cells;
}

std::vector<ValidationRow> validate_against(const std::vector<PublishedPoints>& published, const Preset& preset,
                                            const NetworkCalibration* calibration) {
  std::vector<ValidationRow> out;
  for (const PublishedPoints& f : published) {
    ImplementationProfile profile = find_profile(f.profile);
    if (calibration != nullptr && calibration->other_fitted && calibration->profile == profile.name)
      profile.other_us = calibration->other_us;
    const Preset p = with_gpus(preset, f.gpus_per_node);
    for (const BenchPoint& point : f.points) {
      ValidationRow r{f.origin, f.profile, f.nodes, f.gpus_per_node, point.bytes, point.time_us, 0};
      if (f.algorithm == "nvrar")
        r.model_us = nvrar_breakdown(p, profile, f.nodes, point.bytes).total_us();
      else if (f.algorithm == "nccl")
        r.model_us = best_algorithm(p, f.nodes, point.bytes, {Algorithm::kNcclRing, Algorithm::kNcclTree}).time_us;
      else
        throw Error(fmt::format("nvrar-model: {}: algorithm '{}' (the model validates 'nvrar' and 'nccl')", f.origin,
                                f.algorithm));
      out.push_back(r);
    }
  }
  return out;
}

}  // namespace nvrar::model
