#include "select/tuning_table.h"

#include <algorithm>
#include <fstream>
#include <limits>
#include <sstream>
#include <type_traits>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "core/json_input.h"
#include "nvrar/types.h"

namespace nvrar::select {

namespace {

constexpr const char* kFormat = "nvrar-tuning-1";

// A table names one algorithm_name() that runs on arbitrary pointers (the tuner measures on those): any but auto and
// the registered two-shot, whose inputs must lie in registered buffers. The old spellings are not table names.
bool table_algorithm(const std::string& a) {
  try {
    const Algorithm id = parse_algorithm(a);
    return id != Algorithm::kAuto && id != Algorithm::kRegistered && a == algorithm_name(id);
  } catch (const Error&) {
    return false;
  }
}

namespace ji = nvrar::json_input;

// Largest ranks, nodes or GPUs per node a table may name: far above any machine, and small enough that
// nodes x gpus_per_node is computed without overflow.
constexpr int kMaxRanks = 1 << 20;

const nlohmann::json& member(const nlohmann::json& j, const char* name, const std::string& where) {
  const auto it = j.find(name);
  if (it == j.end()) throw Error(fmt::format("{}: missing field '{}'", where, name));
  return *it;
}

// Every field is read through json_input's checked conversions: its type, integer-ness and range, named in the error.
template <typename V>
V field(const nlohmann::json& j, const char* name, const std::string& where, V min = std::numeric_limits<V>::lowest(),
        V max = std::numeric_limits<V>::max()) {
  const nlohmann::json& v = member(j, name, where);
  if constexpr (std::is_same_v<V, std::string>) {
    return ji::to_string(v, where, name);
  } else if constexpr (std::is_floating_point_v<V>) {
    return V(ji::to_double(v, where, name, min, max));
  } else {
    return ji::to_integer<V>(v, where, name, min, max);
  }
}

std::string optional_string(const nlohmann::json& j, const char* name, const std::string& where) {
  return j.contains(name) ? ji::to_string(j.at(name), where, name) : std::string();
}

template <typename V>
V optional_field(const nlohmann::json& j, const char* name, const std::string& where, V fallback) {
  return j.contains(name) ? field<V>(j, name, where) : fallback;
}

nlohmann::json to_json(const TuningTable& t) {
  nlohmann::json j;
  j["format"] = kFormat;
  j["card"] = t.card;
  j["created"] = t.created;
  j["source"] = t.source;
  j["ranks"] = t.ranks;
  j["nodes"] = t.nodes;
  j["gpus_per_node"] = t.gpus_per_node;
  j["entries"] = nlohmann::json::array();
  for (const TuningEntry& e : t.entries) {
    nlohmann::json je = {{"max_bytes", e.max_bytes}, {"algorithm", e.algorithm}, {"threads", e.threads},
                         {"blocks", e.blocks},       {"bulk", e.bulk},           {"time_us", e.time_us}};
    if (e.piece_units != 0) je["piece_units"] = e.piece_units;
    j["entries"].push_back(je);
  }
  return j;
}

}  // namespace

AlgorithmSpec parse_algorithm_spec(const std::string& spec) {
  AlgorithmSpec a;
  std::vector<std::string> parts;
  for (std::size_t start = 0;;) {
    const std::size_t colon = spec.find(':', start);
    parts.push_back(spec.substr(start, colon == std::string::npos ? std::string::npos : colon - start));
    if (colon == std::string::npos) break;
    start = colon + 1;
  }
  a.name = parts[0];
  if (a.name.empty()) throw Error(fmt::format("nvrar: algorithm '{}': empty name", spec));
  auto number = [&](const std::string& option) {
    const std::string digits = option.substr(1);
    if (digits.empty() || digits.size() > 6 || digits.find_first_not_of("0123456789") != std::string::npos)
      throw Error(fmt::format("nvrar: algorithm '{}': option '{}' needs a number (t<threads>, b<blocks>, p<piece "
                              "units>)",
                              spec, option));
    return std::stoi(digits);
  };
  for (std::size_t i = 1; i < parts.size(); ++i) {
    const std::string& o = parts[i];
    if (o == "bulk") {
      a.bulk = 1;
    } else if (o == "cells") {
      a.bulk = 0;
    } else if (!o.empty() && o[0] == 't') {
      a.threads = number(o);
    } else if (!o.empty() && o[0] == 'b') {
      a.blocks = number(o);
    } else if (!o.empty() && o[0] == 'p') {
      a.piece_units = number(o);
    } else {
      throw Error(fmt::format("nvrar: algorithm '{}': unknown option '{}' (t<threads>, b<blocks>, bulk, cells, "
                              "p<piece units>)",
                              spec, o));
    }
  }
  if (a.piece_units % 128 != 0)
    throw Error(fmt::format("nvrar: algorithm '{}': piece units {} (a multiple of 128)", spec, a.piece_units));
  if (a.piece_units != 0 && a.name != "push")
    throw Error(fmt::format("nvrar: algorithm '{}': p<piece units> is an option of push only", spec));
  if (a.threads % 32 != 0 || a.threads > 1024)
    throw Error(fmt::format("nvrar: algorithm '{}': threads {} (a multiple of 32 up to 1024)", spec, a.threads));
  return a;
}

const TuningEntry* TuningTable::lookup(int64_t bytes) const {
  for (const TuningEntry& e : entries)
    if (bytes <= e.max_bytes) return &e;
  return nullptr;
}

uint64_t TuningTable::fingerprint() const {
  nlohmann::json j = to_json(*this);
  for (auto& e : j["entries"]) e.erase("time_us");  // decisions only
  j.erase("created");
  j.erase("source");
  const std::string text = j.dump();
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : text) h = (h ^ c) * 1099511628211ull;
  return h;
}

