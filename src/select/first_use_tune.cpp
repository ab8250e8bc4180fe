// First-use tuning, the CPU half (first_use_tune.h): the decision, the cache, the plan, measurements to a table,
// and rank 0's table for every rank.
//
// Cache file (JSON): {"format": "nvrar-tune-cache-1", "key": {"card", "ranks", "nodes", "gpus_per_node",
// "driver_version", "nvrar_version"}, "table": <a tuning table, tuning_table.h>}.
#include "select/first_use_tune.h"

#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "core/json_input.h"
#include "nvrar/types.h"

#ifndef NVRAR_VERSION_STRING
#define NVRAR_VERSION_STRING "unknown"
#endif

namespace nvrar::select {

namespace {

constexpr const char* kCacheFormat = "nvrar-tune-cache-1";
namespace ji = nvrar::json_input;

// 64-bit FNV-1a of the text: the published offset basis and prime.
uint64_t fnv1a(const std::string& text) {
  uint64_t h = 0xCBF29CE484222325ull;
  for (unsigned char c : text) {
    h ^= c;
    h *= 0x100000001B3ull;
  }
  return h;
}

nlohmann::json key_json(const TuneKey& k) {
  return {{"card", k.card},         {"ranks", k.ranks},
          {"nodes", k.nodes},       {"gpus_per_node", k.gpus_per_node},
          {"driver_version", k.driver_version}, {"nvrar_version", k.nvrar_version}};
}

TuneKey key_from_json(const nlohmann::json& j, const std::string& where) {
  if (!j.is_object()) throw Error(fmt::format("{}: 'key' is not an object", where));
  auto at = [&](const char* name) -> const nlohmann::json& {
    const auto it = j.find(name);
    if (it == j.end()) throw Error(fmt::format("{}: key has no field '{}'", where, name));
    return *it;
  };
  TuneKey k;
  k.card = ji::to_string(at("card"), where, "key.card");
  k.ranks = ji::to_integer<int>(at("ranks"), where, "key.ranks", 1, 1 << 20);
  k.nodes = ji::to_integer<int>(at("nodes"), where, "key.nodes", 1, 1 << 20);
  k.gpus_per_node = ji::to_integer<int>(at("gpus_per_node"), where, "key.gpus_per_node", 1, 1 << 20);
  k.driver_version = ji::to_integer<int>(at("driver_version"), where, "key.driver_version", 0, 1 << 30);
  k.nvrar_version = ji::to_string(at("nvrar_version"), where, "key.nvrar_version");
  return k;
}

}  // namespace

TuneMode parse_tune_mode(const std::string& text) {
  if (text == "off") return TuneMode::kOff;
  if (text == "auto" || text.empty()) return TuneMode::kAuto;
  if (text == "force") return TuneMode::kForce;
  throw Error(fmt::format("nvrar: NVRAR_TUNE='{}' is not one of off, auto, force", text));
}

const char* nvrar_version() { return NVRAR_VERSION_STRING; }

std::string TuneKey::describe() const {
  return fmt::format("{}, {} ranks = {} x {}, driver {}, NVRAR {}", card, ranks, nodes, gpus_per_node, driver_version,
                     nvrar_version);
}

std::string tune_cache_dir(const std::function<const char*(const char*)>& getenv_fn) {
  const char* xdg = getenv_fn("XDG_CACHE_HOME");
  // The XDG base directory specification: a relative path in XDG_CACHE_HOME is invalid and must be ignored.
  if (xdg != nullptr && xdg[0] == '/') return (std::filesystem::path(xdg) / "nvrar").string();
  const char* home = getenv_fn("HOME");
  if (home != nullptr && home[0] != '\0') return (std::filesystem::path(home) / ".cache" / "nvrar").string();
  return {};
}

std::string tune_cache_path(const std::string& dir, const TuneKey& key) {
  std::string card = key.card.empty() ? std::string("card") : key.card;
  for (char& c : card)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-')) c = '_';
  const std::string name = fmt::format("{}-np{}-n{}-g{}-{:016x}.json", card, key.ranks, key.nodes, key.gpus_per_node,
                                       fnv1a(key_json(key).dump()));
  return (std::filesystem::path(dir) / name).string();
}

CacheRead read_tune_cache(const std::string& path, const TuneKey& key) {
  CacheRead out;
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) return out;
  const std::string where = fmt::format("nvrar: tuning cache {}", path);
  try {
    std::ifstream file(path);
    if (!file) throw Error(fmt::format("{}: cannot be read", where));
    std::stringstream text;
    text << file.rdbuf();
    const nlohmann::json j = ji::parse(text.str(), where, "not JSON");
    if (!j.is_object() || !j.contains("format") || j["format"] != kCacheFormat)
      throw Error(fmt::format("{}: not an NVRAR tuning cache (no \"format\": \"{}\")", where, kCacheFormat));
    if (!j.contains("key") || !j.contains("table")) throw Error(fmt::format("{}: no 'key' or no 'table'", where));
    const TuneKey found = key_from_json(j["key"], where);
    if (!(found == key))
      throw Error(fmt::format("{}: measured for {}, not for {}", where, found.describe(), key.describe()));
    TuningTable t = parse_tuning_table(j["table"].dump(), path);
    if (!t.matches(key.ranks, key.nodes, key.gpus_per_node) || t.card != key.card)
      throw Error(fmt::format("{}: its table is for {} ranks = {} x {} of {}", where, t.ranks, t.nodes,
                              t.gpus_per_node, t.card));
    out.table = std::move(t);
  } catch (const std::exception& e) {
    out.warning = fmt::format("{}; ignored, measuring again", e.what());
  }
  return out;
}

