// nvrar-model: predicted all-reduce latency of NVRAR and of the algorithms it competes with (NCCL ring and tree,
// flat recursive doubling, one-shot, two-shot) on N nodes of a cluster preset, and NVRAR's predicted speedup over
// NCCL. The model is src/model/cost_model.h; --calibrate fits its intra-node parameters to single-node nvrar-bench
// JSON, its network parameters to multi-node nvrar-bench JSON or to published times (tests/data/published_*.json),
// and NCCL's per-hop network cost to a published speedup range (model/published_speedup.h); --validate compares the
// model with every published point and NCCL's ratio with every published range. docs/model.md, docs/cluster.md.
//
//   nvrar-model --preset h100-ndr400 --nodes 1,2,4,8 --sizes 128K..2M
//   nvrar-model --preset h100-ndr400 --calibrate bench/results/2026-11-27-h100/bench_np4_g4.json --json out.json
//   nvrar-model --preset a100-slingshot11 --calibrate tests/data/published_yalis_perlmutter_nvrar.json
//               --calibrate tests/data/published_paper_nccl_ratio.json
//   nvrar-model --preset a100-slingshot11 --validate
//   nvrar-model --preset a100-slingshot11 --nodes 2,4,8,16 --sizes 128K..2M --heatmap-svg speedup.svg
//   python3 scripts/plot_model_heatmap.py out.json        (the same heatmap by GPU count, with matplotlib)
//
// Exit status: 0 done; 1 --validate found a point beyond the bound, a file's best ratio outside its published range or
// a ratio above it; 2 bad usage or an error (message on stderr).
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "model/calibrate.h"
#include "model/cost_model.h"
#include "model/heatmap_svg.h"
#include "model/print.h"
#include "model/published_speedup.h"
#include "model/validate.h"
#include "nvrar/types.h"

namespace {

using nvrar::Error;
namespace model = nvrar::model;
using namespace nvrar::model_tool;  // the printing and validation helpers (tools/model/print.h, validate.h)

constexpr int kExitOk = 0;
constexpr int kExitOutOfBound = 1;
constexpr int kExitError = 2;

// --validate's bound on |model - published| / published (issue 22).
constexpr double kValidateBound = 0.25;

// The published points shipped with the source: tests/data/published_*.json next to this file's directory.
std::vector<std::string> shipped_published_files() {
  const std::filesystem::path dir = std::filesystem::path(__FILE__).parent_path().parent_path() / "tests" / "data";
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    if (name.rfind("published_", 0) == 0 && entry.path().extension() == ".json") out.push_back(entry.path().string());
  }
  std::sort(out.begin(), out.end());
  if (out.empty())
    throw Error(fmt::format("--validate: no published_*.json in '{}' (name the files with --published)",
                            dir.string()));
  return out;
}

// Bounds of what the model is asked about, far beyond any machine built and well inside the int arithmetic of the
// model's rank counts (src/model/cost_model.cpp): 1M nodes, 4096 GPUs a node, 4M GPUs in all, messages up to 1 TiB.
constexpr long long kMaxNodes = 1LL << 20;
constexpr int kMaxGpusPerNode = 4096;
constexpr long long kMaxGpus = 1LL << 22;
constexpr long long kMaxBytes = 1LL << 40;

// A parameter override, applied to the preset only when given on the command line.
struct Override {
  const char* flag;
  const char* help;
  std::function<void(model::Preset&, double)> apply;
  double value = 0;
  CLI::Option* option = nullptr;
};

struct Options {
  std::string preset = "h100-ndr400";
  bool list_presets = false;
  std::string nodes = "1,2,3,4,6,8,12,16,32,64";
  std::string sizes = "4K..64M";
  std::vector<std::string> calibrate;
  std::string calibrate_min = "0";
  std::string calibrate_max = "4M";
  bool no_ll128 = false;
  std::string json;
  std::string heatmap_svg;
  std::string profile = "ours";
  bool validate = false;
  std::vector<std::string> published;
};

