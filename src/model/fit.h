// Helpers the model's fits share (src/model/calibrate.cpp defines them; calibrate.cpp, published.cpp and
// calibrate_network.cpp use them). Internal to the nvrar_model library: not installed, not part of its API.
#pragma once

#include <array>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "model/calibrate.h"
#include "model/cost_model.h"

namespace nvrar::model::fit {

using Json = nlohmann::json;

// Largest ranks, nodes or GPUs per node a report may name: far above any run, and small enough that
// nodes x gpus_per_node is computed without overflow.
constexpr int kMaxRanks = 1 << 20;

// The whole file as text, or an nvrar::Error "nvrar-model: cannot open / error reading '<path>'".
std::string read_text(const std::string& path);

// True when the text is a JSON object whose "kind" is the string `kind` (the published files' tag). Never throws.
bool has_kind(const std::string& json_text, const std::string& kind);

// object[key], or an nvrar::Error "nvrar-model: <where>: no field '<key>'".
const Json& member(const Json& object, const char* key, const std::string& where);

// Rows of `reports` the intra-node fits can use: one node, at least two GPUs, the algorithm, the size range.
std::vector<BenchPoint> single_node_points(const std::vector<BenchReport>& reports, const std::string& algorithm,
                                           const CalibrationOptions& o);

// How well `model` reproduces `points` (relative errors).
FitQuality quality(const std::vector<BenchPoint>& points, const std::function<double(const BenchPoint&)>& model);

// The preset with another GPU count per node, keeping its NICs per GPU.
Preset with_gpus(const Preset& p, int gpus_per_node);

// Weighted least squares y ~ sum_k theta_k x_k over the columns marked free; the others keep `theta`'s value.
// Returns false when the free columns are (nearly) linearly dependent.
struct Row {
  std::array<double, 3> x;
  double y;
  double w;
};
bool weighted_least_squares(const std::vector<Row>& rows, const std::array<bool, 3>& free,
                            std::array<double, 3>& theta);

}  // namespace nvrar::model::fit
