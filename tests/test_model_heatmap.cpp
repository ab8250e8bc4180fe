// nvrar-model --heatmap-svg (tools/model/heatmap_svg.h): the SVG is well-formed XML (read back with expat), every
// cell label is the model's speedup for its node count and size, the title names the preset, the profile and
// "projected", the axes are labelled; the writer escapes names and refuses a missing or non-finite cell; the tool
// names the option and the file when it cannot write.
#include <expat.h>
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <unistd.h>
#include <sys/wait.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "model/cost_model.h"
#include "model/heatmap_svg.h"
#include "nvrar/types.h"

namespace {

namespace model = nvrar::model;
using nvrar::model_tool::Heatmap;
using nvrar::model_tool::HeatmapCell;
using nvrar::model_tool::heatmap_label;
using nvrar::model_tool::heatmap_svg;

// What the test reads back from an SVG: the root element, each <text>'s class and content, and the cells' labels by
// (data-nodes, data-bytes).
struct Svg {
  std::string error;  // empty when the document is well-formed
  std::string root;
  std::vector<std::pair<std::string, std::string>> texts;  // (class, content)
  std::map<std::pair<long long, long long>, std::string> cells;
};

struct ParseState {
  Svg svg;
  int depth = 0;
  bool in_text = false;
  std::string text_class, content;
  long long nodes = -1, bytes = -1;
};

void on_start(void* data, const XML_Char* name, const XML_Char** attrs) {
  auto* s = static_cast<ParseState*>(data);
  if (s->depth++ == 0) s->svg.root = name;
  if (std::string(name) != "text") return;
  s->in_text = true;
  s->text_class.clear();
  s->content.clear();
  s->nodes = s->bytes = -1;
  for (int i = 0; attrs[i] != nullptr; i += 2) {
    const std::string key = attrs[i], value = attrs[i + 1];
    if (key == "class") s->text_class = value;
    if (key == "data-nodes") s->nodes = std::stoll(value);
    if (key == "data-bytes") s->bytes = std::stoll(value);
  }
}

void on_end(void* data, const XML_Char* name) {
  auto* s = static_cast<ParseState*>(data);
  --s->depth;
  if (std::string(name) != "text") return;
  s->in_text = false;
  s->svg.texts.emplace_back(s->text_class, s->content);
  if (s->text_class == "cell") s->svg.cells[{s->nodes, s->bytes}] = s->content;
}

void on_chars(void* data, const XML_Char* text, int len) {
  auto* s = static_cast<ParseState*>(data);
  if (s->in_text) s->content.append(text, static_cast<std::size_t>(len));
}

Svg parse_svg(const std::string& text) {
  ParseState state;
  XML_Parser parser = XML_ParserCreate("UTF-8");
  XML_SetUserData(parser, &state);
  XML_SetElementHandler(parser, on_start, on_end);
  XML_SetCharacterDataHandler(parser, on_chars);
  if (XML_Parse(parser, text.data(), static_cast<int>(text.size()), 1) == XML_STATUS_ERROR)
    state.svg.error = std::string(XML_ErrorString(XML_GetErrorCode(parser))) + " at line " +
                      std::to_string(XML_GetCurrentLineNumber(parser));
  XML_ParserFree(parser);
  return state.svg;
}

std::string text_of_class(const Svg& svg, const std::string& cls) {
  std::string out;
  for (const auto& [c, content] : svg.texts)
    if (c == cls) out += content + "\n";
  return out;
}

Heatmap small_heatmap() {
  Heatmap h{"a<b&c", "x\"y'z", 2, {1, 2}, {4096, 8192}, {}};
  for (long long n : h.nodes)
    for (long long b : h.sizes) h.cells.push_back(HeatmapCell{n, b, 0.25 * n + b / 4096.0});
  return h;
}

TEST(ModelHeatmap, WriterEscapesNamesAndLabelsEveryCell) {
  const Svg svg = parse_svg(heatmap_svg(small_heatmap()));
  ASSERT_EQ(svg.error, "");
  EXPECT_EQ(svg.root, "svg");
  const std::string title = text_of_class(svg, "title");
  EXPECT_NE(title.find("preset a<b&c, profile x\"y'z"), std::string::npos) << title;
  ASSERT_EQ(svg.cells.size(), 4u);
  EXPECT_EQ(svg.cells.at({1, 4096}), "1.25");
  EXPECT_EQ(svg.cells.at({2, 8192}), "2.50");
  EXPECT_EQ(heatmap_label(1.004999), "1.00");
}

TEST(ModelHeatmap, WriterRefusesMissingAndNonFiniteCells) {
  Heatmap h = small_heatmap();
  h.cells.pop_back();
  try {
    heatmap_svg(h);
    FAIL() << "no throw";
  } catch (const nvrar::Error& e) {
    EXPECT_NE(std::string(e.what()).find("--heatmap-svg: no value for 2 nodes at 8192 bytes"), std::string::npos)
        << e.what();
  }
  for (double bad : {0.0, -1.0, 1.0 / 0.0}) {
    h = small_heatmap();
    h.cells.front().speedup = bad;
    EXPECT_THROW(heatmap_svg(h), nvrar::Error) << bad;
  }
}

#ifdef NVRAR_MODEL_PATH
std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// A file in the temporary directory of this test alone: ctest runs the tests of this binary as parallel processes.
std::filesystem::path temp_file(const std::string& suffix) {
  const std::string test = ::testing::UnitTest::GetInstance()->current_test_info()->name();
  return std::filesystem::path(testing::TempDir()) /
         ("nvrar_model_heatmap_" + test + "_" + std::to_string(::getpid()) + suffix);
}

// Runs nvrar-model with `args`; returns its exit status, stdout and stderr together in `output`.
int run_tool(const std::string& args, std::string& output) {
  const std::filesystem::path log = temp_file(".log");
  const int status = std::system((std::string(NVRAR_MODEL_PATH) + " " + args + " > " + log.string() + " 2>&1").c_str());
  output = read_file(log);
  std::filesystem::remove(log);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

// The labels of the tool's SVG are the model's numbers: NCCL's best of ring and tree over NVRAR with the profile.
TEST(ModelHeatmap, ToolLabelsAreTheModelsSpeedups) {
  const std::filesystem::path svg_path = temp_file(".svg");
  const std::vector<long long> nodes = {2, 3, 4, 8, 16};
  const std::vector<long long> sizes = {131072, 262144, 524288, 1048576, 2097152};
  for (const char* preset_name : {"a100-slingshot11", "h100-ndr400"}) {
    for (const char* profile_name : {"ours", "prototype"}) {
      std::string out;
      ASSERT_EQ(run_tool(fmt::format("--preset {} --profile {} --nodes 2,3,4,8,16 --sizes 128K..2M --heatmap-svg {}",
                                     preset_name, profile_name, svg_path.string()),
                         out),
                0)
          << out;
      const Svg svg = parse_svg(read_file(svg_path));
      ASSERT_EQ(svg.error, "") << preset_name << " " << profile_name;
      EXPECT_EQ(svg.root, "svg");
      const std::string title = text_of_class(svg, "title");
      EXPECT_NE(title.find(fmt::format("preset {}, profile {}", preset_name, profile_name)), std::string::npos)
          << title;
      EXPECT_NE(title.find("projected"), std::string::npos) << title;
      const std::string axes = text_of_class(svg, "axis-label");
      EXPECT_NE(axes.find("message size"), std::string::npos) << axes;
      EXPECT_NE(axes.find("nodes (GPUs)"), std::string::npos) << axes;
      EXPECT_EQ(text_of_class(svg, "col-label"), "128K\n256K\n512K\n1M\n2M\n");
      const model::Preset& preset = model::find_preset(preset_name);
      const model::ImplementationProfile& profile = model::find_profile(profile_name);
      ASSERT_EQ(svg.cells.size(), nodes.size() * sizes.size());
      for (long long n : nodes)
        for (long long b : sizes) {
          const int ni = static_cast<int>(n);
          const double bytes = static_cast<double>(b);
          const double nccl =
              model::best_algorithm(preset, ni, bytes, {model::Algorithm::kNcclRing, model::Algorithm::kNcclTree})
                  .time_us;
          const double nvrar = model::nvrar_breakdown(preset, profile, ni, bytes).total_us();
          const auto it = svg.cells.find({n, b});
          ASSERT_NE(it, svg.cells.end()) << n << " nodes, " << b << " bytes";
          EXPECT_EQ(it->second, heatmap_label(nccl / nvrar)) << preset_name << " " << profile_name << " " << n
                                                             << " nodes, " << b << " bytes";
        }
    }
  }
  std::filesystem::remove(svg_path);
}

TEST(ModelHeatmap, ToolNamesTheOptionAndTheFile) {
  std::string out;
  EXPECT_EQ(run_tool("--preset a100-slingshot11 --nodes 2 --sizes 128K --heatmap-svg /nonexistent-dir/x.svg", out), 2);
  EXPECT_NE(out.find("nvrar-model: error: --heatmap-svg: cannot open '/nonexistent-dir/x.svg' for writing"),
            std::string::npos)
      << out;
}
#endif

}  // namespace