TuningTable parse_tuning_table(const std::string& json_text, const std::string& origin) {
  const std::string where = fmt::format("nvrar: tuning table {}", origin);
  const nlohmann::json j = ji::parse(json_text, where);
  if (!j.is_object()) throw Error(fmt::format("{}: expected a JSON object, got {}", where, ji::describe(j)));
  const auto format = field<std::string>(j, "format", where);
  if (format != kFormat)
    throw Error(fmt::format("{}: format '{}', expected '{}'", where, ji::excerpt(format), kFormat));
  TuningTable t;
  t.card = optional_string(j, "card", where);
  t.created = optional_string(j, "created", where);
  t.source = optional_string(j, "source", where);
  t.ranks = field<int>(j, "ranks", where, 1, kMaxRanks);
  t.nodes = field<int>(j, "nodes", where, 1, kMaxRanks);
  t.gpus_per_node = field<int>(j, "gpus_per_node", where, 1, kMaxRanks);
  if (std::int64_t(t.nodes) * t.gpus_per_node != t.ranks)
    throw Error(fmt::format("{}: ranks {} != nodes {} x gpus_per_node {}", where, t.ranks, t.nodes, t.gpus_per_node));
  const auto entries = j.find("entries");
  if (entries == j.end() || !entries->is_array()) throw Error(fmt::format("{}: missing array 'entries'", where));
  int64_t previous = 0;
  for (std::size_t i = 0; i < entries->size(); ++i) {
    const auto& je = (*entries)[i];
    const std::string entry = fmt::format("{} entry {}", where, i);
    if (!je.is_object()) throw Error(fmt::format("{}: expected an object, got {}", entry, ji::describe(je)));
    TuningEntry e;
    e.max_bytes = field<int64_t>(je, "max_bytes", entry, 1, std::numeric_limits<int64_t>::max());
    e.algorithm = field<std::string>(je, "algorithm", entry);
    e.threads = optional_field<int>(je, "threads", entry, 0);
    e.blocks = optional_field<int>(je, "blocks", entry, 0);
    e.bulk = optional_field<int>(je, "bulk", entry, -1);
    e.piece_units = optional_field<int>(je, "piece_units", entry, 0);
    e.time_us = optional_field<double>(je, "time_us", entry, 0.0);
    if (!table_algorithm(e.algorithm))
      throw Error(fmt::format("{}: unknown algorithm '{}' (a table names an algorithm_name() other than auto and "
                              "registered: oneshot, hierarchical, ll128, push, nccl, ...)",
                              entry, ji::excerpt(e.algorithm)));
    if (e.max_bytes <= previous)
      throw Error(
          fmt::format("{}: max_bytes {} not above the previous entry's {}", entry, e.max_bytes, previous));
    if (e.threads < 0 || e.threads > 1024 || e.threads % 32 != 0)
      throw Error(fmt::format("{}: threads {} (0 or a multiple of 32 up to 1024)", entry, e.threads));
    if (e.blocks < 0) throw Error(fmt::format("{}: negative blocks", entry));
    if (e.bulk < -1 || e.bulk > 1) throw Error(fmt::format("{}: bulk must be -1, 0 or 1", entry));
    if (e.piece_units < 0 || e.piece_units % 128 != 0 || (e.piece_units != 0 && e.algorithm != "push"))
      throw Error(fmt::format("{}: piece_units {} (push only, a multiple of 128)", entry, e.piece_units));
    if (e.algorithm == "push" && e.threads > 512)
      throw Error(fmt::format("{}: push threads {} (at most 512)", entry, e.threads));
    previous = e.max_bytes;
    t.entries.push_back(e);
  }
  return t;
}

TuningTable load_tuning_table(const std::string& path) {
  std::ifstream f(path);
  if (!f) throw Error(fmt::format("nvrar: tuning table {}: cannot open the file", path));
  std::stringstream ss;
  ss << f.rdbuf();
  return parse_tuning_table(ss.str(), path);
}

std::string tuning_table_json(const TuningTable& table) { return to_json(table).dump(2) + "\n"; }

void save_tuning_table(const TuningTable& table, const std::string& path) {
  std::ofstream f(path);
  if (!f) throw Error(fmt::format("nvrar: tuning table {}: cannot write the file", path));
  f << tuning_table_json(table);
  if (!f) throw Error(fmt::format("nvrar: tuning table {}: write failed", path));
}

TuningTable merge_equal_neighbours(const TuningTable& table) {
  TuningTable t = table;
  t.entries.clear();
  for (const TuningEntry& e : table.entries) {
    if (!t.entries.empty()) {
      TuningEntry& last = t.entries.back();
      if (last.algorithm == e.algorithm && last.threads == e.threads && last.blocks == e.blocks &&
          last.bulk == e.bulk && last.piece_units == e.piece_units) {
        last.max_bytes = e.max_bytes;
        last.time_us = e.time_us;
        continue;
      }
    }
    t.entries.push_back(e);
  }
  // Trailing NCCL entries are implied by the end of the table.
  while (!t.entries.empty() && t.entries.back().algorithm == "nccl") t.entries.pop_back();
  return t;
}

}  // namespace nvrar::select
