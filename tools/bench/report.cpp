#include "bench/report.h"

#include <algorithm>
#include <chrono>
#include <ctime>
#include <fstream>
#include <map>
#include <utility>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

namespace nvrar::bench {

namespace {

// nccl-tests' precision rule, so that columns line up the same way in both tools' tables.
std::string format_time(double us) {
  if (us >= 10000.0) return fmt::format("{:7.0f}", us);
  if (us >= 100.0) return fmt::format("{:7.1f}", us);
  return fmt::format("{:7.2f}", us);
}

std::string format_wrong(const Result& r) { return r.checked ? fmt::to_string(r.wrong) : "N/A"; }

}  // namespace

const char* nccl_type_name(DataType dtype) {
  switch (dtype) {
    case DataType::kFloat32:
      return "float";
    case DataType::kBFloat16:
      return "bfloat16";
    case DataType::kFloat16:
      return "half";
  }
  return "invalid";
}

Result make_result(const std::string& algorithm, std::size_t count, DataType dtype, int ranks, const Measurement& m) {
  Result r;
  r.algorithm = algorithm;
  r.count = count;
  r.bytes = count * dtype_size(dtype);
  r.time_us = m.time_us;
  // bytes per microsecond / 1e3 = GB/s (1 GB = 1e9 bytes, as nccl-tests).
  r.algbw_gbs = m.time_us > 0 ? static_cast<double>(r.bytes) / m.time_us / 1e3 : 0.0;
  r.busbw_gbs = ranks > 0 ? r.algbw_gbs * 2.0 * (ranks - 1) / ranks : 0.0;
  r.wrong = m.wrong;
  r.checked = m.checked;
  return r;
}

void print_header(std::FILE* out, const RunInfo& info) {
  const RunConfig& c = info.config;
  fmt::print(out, "# nvrar-bench: all-reduce (sum), nccl-tests table format\n");
  fmt::print(out, "# backend {}: {}\n", info.backend, info.device);
  fmt::print(out, "# ranks {} = {} nodes x {} GPUs per node\n", info.ranks, info.nodes, info.gpus_per_node);
  fmt::print(out, "# dtype {}, minBytes {} maxBytes {} step: {}(factor)\n", dtype_name(info.dtype), info.min_bytes,
             info.max_bytes, info.step_factor);
  fmt::print(out,
             "# warmup iters: {} iters: {} rounds: {} (time per call = max over ranks of the per-rank median over "
             "rounds)\n",
             c.warmup, c.iters, c.rounds);
  fmt::print(out, "# validation: {}\n",
             c.check ? "on (float64 reference and bitwise agreement with rank 0)" : "off (pass --check)");
  fmt::print(out, "# algorithms: {}\n", fmt::join(info.algorithms, ", "));
  for (const std::string& note : info.notes) fmt::print(out, "# note: {}\n", note);
  std::fflush(out);
}

void print_section_begin(std::FILE* out, const std::string& algorithm) {
  fmt::print(out, "#\n# algorithm: {}\n#\n", algorithm);
  fmt::print(out, "#{:>11}  {:>12}  {:>8}  {:>6}  {:>6}  {:>7}  {:>6}  {:>6}  {:>6}\n", "size", "count", "type",
             "redop", "root", "time", "algbw", "busbw", "#wrong");
  fmt::print(out, "#{:>11}  {:>12}  {:>8}  {:>6}  {:>6}  {:>7}  {:>6}  {:>6}  {:>6}\n", "(B)", "(elements)", "", "", "",
             "(us)", "(GB/s)", "(GB/s)", "");
  std::fflush(out);
}

void print_row(std::FILE* out, const RunInfo& info, const Result& r) {
  fmt::print(out, "{:>12}  {:>12}  {:>8}  {:>6}  {:>6}  {}  {:6.2f}  {:6.2f}  {:>6}\n", r.bytes, r.count,
             nccl_type_name(info.dtype), "sum", -1, format_time(r.time_us), r.algbw_gbs, r.busbw_gbs, format_wrong(r));
  std::fflush(out);
}

void print_section_end(std::FILE* out, const std::vector<Result>& rows) {
  std::size_t wrong = 0;
  bool checked = !rows.empty();
  double busbw_sum = 0;
  for (const Result& r : rows) {
    wrong += r.wrong;
    checked = checked && r.checked;
    busbw_sum += r.busbw_gbs;
  }
  if (checked)
    fmt::print(out, "# Out of bounds values : {} {}\n", wrong, wrong == 0 ? "OK" : "FAILED");
  else
    fmt::print(out, "# Out of bounds values : N/A (not checked; pass --check)\n");
  fmt::print(out, "# Avg bus bandwidth    : {:g}\n", rows.empty() ? 0.0 : busbw_sum / static_cast<double>(rows.size()));
  std::fflush(out);
}

void print_summary(std::FILE* out, const RunInfo& info, const std::vector<Result>& results) {
  // Algorithms in the order they ran (the first is the reference), then sizes in the order they ran.
  std::vector<std::string> algorithms;
  std::vector<std::size_t> sizes;
  std::map<std::pair<std::string, std::size_t>, double> time;
  for (const Result& r : results) {
    if (std::find(algorithms.begin(), algorithms.end(), r.algorithm) == algorithms.end())
      algorithms.push_back(r.algorithm);
    if (std::find(sizes.begin(), sizes.end(), r.bytes) == sizes.end()) sizes.push_back(r.bytes);
    time[{r.algorithm, r.bytes}] = r.time_us;
  }
  if (algorithms.size() < 2) return;
  const std::string& base = algorithms.front();

  std::vector<std::string> time_heads;
  std::vector<std::string> ratio_heads;
  for (const std::string& a : algorithms) time_heads.push_back(a);
  for (std::size_t i = 1; i < algorithms.size(); ++i) ratio_heads.push_back(algorithms[i] + "/" + base);
  auto width = [](const std::string& head) { return std::max<std::size_t>(9, head.size()); };

  fmt::print(out, "#\n# summary: time per call (us) of each algorithm, {} {}, and its ratio to {}\n#\n",
             dtype_name(info.dtype), info.backend, base);
  std::string line = fmt::format("#{:>11}", "size (B)");
  for (const auto& h : time_heads) line += fmt::format("  {:>{}}", h, width(h));
  for (const auto& h : ratio_heads) line += fmt::format("  {:>{}}", h, width(h));
  fmt::print(out, "{}\n", line);
  for (std::size_t bytes : sizes) {
    line = fmt::format("{:>12}", bytes);
    for (const auto& a : algorithms) {
      const auto it = time.find({a, bytes});
      line += fmt::format("  {:>{}}", it == time.end() ? "-" : format_time(it->second), width(a));
    }
    const auto base_it = time.find({base, bytes});
    for (std::size_t i = 1; i < algorithms.size(); ++i) {
      const auto it = time.find({algorithms[i], bytes});
      const bool have = it != time.end() && base_it != time.end() && base_it->second > 0;
      line += fmt::format("  {:>{}}", have ? fmt::format("{:.2f}", it->second / base_it->second) : "-",
                          width(ratio_heads[i - 1]));
    }
    fmt::print(out, "{}\n", line);
  }
  std::fflush(out);
}

std::string iso8601_utc_now() {
  const std::time_t now = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  std::tm utc{};
  gmtime_r(&now, &utc);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &utc);
  return buf;
}

