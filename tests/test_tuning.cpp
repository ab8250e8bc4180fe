// Tuning tables (select/tuning_table.h): parsing and validation with errors naming the field, lookup by size, merging,
// the fingerprint ranks compare, and the cost-model fallback.
#include <gtest/gtest.h>

#include <cstdio>
#include <string>

#include "select/tuning_table.h"
#include "nvrar/types.h"

namespace {

using nvrar::select::TuningTable;

const char* kValid = R"({"format": "nvrar-tuning-1", "card": "NVIDIA H100 80GB HBM3", "created": "2026-11-27",
  "ranks": 4, "nodes": 1, "gpus_per_node": 4,
  "entries": [{"max_bytes": 65536, "algorithm": "oneshot", "threads": 128},
              {"max_bytes": 1048576, "algorithm": "hierarchical", "bulk": 0, "time_us": 9.5},
              {"max_bytes": 4194304, "algorithm": "hierarchical", "bulk": 1, "threads": 512, "blocks": 64}]})";

std::string with(const std::string& from, const std::string& to) {
  std::string s = kValid;
  const auto at = s.find(from);
  EXPECT_NE(at, std::string::npos) << from;
  return s.replace(at, from.size(), to);
}

void expect_error(const std::string& json, const std::string& fragment) {
  try {
    nvrar::select::parse_tuning_table(json, "t.json");
    ADD_FAILURE() << "no error, expected one mentioning '" << fragment << "'";
  } catch (const nvrar::Error& e) {
    EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("t.json"), std::string::npos) << e.what();
  }
}

TEST(Tuning, ParsesAndLooksUpBySize) {
  const TuningTable t = nvrar::select::parse_tuning_table(kValid, "t.json");
  EXPECT_EQ(t.card, "NVIDIA H100 80GB HBM3");
  EXPECT_TRUE(t.matches(4, 1, 4));
  EXPECT_FALSE(t.matches(4, 2, 2));
  ASSERT_EQ(t.entries.size(), 3u);
  EXPECT_EQ(t.lookup(1)->algorithm, "oneshot");
  EXPECT_EQ(t.lookup(1)->threads, 128);
  EXPECT_EQ(t.lookup(65536)->algorithm, "oneshot");
  EXPECT_EQ(t.lookup(65537)->algorithm, "hierarchical");
  EXPECT_EQ(t.lookup(65537)->bulk, 0);
  EXPECT_EQ(t.lookup(4194304)->bulk, 1);
  EXPECT_EQ(t.lookup(4194304)->blocks, 64);
  EXPECT_EQ(t.lookup(4194305), nullptr);  // NCCL
}

TEST(Tuning, RoundTripsThroughJsonAndFile) {
  const TuningTable t = nvrar::select::parse_tuning_table(kValid, "t.json");
  const TuningTable u = nvrar::select::parse_tuning_table(nvrar::select::tuning_table_json(t), "again");
  EXPECT_EQ(t.fingerprint(), u.fingerprint());
  ASSERT_EQ(u.entries.size(), 3u);
  EXPECT_DOUBLE_EQ(u.entries[1].time_us, 9.5);
  const std::string path = testing::TempDir() + "nvrar_tuning_test.json";
  nvrar::select::save_tuning_table(t, path);
  EXPECT_EQ(nvrar::select::load_tuning_table(path).fingerprint(), t.fingerprint());
  std::remove(path.c_str());
  EXPECT_THROW(nvrar::select::load_tuning_table("/nonexistent/dir/t.json"), nvrar::Error);
}

TEST(Tuning, FingerprintSeesDecisionsNotTimes) {
  const TuningTable t = nvrar::select::parse_tuning_table(kValid, "t.json");
  TuningTable u = t;
  u.entries[0].time_us = 123;
  u.created = "another day";
  EXPECT_EQ(t.fingerprint(), u.fingerprint());
  u.entries[0].threads = 256;
  EXPECT_NE(t.fingerprint(), u.fingerprint());
  u = t;
  u.entries[1].max_bytes = 524288;
  EXPECT_NE(t.fingerprint(), u.fingerprint());
}

TEST(Tuning, RejectsBadTablesNamingTheField) {
  expect_error("not json", "not valid JSON");
  expect_error("[1, 2]", "JSON object");
  expect_error(with("nvrar-tuning-1", "nvrar-tuning-0"), "format");
  expect_error(with("\"ranks\": 4", "\"ranks\": 5"), "ranks 5");
  expect_error(with("\"nodes\": 1, ", ""), "'nodes'");
  expect_error(with("\"oneshot\"", "\"fastest\""), "unknown algorithm 'fastest'");
  expect_error(with("\"max_bytes\": 1048576", "\"max_bytes\": 65536"), "not above");
  expect_error(with("\"threads\": 128", "\"threads\": 100"), "threads 100");
  expect_error(with("\"bulk\": 0", "\"bulk\": 2"), "bulk");
  expect_error(with("\"blocks\": 64", "\"blocks\": -1"), "negative blocks");
  expect_error(with("\"threads\": 128", "\"threads\": \"many\""), "wrong type");
}

