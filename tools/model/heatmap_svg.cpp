// The SVG heatmap of nvrar-model --heatmap-svg (tools/model/heatmap_svg.h): a grid of rectangles coloured by
// log2(speedup) on a diverging scale (red below 1x, white at 1x, green above; clamped at 0.5x and 4x), each cell
// labelled with its number, node counts down the left, message sizes along the bottom, a colour bar on the right.
#include "model/heatmap_svg.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <utility>

#include "model/print.h"
#include "nvrar/types.h"

namespace nvrar::model_tool {

namespace {

// Layout in SVG user units (pixels).
constexpr int kCellW = 76;
constexpr int kCellH = 34;
constexpr int kLeft = 150;  // room for the row labels and the rotated axis title
constexpr int kTop = 80;    // room for the title and the subtitle
constexpr int kBarW = 18;
constexpr int kMinWidth = 760;  // the title and the subtitle fit

// The colour scale: log2(speedup) from kLow to kHigh (0.5x to 4x); 1x is white.
constexpr double kLow = -1;
constexpr double kHigh = 2;
struct Rgb {
  double r, g, b;
};
constexpr Rgb kWhite = {247, 247, 247};
constexpr Rgb kGreen = {26, 152, 80};  // NVRAR faster
constexpr Rgb kRed = {215, 48, 39};    // NCCL faster

Rgb mix(Rgb a, Rgb b, double t) { return {a.r + (b.r - a.r) * t, a.g + (b.g - a.g) * t, a.b + (b.b - a.b) * t}; }

std::string hex(Rgb c) {
  return fmt::format("#{:02x}{:02x}{:02x}", static_cast<int>(std::lround(c.r)), static_cast<int>(std::lround(c.g)),
                     static_cast<int>(std::lround(c.b)));
}

Rgb colour(double speedup) {
  const double t = std::clamp(std::log2(speedup), kLow, kHigh);
  return t >= 0 ? mix(kWhite, kGreen, t / kHigh) : mix(kWhite, kRed, t / kLow);
}

// Dark text on light cells, white on dark ones (relative luminance, sRGB weights).
const char* text_colour(Rgb c) {
  return (0.2126 * c.r + 0.7152 * c.g + 0.0722 * c.b) / 255 < 0.45 ? "#ffffff" : "#1a1a1a";
}

std::string escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&apos;"; break;
      default: out += c;
    }
  }
  return out;
}

}  // namespace

std::string heatmap_label(double speedup) { return fmt::format("{:.2f}", speedup); }