void write_json(const std::string& path, const RunInfo& info, const std::vector<Result>& results,
                const std::string& date) {
  nlohmann::ordered_json j;  // keys in the documented order, for people reading the file
  j["tool"] = "nvrar-bench";
  j["backend"] = info.backend;
  j["device"] = info.device;
  j["ranks"] = info.ranks;
  j["nodes"] = info.nodes;
  j["gpus_per_node"] = info.gpus_per_node;
  j["hosts"] = info.hosts;
  j["dtype"] = dtype_name(info.dtype);
  j["date"] = date;
  j["warmup"] = info.config.warmup;
  j["iters"] = info.config.iters;
  j["rounds"] = info.config.rounds;
  nlohmann::ordered_json rows = nlohmann::ordered_json::array();
  for (const Result& r : results) {
    rows.push_back({{"algorithm", r.algorithm},
                    {"bytes", r.bytes},
                    {"count", r.count},
                    {"time_us", r.time_us},
                    {"algbw_gbs", r.algbw_gbs},
                    {"busbw_gbs", r.busbw_gbs},
                    {"wrong", r.wrong},
                    {"checked", r.checked}});
  }
  j["results"] = std::move(rows);

  std::ofstream file(path, std::ios::trunc);
  if (!file) throw Error(fmt::format("cannot open '{}' for writing the JSON report", path));
  file << j.dump(2) << '\n';
  file.close();
  if (!file) throw Error(fmt::format("error writing the JSON report to '{}'", path));
}

}  // namespace nvrar::bench