TEST(Tuning, MergesNeighboursAndDropsTrailingNccl) {
  TuningTable t = nvrar::select::parse_tuning_table(kValid, "t.json");
  nvrar::select::TuningEntry e = t.entries[0];
  e.max_bytes = 100;
  t.entries.insert(t.entries.begin(), e);  // same choice as the next entry
  nvrar::select::TuningEntry n;
  n.algorithm = "nccl";
  n.max_bytes = 1 << 30;
  t.entries.push_back(n);
  const TuningTable m = nvrar::select::merge_equal_neighbours(t);
  ASSERT_EQ(m.entries.size(), 3u);
  EXPECT_EQ(m.entries[0].max_bytes, 65536);
  EXPECT_EQ(m.entries.back().algorithm, "hierarchical");
  // NCCL in the middle stays (a size range where NCCL wins, then NVRAR again).
  t.entries.insert(t.entries.begin() + 2, nvrar::select::TuningEntry{70000, "nccl", 0, 0, -1, 0});
  EXPECT_EQ(nvrar::select::merge_equal_neighbours(t).entries[1].algorithm, "nccl");
}

}  // namespace

namespace {

// Every algorithm a table may name, as nvrar-bench --tune writes them.
TEST(Tuning, AcceptsEveryRuntimeAlgorithm) {
  for (const char* name : {"oneshot", "hierarchical", "ll128", "push", "nccl"}) {
    const TuningTable t = nvrar::select::parse_tuning_table(with("\"oneshot\"", std::string("\"") + name + "\""), "t.json");
    EXPECT_EQ(t.lookup(1)->algorithm, name);
  }
  expect_error(with("\"oneshot\"", "\"registered\""), "unknown algorithm 'registered'");
  const auto spec = nvrar::select::parse_algorithm_spec("ll128:t1024");
  EXPECT_EQ(spec.name, "ll128");
  EXPECT_EQ(spec.threads, 1024);
}

TEST(Tuning, ParsesAlgorithmSpecs) {
  using nvrar::select::parse_algorithm_spec;
  auto a = parse_algorithm_spec("oneshot:t128");
  EXPECT_EQ(a.name, "oneshot");
  EXPECT_EQ(a.threads, 128);
  EXPECT_EQ(a.bulk, -1);
  a = parse_algorithm_spec("hierarchical:bulk:b64");  // "bulk" is an option, not b<blocks>
  EXPECT_EQ(a.name, "hierarchical");
  EXPECT_EQ(a.bulk, 1);
  EXPECT_EQ(a.blocks, 64);
  EXPECT_EQ(parse_algorithm_spec("hierarchical:cells").bulk, 0);
  EXPECT_EQ(parse_algorithm_spec("nccl").name, "nccl");
  EXPECT_THROW(parse_algorithm_spec("oneshot:t100"), nvrar::Error);
  EXPECT_THROW(parse_algorithm_spec("oneshot:tx"), nvrar::Error);
  EXPECT_THROW(parse_algorithm_spec("oneshot:fast"), nvrar::Error);
  EXPECT_THROW(parse_algorithm_spec(":t64"), nvrar::Error);
  a = parse_algorithm_spec("push:t256:p1024");  // p<units>: the push two-shot's piece
  EXPECT_EQ(a.piece_units, 1024);
  EXPECT_EQ(a.threads, 256);
  EXPECT_THROW(parse_algorithm_spec("push:p1000"), nvrar::Error);  // not a multiple of 128
  EXPECT_THROW(parse_algorithm_spec("ll128:p512"), nvrar::Error);  // push only
}

// Entries the push kernel could not launch are refused when the table is read, naming the field.
TEST(Tuning, RefusesPushEntriesItCannotRun) {
  const std::string t128 = "\"threads\": 128";
  expect_error(with(t128, t128 + ", \"piece_units\": 512"), "piece_units 512 (push only");  // a one-shot entry
  auto push_with = [&](const std::string& to) {
    std::string s = with("\"oneshot\"", "\"push\"");
    return s.replace(s.find(t128), t128.size(), to);
  };
  expect_error(push_with("\"threads\": 1024"), "push threads 1024 (at most 512)");
  expect_error(push_with(t128 + ", \"piece_units\": 100"), "piece_units 100");
  expect_error(push_with(t128 + ", \"piece_units\": -128"), "piece_units -128");
  const TuningTable ok = nvrar::select::parse_tuning_table(push_with(t128 + ", \"piece_units\": 1024"), "t.json");
  EXPECT_EQ(ok.entries[0].piece_units, 1024);
}

// A push entry's piece size survives the file, and tables without the field read it as 0 (the default piece).
TEST(Tuning, PieceUnitsRoundTrip) {
  TuningTable t = nvrar::select::parse_tuning_table(with("\"oneshot\"", "\"push\""), "t.json");
  EXPECT_EQ(t.entries[0].piece_units, 0);
  EXPECT_EQ(nvrar::select::tuning_table_json(t).find("piece_units"), std::string::npos);
  t.entries[0].piece_units = 1024;
  const TuningTable back = nvrar::select::parse_tuning_table(nvrar::select::tuning_table_json(t), "back.json");
  EXPECT_EQ(back.entries[0].piece_units, 1024);
  const TuningTable plain = nvrar::select::parse_tuning_table(with("\"oneshot\"", "\"push\""), "t.json");
  EXPECT_NE(back.fingerprint(), plain.fingerprint());
}

}  // namespace

