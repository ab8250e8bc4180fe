// First-use tuning's CPU half (select/first_use_tune.h): NVRAR_TUNE's decisions, the cache (key, folder, atomic
// write, corrupt and foreign files ignored with a warning), the plan within its time budget, fake measurements turned
// into a table, and rank 0's table reaching every rank.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "nvrar/types.h"
#include "select/first_use_tune.h"

namespace {

namespace sel = nvrar::select;
namespace fs = std::filesystem;

sel::TuneKey key() {
  return sel::TuneKey{"NVIDIA H200", 8, 2, 4, 13000, sel::nvrar_version()};
}

sel::TuningTable small_table(const std::string& second = "hierarchical") {
  sel::TuningTable t;
  t.card = "NVIDIA H200";
  t.created = "2026-12-01T00:00:00Z";
  t.source = "test";
  t.ranks = 8;
  t.nodes = 2;
  t.gpus_per_node = 4;
  t.entries.push_back({65536, "hierarchical", 0, 0, 0, 0, 12.5});
  t.entries.push_back({4194304, second, 0, 0, -1, 0, 80});
  return t;
}

// A fresh folder per test, removed afterwards.
class CacheFolder : public testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::path(testing::TempDir()) /
           ("nvrar_tune_" + std::string(testing::UnitTest::GetInstance()->current_test_info()->name()));
    fs::remove_all(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  void write_text(const std::string& path, const std::string& text) {
    fs::create_directories(fs::path(path).parent_path());
    std::ofstream(path) << text;
  }
  fs::path dir_;
};

TEST(FirstUseTune, ParsesTheModes) {
  EXPECT_EQ(sel::parse_tune_mode("off"), sel::TuneMode::kOff);
  EXPECT_EQ(sel::parse_tune_mode("auto"), sel::TuneMode::kAuto);
  EXPECT_EQ(sel::parse_tune_mode("force"), sel::TuneMode::kForce);
  try {
    sel::parse_tune_mode("always");
    ADD_FAILURE() << "no error";
  } catch (const nvrar::Error& e) {
    EXPECT_NE(std::string(e.what()).find("NVRAR_TUNE='always'"), std::string::npos) << e.what();
  }
}

TEST(FirstUseTune, DecisionFollowsTheMode) {
  using A = sel::TableAction;
  using M = sel::TuneMode;
  struct Case {
    M mode;
    bool explicit_file, shipped, cache_hit, can_measure;
    A expected;
  };
  const Case cases[] = {
      // An explicit table wins whatever the mode.
      {M::kOff, true, false, false, true, A::kExplicit},
      {M::kAuto, true, true, true, true, A::kExplicit},
      {M::kForce, true, false, false, true, A::kExplicit},
      // off: never measures.
      {M::kOff, false, false, false, true, A::kCostModel},
      {M::kOff, false, true, false, true, A::kShipped},
      {M::kOff, false, false, true, true, A::kCostModel},
      // auto: shipped, else cache, else measure (where there is something to measure).
      {M::kAuto, false, true, false, true, A::kShipped},
      {M::kAuto, false, true, true, true, A::kShipped},
      {M::kAuto, false, false, true, true, A::kCache},
      {M::kAuto, false, false, false, true, A::kMeasure},
      {M::kAuto, false, false, false, false, A::kCostModel},
      // force: measures over a shipped table and a cached one.
      {M::kForce, false, true, true, true, A::kMeasure},
      {M::kForce, false, false, false, true, A::kMeasure},
      {M::kForce, false, true, false, false, A::kShipped},
      {M::kForce, false, false, false, false, A::kCostModel},
  };
  for (const Case& c : cases) {
    const sel::TableFacts f{c.mode, c.explicit_file, c.shipped, c.cache_hit, c.can_measure};
    EXPECT_EQ(sel::decide_table(f), c.expected)
        << "mode " << static_cast<int>(c.mode) << " explicit " << c.explicit_file << " shipped " << c.shipped
        << " cache " << c.cache_hit << " measurable " << c.can_measure << ": got "
        << sel::table_action_name(sel::decide_table(f));
  }
}

TEST(FirstUseTune, CacheFolderFollowsXdg) {
  std::map<std::string, const char*> env;
  auto lookup = [&env](const char* name) -> const char* {
    const auto it = env.find(name);
    return it == env.end() ? nullptr : it->second;
  };
  EXPECT_EQ(sel::tune_cache_dir(lookup), "");
  env["HOME"] = "/home/u";
  EXPECT_EQ(sel::tune_cache_dir(lookup), "/home/u/.cache/nvrar");
  env["XDG_CACHE_HOME"] = "/scratch/cache";
  EXPECT_EQ(sel::tune_cache_dir(lookup), "/scratch/cache/nvrar");
  env["XDG_CACHE_HOME"] = "relative/cache";  // the XDG specification: ignored
  EXPECT_EQ(sel::tune_cache_dir(lookup), "/home/u/.cache/nvrar");
}

TEST(FirstUseTune, EveryKeyFieldGivesItsOwnFile) {
  const sel::TuneKey base = key();
  const std::string path = sel::tune_cache_path("/c", base);
  EXPECT_EQ(fs::path(path).parent_path(), fs::path("/c"));
  EXPECT_EQ(fs::path(path).filename().string().rfind("NVIDIA_H200-np8-n2-g4-", 0), 0u) << path;
  std::vector<sel::TuneKey> others(6, base);
  others[0].card = "NVIDIA H100 80GB HBM3";
  others[1].ranks = 16;
  others[2].nodes = 4;
  others[3].gpus_per_node = 2;
  others[4].driver_version = 12080;
  others[5].nvrar_version = "9.9.9";
  for (const sel::TuneKey& k : others) EXPECT_NE(sel::tune_cache_path("/c", k), path) << k.describe();
  sel::TuneKey odd = base;
  odd.card = "../../etc/x y";
  EXPECT_EQ(fs::path(sel::tune_cache_path("/c", odd)).parent_path(), fs::path("/c"));  // stays in the folder
}

TEST_F(CacheFolder, WritesAtomicallyAndReadsBack) {
  const std::string path = sel::tune_cache_path(dir_.string(), key());
  EXPECT_FALSE(sel::read_tune_cache(path, key()).table.has_value());
  EXPECT_EQ(sel::read_tune_cache(path, key()).warning, "");  // no file: nothing to warn about
  sel::write_tune_cache(path, key(), small_table());           // creates the folder
  const sel::CacheRead read = sel::read_tune_cache(path, key());
  ASSERT_TRUE(read.table.has_value()) << read.warning;
  EXPECT_EQ(read.warning, "");
  EXPECT_EQ(read.table->fingerprint(), small_table().fingerprint());
  int files = 0;
  for (const auto& entry : fs::directory_iterator(dir_)) {
    ++files;
    EXPECT_EQ(entry.path().string(), path) << "left behind: " << entry.path();
  }
  EXPECT_EQ(files, 1);
  // force overwrites: the new table replaces the old one.
  sel::write_tune_cache(path, key(), small_table("nccl"));
  EXPECT_EQ(sel::read_tune_cache(path, key()).table->fingerprint(), small_table("nccl").fingerprint());
  EXPECT_NE(small_table("nccl").fingerprint(), small_table().fingerprint());
}

TEST_F(CacheFolder, CorruptFilesAreIgnoredWithAWarning) {
  const std::string path = sel::tune_cache_path(dir_.string(), key());
  sel::write_tune_cache(path, key(), small_table());
  std::ifstream in(path);
  const std::string whole((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const std::vector<std::string> bad = {
      whole.substr(0, whole.size() / 2),                                 // cut short
      "",                                                                // empty
      "[1, 2, 3]",                                                       // JSON, not a cache
      R"({"format": "nvrar-tuning-1", "card": "x", "entries": []})",     // a tuning table, not a cache
      R"({"format": "nvrar-tune-cache-1", "key": {"card": "NVIDIA H200"}, "table": {}})",  // key incomplete
  };
  for (const std::string& text : bad) {
    write_text(path, text);
    const sel::CacheRead read = sel::read_tune_cache(path, key());
    EXPECT_FALSE(read.table.has_value()) << text;
    EXPECT_NE(read.warning.find(path), std::string::npos) << read.warning;
    EXPECT_NE(read.warning.find("ignored, measuring again"), std::string::npos) << read.warning;
    EXPECT_EQ(read.warning.find('\n'), std::string::npos) << "one line: " << read.warning;
  }
}

TEST_F(CacheFolder, AFileOfAnotherKeyIsIgnored) {
  const std::string path = sel::tune_cache_path(dir_.string(), key());
  sel::TuneKey older = key();
  older.driver_version = 12080;
  sel::write_tune_cache(path, older, small_table());  // e.g. copied, or written before a driver update
  const sel::CacheRead read = sel::read_tune_cache(path, key());
  EXPECT_FALSE(read.table.has_value());
  EXPECT_NE(read.warning.find("driver 12080"), std::string::npos) << read.warning;
  // A table for another topology under the right key is refused too.
  sel::TuningTable wrong = small_table();
  wrong.nodes = 1;
  wrong.gpus_per_node = 8;
  sel::write_tune_cache(path, key(), wrong);
  EXPECT_FALSE(sel::read_tune_cache(path, key()).table.has_value());
}

TEST(FirstUseTune, CandidatesFollowTheCapabilities) {
  sel::TuneCapabilities caps{true, true, true, true, 1 << 20, 16 << 20, 16 << 20};
  // The bench's full list at 2 MiB on one node: no one-shot above its capacity, every LL128 and push shape, NCCL last.
  EXPECT_EQ(sel::tuning_candidates(caps, 2 << 20, true),
            (std::vector<std::string>{"hierarchical:cells", "hierarchical:bulk", "ll128:t256", "ll128:t512",
                                      "ll128:t1024", "push:t256:p512", "push:t256:p1024", "push:t256:p2048", "nccl"}));
  for (int64_t bytes : {int64_t{4096}, int64_t{1} << 20, int64_t{8} << 20, int64_t{32} << 20}) {
    const auto full = sel::tuning_candidates(caps, bytes, true);
    const auto brief = sel::tuning_candidates(caps, bytes, false);
    EXPECT_LE(brief.size(), full.size());
    if (bytes <= (16 << 20)) EXPECT_LT(brief.size(), full.size()) << bytes;  // fewer launch shapes
    for (const std::string& c : brief)
      EXPECT_NE(std::find(full.begin(), full.end(), c), full.end()) << c << " at " << bytes;
    EXPECT_EQ(brief.back(), "nccl");
    EXPECT_EQ(std::count_if(brief.begin(), brief.end(), [](const std::string& c) { return c.rfind("push", 0) == 0; }),
              bytes >= (1 << 20) && bytes <= (16 << 20) ? 1 : 0)
        << bytes;
  }
  // Several nodes: only the hierarchical kernel (and NCCL) span them.
  const sel::TuneCapabilities multi{false, true, false, false, 0, 0, 0};
  EXPECT_EQ(sel::tuning_candidates(multi, 4096, false),
            (std::vector<std::string>{"hierarchical:cells", "hierarchical:bulk", "nccl"}));
}

TEST(FirstUseTune, PlanFitsTheBudget) {
  const sel::TuneCapabilities caps{true, true, true, true, 1 << 20, 16 << 20, 16 << 20};
  sel::TuneBudget roomy;
  roomy.budget_ms = 1e9;
  const auto all = sel::plan_first_use_tune(caps, roomy);
  ASSERT_EQ(all.size(), 15u);  // 4K, 8K, ..., 64M
  for (std::size_t i = 0; i < all.size(); ++i) EXPECT_EQ(all[i].bytes, int64_t{4096} << i);

  sel::TuneBudget normal;  // the default: a few seconds on one node
  const auto plan = sel::plan_first_use_tune(caps, normal);
  EXPECT_LE(sel::estimate_plan_ms(plan, normal), normal.budget_ms);
  EXPECT_LE(normal.budget_ms, 5000);
  EXPECT_EQ(plan.front().bytes, normal.min_bytes);
  EXPECT_EQ(plan.back().bytes, normal.max_bytes);

  sel::TuneBudget tight = normal;
  tight.budget_ms = 400;
  tight.bandwidth_gbs = 25;  // a network
  const auto thin = sel::plan_first_use_tune(caps, tight);
  EXPECT_LT(thin.size(), all.size());
  EXPECT_EQ(thin.back().bytes, tight.max_bytes);  // where NCCL takes over is always measured
  EXPECT_TRUE(sel::estimate_plan_ms(thin, tight) <= tight.budget_ms || thin.size() == 2);
  for (std::size_t i = 1; i < thin.size(); ++i) EXPECT_GT(thin[i].bytes, thin[i - 1].bytes);

  sel::TuneBudget bad = normal;
  bad.max_bytes = 1024;
  EXPECT_THROW(sel::plan_first_use_tune(caps, bad), nvrar::Error);
}

// Fake times: one-shot wins small, LL128 in the middle, NCCL at the top; a wrong candidate never wins.
TEST(FirstUseTune, MeasurementsBecomeATable) {
  const sel::TuneCapabilities caps{true, true, true, false, 1 << 20, 16 << 20, 0};
  sel::TuneBudget roomy;
  roomy.budget_ms = 1e9;
  roomy.max_bytes = 32 << 20;
  auto fake_us = [](const std::string& c, int64_t bytes) {
    const double mb = static_cast<double>(bytes) / (1 << 20);
    if (c.rfind("oneshot", 0) == 0) return 5 + 60 * mb + (c == "oneshot:t256" ? 0.5 : 0);
    if (c.rfind("ll128", 0) == 0) return 9 + 6 * mb + (c == "ll128:t1024" ? 0 : 0.3);
    if (c.rfind("hierarchical", 0) == 0) return 12 + 8 * mb;
    return 30 + 4 * mb;  // nccl
  };
  std::vector<sel::SizeTimes> sizes;
  for (const sel::TunePoint& p : sel::plan_first_use_tune(caps, roomy)) {
    sel::SizeTimes s{p.bytes, {}};
    for (const std::string& c : p.candidates) s.times.push_back({c, fake_us(c, p.bytes), false});
    if (p.bytes == (64 << 10)) s.times.push_back({"hierarchical:bulk", 0.1, true});  // fastest but wrong
    sizes.push_back(s);
  }
  sel::TuningTable header = small_table();
  header.entries.clear();
  const sel::TuningTable t = sel::table_from_measurements(header, sizes);
  // Crossovers of the fake model: one-shot below ~75 KB, LL128 up to ~10.5 MB, NCCL above (implied by the table's
  // end, as in nvrar-bench --tune's tables).
  ASSERT_EQ(t.entries.size(), 2u) << sel::tuning_table_json(t);
  EXPECT_EQ(t.entries[0].algorithm, "oneshot");
  EXPECT_EQ(t.entries[0].threads, 64);
  EXPECT_EQ(t.entries[0].max_bytes, 64 << 10);
  EXPECT_EQ(t.entries[1].algorithm, "ll128");
  EXPECT_EQ(t.entries[1].threads, 1024);
  EXPECT_EQ(t.entries[1].max_bytes, 8 << 20);
  EXPECT_EQ(t.lookup(16 << 20), nullptr);  // NCCL
  EXPECT_EQ(t.lookup(100 << 10)->algorithm, "ll128");
  EXPECT_EQ(t.card, "NVIDIA H200");
  EXPECT_TRUE(t.matches(8, 2, 4));
  // The table is one the loader accepts.
  EXPECT_EQ(sel::parse_tuning_table(sel::tuning_table_json(t), "t").fingerprint(), t.fingerprint());

  EXPECT_THROW(sel::fastest_entry(4096, {{"nccl", 3, true}}), nvrar::Error);
  EXPECT_THROW(sel::fastest_entry(4096, {}), nvrar::Error);
}

// Ranks simulated one after another: rank 0's broadcast is recorded, the others receive the recording.
TEST(FirstUseTune, EveryRankGetsRankZerosTable) {
  for (bool rank0_has_table : {true, false}) {
    std::vector<std::vector<unsigned char>> sent;
    auto root = [&sent](void* data, std::size_t bytes) {
      const auto* p = static_cast<const unsigned char*>(data);
      sent.emplace_back(p, p + bytes);
    };
    std::optional<sel::TuningTable> mine;
    if (rank0_has_table) mine = small_table();
    const auto at_root = sel::agree_on_table(0, mine, root);
    for (int rank = 1; rank < 4; ++rank) {
      std::size_t call = 0;
      auto receiver = [&](void* data, std::size_t bytes) {
        ASSERT_LT(call, sent.size());
        ASSERT_EQ(sent[call].size(), bytes);
        std::copy(sent[call].begin(), sent[call].end(), static_cast<unsigned char*>(data));
        ++call;
      };
      // Each rank's own view differs (another table, or none): rank 0's wins.
      std::optional<sel::TuningTable> own;
      if (rank % 2 == 1) own = small_table("nccl");
      const auto got = sel::agree_on_table(rank, own, receiver);
      EXPECT_EQ(call, sent.size());
      ASSERT_EQ(got.has_value(), rank0_has_table);
      if (got) {
        EXPECT_EQ(got->fingerprint(), small_table().fingerprint());
        EXPECT_EQ(sel::tuning_table_json(*got), sel::tuning_table_json(*at_root));  // times too
      }
    }
  }
}

// The whole first-use path with fake measurements: no table -> measure -> cached -> the next start uses the cache;
// force measures again; off uses none.
TEST_F(CacheFolder, FirstUseThenCacheHit) {
  const std::string path = sel::tune_cache_path(dir_.string(), key());
  auto facts = [&](sel::TuneMode mode) {
    const bool hit = mode == sel::TuneMode::kAuto && sel::read_tune_cache(path, key()).table.has_value();
    return sel::TableFacts{mode, false, false, hit, true};
  };
  EXPECT_EQ(sel::decide_table(facts(sel::TuneMode::kAuto)), sel::TableAction::kMeasure);
  sel::write_tune_cache(path, key(), small_table());
  EXPECT_EQ(sel::decide_table(facts(sel::TuneMode::kAuto)), sel::TableAction::kCache);
  EXPECT_EQ(sel::decide_table(facts(sel::TuneMode::kForce)), sel::TableAction::kMeasure);
  EXPECT_EQ(sel::decide_table(facts(sel::TuneMode::kOff)), sel::TableAction::kCostModel);
  write_text(path, "{ not json");
  EXPECT_EQ(sel::decide_table(facts(sel::TuneMode::kAuto)), sel::TableAction::kMeasure);
}

}  // namespace