// "4096", "4K", "64M", "1G" (powers of 1024), for sizes; plain integers for node counts. At most `max`.
long long parse_count(const std::string& token, bool allow_suffix, const char* option, long long max) {
  std::size_t end = 0;
  while (end < token.size() && std::isdigit(static_cast<unsigned char>(token[end]))) ++end;
  int shift = -1;
  const std::string suffix = token.substr(end);
  if (suffix.empty()) shift = 0;
  if (allow_suffix && suffix.size() == 1) {
    const char s = static_cast<char>(std::toupper(static_cast<unsigned char>(suffix[0])));
    shift = s == 'K' ? 10 : s == 'M' ? 20 : s == 'G' ? 30 : -1;
  }
  if (end == 0 || end > 12 || shift < 0)
    throw Error(fmt::format("{}: '{}' is not {}", option, token,
                            allow_suffix ? "a size (digits with an optional K, M or G)" : "a whole number"));
  const long long value = std::stoll(token.substr(0, end));  // at most 12 digits: no overflow
  if (value > (max >> shift))
    throw Error(fmt::format("{}: '{}' is too large (at most {})", option, token, max));
  return value << shift;
}

// A comma list whose items are values or doubling ranges "a..b" (a, 2a, 4a, ... up to b); sorted, unique.
std::vector<long long> parse_list(const std::string& text, bool allow_suffix, const char* option, long long max) {
  std::vector<long long> out;
  std::size_t begin = 0;
  while (begin <= text.size()) {
    std::size_t comma = text.find(',', begin);
    if (comma == std::string::npos) comma = text.size();
    const std::string item = text.substr(begin, comma - begin);
    const std::size_t dots = item.find("..");
    if (dots == std::string::npos) {
      out.push_back(parse_count(item, allow_suffix, option, max));
    } else {
      const long long lo = parse_count(item.substr(0, dots), allow_suffix, option, max);
      const long long hi = parse_count(item.substr(dots + 2), allow_suffix, option, max);
      if (lo <= 0 || hi < lo)
        throw Error(fmt::format("{}: range '{}' must run from a positive value up", option, item));
      for (long long v = lo; v <= hi; v *= 2) out.push_back(v);
    }
    begin = comma + 1;
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

// One line of the table: the times of every algorithm, NCCL's pick and the speedup, all finite.
struct Row {
  long long nodes = 0;
  long long bytes = 0;
  std::vector<double> times;  // per model::all_algorithms()
  double t_nvrar = 0;
  model::NcclEstimate best;
  std::string pick;
  double speedup = 0;
};

Row predict_row(const model::Preset& preset, const model::ImplementationProfile& profile, long long n,
                long long bytes) {
  Row row;
  row.nodes = n;
  row.bytes = bytes;
  const int node_count = static_cast<int>(n);  // at most kMaxNodes
  const double b = static_cast<double>(bytes);
  for (model::Algorithm a : model::all_algorithms()) {
    const double t = a == model::Algorithm::kNvrar ? model::nvrar_breakdown(preset, profile, node_count, b).total_us()
                                                   : model::predict_us(a, preset, node_count, b);
    if (a == model::Algorithm::kNvrar) row.t_nvrar = t;
    row.times.push_back(t);
  }
  const model::NcclPick nccl = model::pick_nccl(preset, node_count, b);
  row.best = nccl.estimate;
  row.pick = nccl.name();
  row.speedup = row.best.time_us / row.t_nvrar;
  // A time the model cannot give (parameters at the edge of their range, e.g. bandwidths near 0) is an error, never a
  // printed inf or nan.
  bool finite = std::isfinite(row.best.time_us) && std::isfinite(row.speedup) && row.t_nvrar > 0;
  for (double t : row.times) finite = finite && std::isfinite(t);
  if (!finite)
    throw Error(fmt::format("the model gives no finite time at {} nodes x {} GPUs, {} bytes (check the preset's "
                            "parameters and their overrides)",
                            n, preset.gpus_per_node, bytes));
  return row;
}

int run(const Options& opt, const std::vector<Override>& overrides, const CLI::App& app) {
  if (opt.list_presets) {
    for (const model::Preset& p : model::presets()) {
      print_preset(stdout, p, true);
      fmt::print("#\n");
    }
    return kExitOk;
  }
  // Every option first (ranges and relations), then the files, then the table.
  model::Preset preset = model::find_preset(opt.preset);
  for (const Override& o : overrides) {
    if (o.option->count() == 0) continue;
    if (!std::isfinite(o.value)) throw Error(fmt::format("{}: {} is not a finite number", o.flag, o.value));
    o.apply(preset, o.value);
  }
  if (opt.no_ll128) preset.nccl.ll128 = false;
  model::validate_preset(preset);

  const std::vector<long long> nodes = parse_list(opt.nodes, false, "--nodes", kMaxNodes);
  const std::vector<long long> sizes = parse_list(opt.sizes, true, "--sizes", kMaxBytes);
  if (nodes.front() < 1) throw Error(fmt::format("--nodes: node counts run from 1 to {}", kMaxNodes));
  if (nodes.back() * preset.gpus_per_node > kMaxGpus)
    throw Error(fmt::format("--nodes {} x {} GPUs per node is {} GPUs; the model takes at most {}", nodes.back(),
                            preset.gpus_per_node, nodes.back() * preset.gpus_per_node, kMaxGpus));

  model::CalibrationOptions co;
  co.min_bytes = static_cast<double>(parse_count(opt.calibrate_min, true, "--calibrate-min-bytes", kMaxBytes));
  co.max_bytes = static_cast<double>(parse_count(opt.calibrate_max, true, "--calibrate-max-bytes", kMaxBytes));
  if (co.min_bytes > co.max_bytes)
    throw Error(fmt::format("--calibrate-min-bytes ({}) is larger than --calibrate-max-bytes ({})", opt.calibrate_min,
                            opt.calibrate_max));
  if (opt.calibrate.empty())
    for (const char* flag : {"--calibrate-min-bytes", "--calibrate-max-bytes"})
      if (app.count(flag) > 0)
        std::fprintf(stderr, "nvrar-model: note: %s applies only with --calibrate; ignored\n", flag);

  model::ImplementationProfile profile = model::find_profile(opt.profile);
  if (!opt.published.empty() && !opt.validate)
    std::fprintf(stderr, "nvrar-model: note: --published applies only with --validate; ignored\n");
  if (!opt.heatmap_svg.empty() && opt.validate)
    std::fprintf(stderr,
                 "nvrar-model: note: --heatmap-svg draws the table, which --validate does not print; ignored\n");

  // --calibrate takes nvrar-bench reports (single-node runs: the intra-node fit; multi-node runs on as many hosts:
  // the network fit), published-times files (the network fit) and published speedup ranges (NCCL's per-hop cost);
  // the intra-node fit goes first, the network fit uses its result, NCCL's fit the network's.
  std::optional<model::Calibration> calibration;
  std::optional<model::NetworkCalibration> network;
  std::optional<model::NcclCalibration> nccl;
  if (!opt.calibrate.empty()) {
    std::vector<model::BenchReport> reports;
    std::vector<model::PublishedPoints> published;
    std::vector<model::PublishedSpeedupRange> ranges;
    for (const std::string& path : opt.calibrate) {
      const std::string text = read_text(path);
      if (model::is_published_speedup_range(text))
        ranges.push_back(model::parse_published_speedup_range(text, path));
      else if (model::is_published_points(text))
        published.push_back(model::parse_published_points(text, path));
      else
        reports.push_back(model::parse_bench_report(text, path));
    }
    std::string why;
    bool fitted = false;
    if (!reports.empty()) {
      calibration = model::calibrate(reports, preset, co);
      // Multi-node runs whose nodes are hosts: their NVRAR rows fit the network, over the intra-node fit above.
      for (model::PublishedPoints& f : model::network_points_from_bench(reports, calibration->notes))
        published.push_back(std::move(f));
      fitted = calibration->intra_fitted || calibration->nccl_fitted;
      for (const std::string& n : calibration->notes) why += "; " + n;
    }
    if (!published.empty()) {
      network = model::calibrate_network(published, preset, co);
      fitted = fitted || network->fitted;
      for (const std::string& n : network->notes) why += "; " + n;
    }
    if (!ranges.empty()) {
      nccl = model::fit_nccl_net_latency(ranges, published, preset);
      fitted = fitted || nccl->fitted;
      for (const std::string& n : nccl->notes) why += "; " + n;
    }
    if (!fitted)
      throw Error(fmt::format("--calibrate: nothing fitted to {} between {} and {} bytes{}",
                              fmt::join(opt.calibrate, ", "), opt.calibrate_min, opt.calibrate_max, why));
    model::validate_preset(preset);
    // A sweep also fitted the measured profile's per-call cost: the table uses it when it shows that profile.
    if (network && network->other_fitted && network->profile == profile.name) profile.other_us = network->other_us;
  }

  if (opt.validate) {
    const Fits fits{calibration ? &*calibration : nullptr, network ? &*network : nullptr, nccl ? &*nccl : nullptr};
    const std::vector<std::string> files = opt.published.empty() ? shipped_published_files() : opt.published;
    const int failed = print_validation(stdout, preset, files, kValidateBound, fits);
    return failed == 0 ? kExitOk : kExitOutOfBound;
  }

  std::vector<Row> table;
  for (long long n : nodes)
    for (long long bytes : sizes) table.push_back(predict_row(preset, profile, n, bytes));

  fmt::print(
      "# nvrar-model: predicted all-reduce time per call (us); alpha-beta model, NCCL by its own tuning model\n");
  print_preset(stdout, preset, false);
  print_profile(stdout, profile);
  if (calibration) print_calibration(stdout, *calibration);
  if (network) print_network_calibration(stdout, *network);
  if (nccl) print_nccl_calibration(stdout, *nccl);
  fmt::print(
      "# nccl-best = min(nccl-ring, nccl-tree) with the algorithm/protocol NCCL would pick; speedup = "
      "nccl-best / nvrar\n");
  const std::vector<model::Algorithm>& algorithms = model::all_algorithms();
  std::string head = fmt::format("{:>6} {:>6} {:>6}", "nodes", "GPUs", "size");
  for (model::Algorithm a : algorithms) head += fmt::format(" {:>9}", model::algorithm_name(a));
  head += fmt::format(" {:>9} {:>12} {:>8}", "nccl-best", "nccl-pick", "speedup");
  fmt::print("#{}\n", head.substr(1));

  nlohmann::ordered_json rows = nlohmann::ordered_json::array();
  for (const Row& r : table) {
    const long long n = r.nodes;
    std::string line =
        fmt::format("{:>6} {:>6} {:>6}", n, n * preset.gpus_per_node, human_size(static_cast<double>(r.bytes)));
    nlohmann::ordered_json times;
    for (std::size_t i = 0; i < algorithms.size(); ++i) {
      times[model::algorithm_name(algorithms[i])] = r.times[i];
      line += fmt::format(" {:>9}", format_us(r.times[i]));
    }
    line += fmt::format(" {:>9} {:>12} {:>8.2f}", format_us(r.best.time_us), r.pick, r.speedup);
    fmt::print("{}\n", line);
    rows.push_back({{"nodes", n},
                    {"gpus_per_node", preset.gpus_per_node},
                    {"gpus", n * preset.gpus_per_node},
                    {"bytes", r.bytes},
                    {"time_us", times},
                    {"nccl_best_us", r.best.time_us},
                    {"nccl_pick", r.pick},
                    {"speedup", r.speedup}});
  }

  if (!opt.heatmap_svg.empty()) {
    Heatmap h{preset.name, profile.name, preset.gpus_per_node, nodes, sizes, {}};
    for (const Row& r : table) h.cells.push_back(HeatmapCell{r.nodes, r.bytes, r.speedup});
    std::ofstream file(opt.heatmap_svg, std::ios::trunc);
    if (!file) throw Error(fmt::format("--heatmap-svg: cannot open '{}' for writing", opt.heatmap_svg));
    file << heatmap_svg(h);
    file.close();
    if (!file) throw Error(fmt::format("--heatmap-svg: error writing '{}'", opt.heatmap_svg));
  }

  if (!opt.json.empty()) {
    nlohmann::ordered_json j;
    j["tool"] = "nvrar-model";
    j["preset"] = preset_json(preset);
    j["profile"] = profile.name;
    if (network)
      j["network_calibration"] = {{"files", opt.calibrate},
                                  {"profile", network->profile},
                                  {"alpha_us", network->alpha_us},
                                  {"bandwidth_gbs", network->bandwidth_gbs},
                                  {"rms_relative_error", network->fit.rms_relative},
                                  {"max_relative_error", network->fit.max_relative},
                                  {"sweep_used", network->sweep_used},
                                  {"round_latency_us", network->round_latency_us},
                                  {"other_fitted", network->other_fitted},
                                  {"other_us", network->other_us},
                                  {"notes", network->notes}};
    if (nccl)
      j["nccl_calibration"] = {{"files", opt.calibrate},
                               {"fitted", nccl->fitted},
                               {"rule", "smallest per-hop cost with each published file's best NCCL / published "
                                        "ratio >= the range's lower bound ('up to' = the best size)"},
                               {"inter_latency_us", nccl->inter_latency_us},
                               {"binding_bytes", nccl->binding_bytes},
                               {"binding_nodes", nccl->binding_nodes},
                               {"binding_file", nccl->binding_origin},
                               {"upper_latency_us", nccl->upper_latency_us},
                               {"consistent", nccl->consistent},
                               {"notes", nccl->notes}};
    if (calibration) {
      j["calibration"] = {{"files", opt.calibrate},
                          {"intra_fitted", calibration->intra_fitted},
                          {"intra_algorithm", calibration->intra_algorithm},
                          {"intra_rms_relative_error", calibration->intra_fit.rms_relative},
                          {"nccl_fitted", calibration->nccl_fitted},
                          {"nccl_rms_relative_error", calibration->nccl_fit.rms_relative},
                          {"notes", calibration->notes}};
    }
    j["speedup"] = "nccl_best_us / time_us.nvrar";
    j["rows"] = std::move(rows);
    std::ofstream file(opt.json, std::ios::trunc);
    if (!file) throw Error(fmt::format("--json: cannot open '{}' for writing", opt.json));
    file << j.dump(2) << '\n';
    file.close();
    if (!file) throw Error(fmt::format("--json: error writing '{}'", opt.json));
  }
  return kExitOk;
}

}  // namespace

int main(int argc, char** argv) {
  Options opt;
  CLI::App app{
      "nvrar-model: predicted all-reduce latency per algorithm on N nodes of a cluster preset, and NVRAR's speedup "
      "over NCCL.\nExit status: 0 done, 1 --validate found a point beyond the bound, a best ratio outside its "
      "published range or a ratio above it, 2 usage or runtime error."};
  app.add_option("--preset", opt.preset, "Cluster preset (--list-presets)")->capture_default_str();
  app.add_flag("--list-presets", opt.list_presets, "Print the presets with their parameters and sources, and exit");
  app.add_option("--nodes", opt.nodes,
                 "Node counts: a comma list of numbers and doubling ranges a..b (1..64 = 1,2,4,...,64)")
      ->capture_default_str();
  app.add_option("--sizes", opt.sizes,
                 "Message sizes in bytes, K/M/G suffixes (powers of 1024): a comma list of sizes and doubling ranges "
                 "(4K..64M)")
      ->capture_default_str();
  auto set = [](double model::Preset::*field) { return [field](model::Preset& p, double v) { p.*field = v; }; };
  auto set_link = [](model::LinkParams model::Preset::*link, double model::LinkParams::*field) {
    return [link, field](model::Preset& p, double v) { (p.*link).*field = v; };
  };
  using P = model::Preset;
  using L = model::LinkParams;
  auto whole = [](double v, const char* flag, int max) {
    if (!(v == std::floor(v) && v >= 1 && v <= max))
      throw Error(fmt::format("{}: {} is not a whole number from 1 to {}", flag, v, max));
    return static_cast<int>(v);
  };
  // Applied in this order: --nics-per-node after --gpus-per-node, which scales the NIC count with it.
  std::vector<Override> overrides = {
      {"--gpus-per-node", "GPUs per node (NICs per node scale with it unless --nics-per-node is given)",
       [whole](P& p, double v) {
         const int g = whole(v, "--gpus-per-node", kMaxGpusPerNode);
         p.nics_per_node = std::max(1, p.nics_per_node * g / p.gpus_per_node);
         p.gpus_per_node = g;
       }},
      {"--nics-per-node", "NICs per node (GPUs share them when fewer than GPUs)",
       [whole](P& p, double v) { p.nics_per_node = whole(v, "--nics-per-node", kMaxGpusPerNode); }},
      {"--intra-alpha-us", "NVLink: latency of a step, us", set_link(&P::intra, &L::alpha_us)},
      {"--intra-bw-gbs", "NVLink: bandwidth per GPU, one direction, GB/s", set_link(&P::intra, &L::bandwidth_gbs)},
      {"--intra-peer-bw-gbs", "NVLink: most one peer can take, GB/s (0: all of it)",
       set_link(&P::intra, &L::peer_bandwidth_gbs)},
      {"--intra-message-us", "NVLink: cost of each further message in a step, us", set_link(&P::intra, &L::message_us)},
      {"--inter-alpha-us", "Network: latency of a step, us", set_link(&P::inter, &L::alpha_us)},
      {"--inter-bw-gbs", "Network: bandwidth of one NIC, one direction, GB/s", set_link(&P::inter, &L::bandwidth_gbs)},
      {"--inter-message-us", "Network: cost of each further message (put) in a step, us",
       set_link(&P::inter, &L::message_us)},
      {"--launch-us", "Kernel launch inside a CUDA graph, us", set(&P::launch_us)},
      {"--poll-us", "Flag poll per step, us", set(&P::poll_us)},
      {"--flag-factor", "Wire bytes per payload byte of NVRAR's cells (2: 4 B payload + 4 B flag)",
       set(&P::flag_factor)},
      {"--nccl-channels", "NCCL channels",
       [whole](P& p, double v) { p.nccl.channels = whole(v, "--nccl-channels", 1024); }},
      {"--nccl-bus-bw-gbs", "NCCL bus bandwidth on one node, GB/s",
       [](P& p, double v) { p.nccl.intra_bus_bw_gbs = v; }},
      {"--nccl-net-latency-us", "NCCL net plugin latency (latencyInter), us",
       [](P& p, double v) { p.nccl.inter_latency_us = v; }}};
  for (Override& o : overrides) o.option = app.add_option(o.flag, o.value, o.help);
  app.add_flag("--nccl-no-ll128", opt.no_ll128, "NCCL without the LL128 protocol");
  app.add_option("--calibrate", opt.calibrate,
                 "nvrar-bench JSON report to fit the intra-node parameters to (single-node runs) or the network's "
                 "(multi-node runs, one node per host), a published-times file (tests/data/published_*.json) to "
                 "fit the network to, or a published speedup range to fit NCCL's per-hop network cost to "
                 "(repeatable)");
  app.add_option("--profile", opt.profile,
                 "Implementation profile of the nvrar column: ours (one fused kernel) or prototype (the published "
                 "one)")
      ->capture_default_str();
  app.add_flag("--validate", opt.validate,
               "Print model vs published for every published point (exit 1 if any is more than 25% off) and NCCL's "
               "ratio to the published NVRAR against every published speedup range (exit 1 if a file's best ratio is "
               "outside the range or any ratio above it)");
  app.add_option("--published", opt.published,
                 "Published-times or speedup-range file for --validate (repeatable; default: the shipped "
                 "tests/data/published_*.json)");
  app.add_option("--calibrate-min-bytes", opt.calibrate_min, "Smallest message the fit uses")->capture_default_str();
  app.add_option("--calibrate-max-bytes", opt.calibrate_max, "Largest message the fit uses")->capture_default_str();
  app.add_option("--json", opt.json, "Also write the preset, calibration and predictions as JSON to this file");
  app.add_option("--heatmap-svg", opt.heatmap_svg,
                 "Also draw NVRAR's projected speedup over NCCL (nodes x sizes) as an SVG heatmap to this file");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? kExitOk : kExitError;
  }
  try {
    return run(opt, overrides, app);
  } catch (const std::exception& e) {
    std::string what = e.what();
    if (what.rfind("nvrar-model: ", 0) == 0) what.erase(0, std::string("nvrar-model: ").size());
    std::fprintf(stderr, "nvrar-model: error: %s\n", what.c_str());
    return kExitError;
  }
}