#include <filesystem>

namespace {

// Every table shipped in tuning/ parses, names a card and covers sizes in increasing order.
// Issue 21: hostile tables are refused with the file and the field named, never undefined behaviour or a crash.
TEST(Tuning, HostileNumbersAreRefusedNamingTheField) {
  // 1e30 does not fit int64: a plain float-to-int conversion was undefined behaviour.
  expect_error(with("\"max_bytes\": 65536", "\"max_bytes\": 1e30"),
               "t.json entry 0: field 'max_bytes': 1e+30 is out of range (1 to 9223372036854775807)");
  expect_error(with("\"max_bytes\": 65536", "\"max_bytes\": 65536.5"),
               "t.json entry 0: field 'max_bytes': expected an integer, got 65536.5");
  expect_error(with("\"max_bytes\": 65536", "\"max_bytes\": 0"), "field 'max_bytes': 0 is out of range");
  expect_error(with("\"threads\": 128", "\"threads\": 4294967424"),
               "t.json entry 0: field 'threads': 4294967424 is out of range");
  expect_error(with("\"time_us\": 9.5", "\"time_us\": \"fast\""),
               "t.json entry 1: field 'time_us': wrong type: expected a number, got the string \"fast\"");
  // 1e999 is beyond a double: nlohmann's out_of_range.406 named no file.
  expect_error(with("\"time_us\": 9.5", "\"time_us\": 1e999"),
               "nvrar: tuning table t.json: JSON number '1e999' is out of the range of a double");
  expect_error(with("\"ranks\": 4", "\"ranks\": 4.5"), "field 'ranks': expected an integer, got 4.5");
  expect_error(with("\"card\": \"NVIDIA H100 80GB HBM3\"", "\"card\": 7"),
               "field 'card': wrong type: expected a string, got the number 7");
}

TEST(Tuning, TopologyProductCannotOverflow) {
  // 65537 x 65537 wraps a 32-bit int to 131073: refused, by the range of each and the product in 64 bits.
  std::string t = with("\"ranks\": 4, \"nodes\": 1, \"gpus_per_node\": 4",
                       "\"ranks\": 131073, \"nodes\": 65537, \"gpus_per_node\": 65537");
  expect_error(t, "ranks 131073 != nodes 65537 x gpus_per_node 65537");
  expect_error(with("\"nodes\": 1", "\"nodes\": 4294967297"), "field 'nodes': 4294967297 is out of range (1 to");
  expect_error(with("\"gpus_per_node\": 4", "\"gpus_per_node\": 0"), "field 'gpus_per_node': 0 is out of range");
}

TEST(Tuning, DeepOrMisshapenJsonIsRefused) {
  expect_error(std::string(200000, '['), "nvrar: tuning table t.json: JSON nested deeper than 64 levels");
  std::string deep = "{\"format\": \"nvrar-tuning-1\", \"x\": ";
  for (int i = 0; i < 100000; ++i) deep += "[";
  expect_error(deep, "JSON nested deeper than 64 levels");
  // An entry that is not an object, a wrong-typed value deep inside: described briefly, never dumped.
  expect_error(with("{\"max_bytes\": 65536, \"algorithm\": \"oneshot\", \"threads\": 128}", "[[[1]]]"),
               "t.json entry 0: expected an object, got an array of 1 values");
  expect_error(with("\"threads\": 128", "\"threads\": [[[[[1]]]]]"),
               "field 'threads': wrong type: expected an integer, got an array of 1 values");
}

TEST(Tuning, ShippedTablesAreValid) {
  int tables = 0;
  for (const auto& entry : std::filesystem::directory_iterator(NVRAR_TUNING_DIR)) {
    if (entry.path().extension() != ".json") continue;
    const nvrar::select::TuningTable t = nvrar::select::load_tuning_table(entry.path().string());
    EXPECT_FALSE(t.card.empty()) << entry.path();
    EXPECT_FALSE(t.entries.empty()) << entry.path();
    EXPECT_TRUE(t.matches(t.ranks, t.nodes, t.gpus_per_node));
    ++tables;
  }
  EXPECT_GT(tables, 0);
}

}  // namespace