void write_tune_cache(const std::string& path, const TuneKey& key, const TuningTable& table) {
  const std::filesystem::path target(path);
  std::error_code ec;
  if (target.has_parent_path()) std::filesystem::create_directories(target.parent_path(), ec);
  if (ec)
    throw Error(fmt::format("nvrar: tuning cache: cannot create the folder {} ({})", target.parent_path().string(),
                            ec.message()));
  nlohmann::json j;
  j["format"] = kCacheFormat;
  j["key"] = key_json(key);
  j["table"] = nlohmann::json::parse(tuning_table_json(table));
  // A name of this process: two processes writing the same key at once each rename a whole file of their own.
  const std::string temp = fmt::format("{}.tmp.{}", path, static_cast<long>(getpid()));
  {
    std::ofstream file(temp, std::ios::trunc);
    file << j.dump(2) << '\n';
    file.close();
    if (!file) {
      std::remove(temp.c_str());
      throw Error(fmt::format("nvrar: tuning cache: cannot write {}", temp));
    }
  }
  if (std::rename(temp.c_str(), path.c_str()) != 0) {
    const std::string why = std::strerror(errno);
    std::remove(temp.c_str());
    throw Error(fmt::format("nvrar: tuning cache: cannot rename {} to {} ({})", temp, path, why));
  }
}

const char* table_action_name(TableAction a) {
  switch (a) {
    case TableAction::kExplicit:
      return "explicit";
    case TableAction::kShipped:
      return "shipped";
    case TableAction::kCache:
      return "cache";
    case TableAction::kMeasure:
      return "measure";
    case TableAction::kCostModel:
      return "cost-model";
  }
  return "?";
}

TableAction decide_table(const TableFacts& f) {
  if (f.explicit_file) return TableAction::kExplicit;
  const TableAction without = f.shipped ? TableAction::kShipped : TableAction::kCostModel;
  switch (f.mode) {
    case TuneMode::kOff:
      return without;
    case TuneMode::kForce:
      return f.can_measure ? TableAction::kMeasure : without;
    case TuneMode::kAuto:
      if (f.shipped) return TableAction::kShipped;
      if (f.cache_hit) return TableAction::kCache;
      return f.can_measure ? TableAction::kMeasure : TableAction::kCostModel;
  }
  return without;
}

