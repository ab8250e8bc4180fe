// nvrar-model --heatmap-svg: NVRAR's projected speedup over NCCL as a hand-written SVG heatmap (nodes x message
// sizes, one labelled cell per pair, a diverging colour scale around 1x, labelled axes, a title naming the preset and
// the profile). No plotting library; tests/test_model_heatmap.cpp reads the labels back with an XML parser.
#pragma once

#include <string>
#include <vector>

namespace nvrar::model_tool {

struct HeatmapCell {
  long long nodes = 0;
  long long bytes = 0;
  double speedup = 0;  // NCCL's best / NVRAR's time, both projected
};

struct Heatmap {
  std::string preset;
  std::string profile;
  int gpus_per_node = 1;
  std::vector<long long> nodes;  // rows, any order (drawn largest on top)
  std::vector<long long> sizes;  // columns, any order (drawn smallest on the left)
  std::vector<HeatmapCell> cells;  // one per (node count, size); a missing one is an error
};

// The label a cell carries: the speedup with two decimals, as the table prints it.
std::string heatmap_label(double speedup);

// The SVG document. Throws nvrar::Error when a (node count, size) pair has no cell or a speedup is not a positive
// finite number.
std::string heatmap_svg(const Heatmap& h);

}  // namespace nvrar::model_tool