std::string heatmap_svg(const Heatmap& h) {
  std::vector<long long> nodes = h.nodes, sizes = h.sizes;
  std::sort(nodes.begin(), nodes.end(), std::greater<>());
  std::sort(sizes.begin(), sizes.end());
  std::map<std::pair<long long, long long>, double> speedup;
  for (const HeatmapCell& c : h.cells) speedup[{c.nodes, c.bytes}] = c.speedup;
  if (nodes.empty() || sizes.empty()) throw Error("--heatmap-svg: no node counts or no sizes to draw");

  const int cols = static_cast<int>(sizes.size());
  const int rows = static_cast<int>(nodes.size());
  const int grid_w = cols * kCellW, grid_h = rows * kCellH;
  const int bar_x = kLeft + grid_w + 40;
  const int bar_h = std::max(grid_h, 120);
  const int width = std::max(bar_x + kBarW + 90, kMinWidth);
  const int height = kTop + std::max(grid_h, bar_h) + 64;

  std::string s = fmt::format(
      "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{0}\" height=\"{1}\" viewBox=\"0 0 {0} {1}\" "
      "font-family=\"sans-serif\" font-size=\"12\">\n"
      "<rect x=\"0\" y=\"0\" width=\"{0}\" height=\"{1}\" fill=\"#ffffff\"/>\n",
      width, height);
  s += fmt::format(
      "<text class=\"title\" x=\"20\" y=\"28\" font-size=\"16\" font-weight=\"bold\">NVRAR speedup over NCCL, "
      "projected: preset {}, profile {}</text>\n",
      escape(h.preset), escape(h.profile));
  s += fmt::format(
      "<text class=\"subtitle\" x=\"20\" y=\"50\" fill=\"#444444\">NCCL's best (ring or tree) / NVRAR, both from the "
      "cost model (nvrar-model), not measured; {} GPUs per node</text>\n",
      h.gpus_per_node);

  for (int r = 0; r < rows; ++r) {
    const int y = kTop + r * kCellH;
    s += fmt::format(
        "<text class=\"row-label\" x=\"{}\" y=\"{}\" text-anchor=\"end\" dominant-baseline=\"middle\">{} ({})</text>\n",
        kLeft - 10, y + kCellH / 2, nodes[r], nodes[r] * h.gpus_per_node);
    for (int c = 0; c < cols; ++c) {
      const auto it = speedup.find({nodes[r], sizes[c]});
      if (it == speedup.end())
        throw Error(fmt::format("--heatmap-svg: no value for {} nodes at {} bytes", nodes[r], sizes[c]));
      const double v = it->second;
      if (!(v > 0) || !std::isfinite(v))
        throw Error(fmt::format("--heatmap-svg: speedup {} at {} nodes, {} bytes (must be positive and finite)", v,
                                nodes[r], sizes[c]));
      const Rgb fill = colour(v);
      const int x = kLeft + c * kCellW;
      s += fmt::format(
          "<rect class=\"cell\" x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"{}\" stroke=\"#ffffff\"/>\n", x, y,
          kCellW, kCellH, hex(fill));
      s += fmt::format(
          "<text class=\"cell\" data-nodes=\"{}\" data-bytes=\"{}\" x=\"{}\" y=\"{}\" text-anchor=\"middle\" "
          "dominant-baseline=\"middle\" fill=\"{}\">{}</text>\n",
          nodes[r], sizes[c], x + kCellW / 2, y + kCellH / 2, text_colour(fill), heatmap_label(v));
    }
  }
  for (int c = 0; c < cols; ++c)
    s += fmt::format("<text class=\"col-label\" x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text>\n",
                     kLeft + c * kCellW + kCellW / 2, kTop + grid_h + 18, human_size(static_cast<double>(sizes[c])));
  s += fmt::format(
      "<text class=\"axis-label\" x=\"{}\" y=\"{}\" text-anchor=\"middle\">message size (bytes per all-reduce, "
      "K = 1024)</text>\n",
      kLeft + grid_w / 2, kTop + grid_h + 42);
  s += fmt::format(
      "<text class=\"axis-label\" x=\"0\" y=\"0\" text-anchor=\"middle\" transform=\"translate(28 {}) rotate(-90)\">"
      "nodes (GPUs)</text>\n",
      kTop + grid_h / 2);

  // The colour bar: bottom 0.5x, top 4x; 1x a third of the way up (log scale).
  s += "<defs><linearGradient id=\"scale\" x1=\"0\" y1=\"1\" x2=\"0\" y2=\"0\">";
  for (double t : {kLow, 0.0, 1.0, kHigh}) {
    const double v = std::exp2(t);
    s += fmt::format("<stop offset=\"{:.4f}\" stop-color=\"{}\"/>", (t - kLow) / (kHigh - kLow), hex(colour(v)));
  }
  s += "</linearGradient></defs>\n";
  s += fmt::format(
      "<rect class=\"scale\" x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"url(#scale)\" stroke=\"#888888\"/>\n",
      bar_x, kTop, kBarW, bar_h);
  s += fmt::format("<text class=\"scale-title\" x=\"{}\" y=\"{}\">speedup</text>\n", bar_x - 4, kTop - 10);
  for (double t : {kLow, 0.0, 1.0, kHigh}) {
    const int y = kTop + static_cast<int>(std::lround(bar_h * (kHigh - t) / (kHigh - kLow)));
    s += fmt::format(
        "<line x1=\"{0}\" y1=\"{1}\" x2=\"{2}\" y2=\"{1}\" stroke=\"#444444\"/>"
        "<text class=\"scale-label\" x=\"{3}\" y=\"{1}\" dominant-baseline=\"middle\">{4:g}x</text>\n",
        bar_x + kBarW, y, bar_x + kBarW + 5, bar_x + kBarW + 8, std::exp2(t));
  }
  s += fmt::format("<text class=\"scale-note\" x=\"{}\" y=\"{}\" fill=\"#444444\">&lt; 1: NCCL faster</text>\n",
                   bar_x - 4, kTop + bar_h + 20);
  s += "</svg>\n";
  return s;
}

}  // namespace nvrar::model_tool