std::vector<std::string> tuning_candidates(const TuneCapabilities& caps, int64_t bytes, bool full) {
  std::vector<std::string> c;
  auto add = [&c](std::initializer_list<const char*> shapes) {
    for (const char* s : shapes) c.emplace_back(s);
  };
  if (caps.oneshot && bytes <= caps.oneshot_max_bytes) {
    if (full)
      add({"oneshot:t64", "oneshot:t128", "oneshot:t256", "oneshot:t512"});
    else
      add({"oneshot:t64", "oneshot:t256"});
  }
  if (caps.hierarchical) add({"hierarchical:cells", "hierarchical:bulk"});
  if (caps.ll128 && bytes <= caps.ll128_max_bytes) {
    if (full)
      add({"ll128:t256", "ll128:t512", "ll128:t1024"});
    else
      add({"ll128:t256", "ll128:t1024"});
  }
  // The push two-shot is a bandwidth form: below 1 MiB its flag round trips lose to LL128 (not worth the tuner's time).
  if (caps.push && bytes >= (int64_t{1} << 20) && bytes <= caps.push_max_bytes) {
    if (full)
      add({"push:t256:p512", "push:t256:p1024", "push:t256:p2048"});
    else
      add({"push:t256:p1024"});
  }
  c.emplace_back("nccl");
  return c;
}

double estimate_measurement_ms(const TuneBudget& b, int64_t bytes) {
  const double call_us = b.latency_us + static_cast<double>(bytes) / (b.bandwidth_gbs * 1e3);  // 1 GB/s = 1e3 B/us
  return b.fixed_ms + b.calls * call_us / 1000.0;
}

double estimate_plan_ms(const std::vector<TunePoint>& plan, const TuneBudget& b) {
  double ms = 0;
  for (const TunePoint& p : plan) ms += static_cast<double>(p.candidates.size()) * estimate_measurement_ms(b, p.bytes);
  return ms;
}

std::vector<TunePoint> plan_first_use_tune(const TuneCapabilities& caps, const TuneBudget& b) {
  if (b.min_bytes < 1 || b.max_bytes < b.min_bytes)
    throw Error(fmt::format("nvrar: first-use tune: sizes {}..{} bytes are not a range", b.min_bytes, b.max_bytes));
  auto plan_with = [&](int64_t factor) {
    std::vector<TunePoint> plan;
    for (int64_t bytes = b.min_bytes;; bytes *= factor) {
      plan.push_back({bytes, tuning_candidates(caps, bytes, false)});
      if (bytes > b.max_bytes / factor) break;
    }
    if (plan.back().bytes != b.max_bytes) plan.push_back({b.max_bytes, tuning_candidates(caps, b.max_bytes, false)});
    return plan;
  };
  for (int64_t factor = 2;; factor *= 2) {
    std::vector<TunePoint> plan = plan_with(factor);
    if (estimate_plan_ms(plan, b) <= b.budget_ms || plan.size() <= 2) return plan;
  }
}

TuningEntry fastest_entry(int64_t bytes, const std::vector<CandidateTime>& times) {
  const CandidateTime* best = nullptr;
  for (const CandidateTime& t : times)
    if (!t.wrong && (best == nullptr || t.time_us < best->time_us)) best = &t;
  if (best == nullptr)
    throw Error(fmt::format("nvrar: tuning: every candidate at {} bytes was wrong or none was measured", bytes));
  const AlgorithmSpec spec = parse_algorithm_spec(best->candidate);
  TuningEntry e;
  e.max_bytes = bytes;
  e.algorithm = spec.name;
  e.threads = spec.threads;
  e.blocks = spec.blocks;
  e.bulk = spec.bulk;
  e.piece_units = spec.piece_units;
  e.time_us = best->time_us;
  return e;
}

TuningTable table_from_measurements(const TuningTable& header, const std::vector<SizeTimes>& sizes) {
  TuningTable t = header;
  t.entries.clear();
  for (const SizeTimes& s : sizes) t.entries.push_back(fastest_entry(s.bytes, s.times));
  std::sort(t.entries.begin(), t.entries.end(),
            [](const TuningEntry& a, const TuningEntry& b) { return a.max_bytes < b.max_bytes; });
  return merge_equal_neighbours(t);
}

std::optional<TuningTable> agree_on_table(int rank, const std::optional<TuningTable>& table,
                                          const BroadcastFn& broadcast) {
  std::string text = rank == 0 && table ? tuning_table_json(*table) : std::string();
  uint64_t length = text.size();
  broadcast(&length, sizeof length);
  if (length == 0) return std::nullopt;
  text.resize(length);
  broadcast(text.data(), length);
  // Rank 0 parses its own text too, so every rank holds the same values (times included) after the round trip.
  return parse_tuning_table(text, "rank 0's tuning table");
}

}  // namespace nvrar::select
