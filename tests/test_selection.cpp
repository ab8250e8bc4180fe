// The selection module (select/selection.h): precedence (call > Options > NVRAR_ALGO > table > model), auto's
// capacity and reach fallbacks, the registered two-shot's thresholds, auto_may_use_nccl, and the error of every
// explicit request a call cannot run.
#include "select/selection.h"

#include <gtest/gtest.h>

#include <array>
#include <string>

namespace {

using nvrar::Algorithm;
using nvrar::Choice;
using nvrar::select::CallView;
using nvrar::select::Policy;
using nvrar::select::RegisteredRule;
using nvrar::select::Request;
using nvrar::select::settle_auto_choice;
using nvrar::select::TuningEntry;
using nvrar::select::TuningTable;

constexpr int64_t kMiB = int64_t{1} << 20;
constexpr std::array kNvrarAlgorithms{Algorithm::kHierarchical, Algorithm::kOneShot, Algorithm::kRegistered,
                                      Algorithm::kLl128, Algorithm::kPush};

// A communicator's answers, set by hand: which algorithms are set up, which run the call, and their refusals.
class FakeView final : public CallView {
 public:
  bool available(Algorithm a) const override { return a == Algorithm::kNccl || available_[index(a)]; }
  bool runs(Algorithm a) const override { return a == Algorithm::kNccl || runs_[index(a)]; }
  std::string refusal(const Choice& c) const override { return runs(c.algorithm) ? "" : why_[index(c.algorithm)]; }
  FakeView& set(Algorithm a, bool available, bool runs) {
    available_[index(a)] = available;
    runs_[index(a)] = available && runs;
    why_[index(a)] = std::string(nvrar::algorithm_name(a)) + (available ? " over capacity" : " off here");
    return *this;
  }

 private:
  static int index(Algorithm a) { return static_cast<int>(a); }
  std::array<bool, nvrar::select::kAlgorithmCount> available_{}, runs_{};
  std::array<std::string, nvrar::select::kAlgorithmCount> why_{};
};

FakeView everything() {
  FakeView v;
  for (Algorithm a : kNvrarAlgorithms) v.set(a, true, true);
  return v;
}

FakeView plain_pointers() { return everything().set(Algorithm::kRegistered, true, false); }

Algorithm settle(Algorithm pick, int64_t bytes, const FakeView& view, RegisteredRule rule = {}) {
  return settle_auto_choice(Choice{pick}, bytes, view, rule).algorithm;
}

TEST(AutoChoice, KeepsWhatCanRunOnPlainPointers) {
  for (Algorithm a :
       {Algorithm::kOneShot, Algorithm::kLl128, Algorithm::kPush, Algorithm::kHierarchical, Algorithm::kNccl})
    for (int64_t bytes : {int64_t{4096}, 2 * kMiB, 64 * kMiB}) EXPECT_EQ(settle(a, bytes, plain_pointers()), a);
}

TEST(AutoChoice, KeepsTheShapeOfAPickItKeeps) {
  const Choice pick{Algorithm::kLl128, 512, 64, -1};
  const Choice got = settle_auto_choice(pick, 2 * kMiB, plain_pointers(), RegisteredRule{});
  EXPECT_EQ(got.algorithm, Algorithm::kLl128);
  EXPECT_EQ(got.threads, 512);
  EXPECT_EQ(got.blocks, 64);
}

TEST(AutoChoice, FallsBackWhereThePickCannotRun) {
  FakeView r = plain_pointers();
  r.set(Algorithm::kOneShot, true, false);
  EXPECT_EQ(settle(Algorithm::kOneShot, 2 * kMiB, r), Algorithm::kHierarchical);
  r.set(Algorithm::kLl128, false, false);  // LL128 off (its area did not fit): the hierarchical two-shot
  EXPECT_EQ(settle(Algorithm::kLl128, 512 * 1024, r), Algorithm::kHierarchical);
  r.set(Algorithm::kLl128, true, false);  // LL128 over its capacity: NCCL, not the copy-in hierarchical form
  EXPECT_EQ(settle(Algorithm::kLl128, 64 * kMiB, r), Algorithm::kNccl);
  EXPECT_EQ(settle(Algorithm::kRegistered, 64 * kMiB, r), Algorithm::kHierarchical);
  r.set(Algorithm::kPush, false, false);  // the push two-shot alike: off -> hierarchical, over capacity -> NCCL
  EXPECT_EQ(settle(Algorithm::kPush, 8 * kMiB, r), Algorithm::kHierarchical);
  r.set(Algorithm::kPush, true, false);
  EXPECT_EQ(settle(Algorithm::kPush, 64 * kMiB, r), Algorithm::kNccl);
  r.set(Algorithm::kHierarchical, true, false);  // over Options::max_bytes: NCCL, also after the falls above
  EXPECT_EQ(settle(Algorithm::kHierarchical, 4096, r), Algorithm::kNccl);
  EXPECT_EQ(settle(Algorithm::kOneShot, 4096, r), Algorithm::kNccl);
  EXPECT_EQ(settle(Algorithm::kRegistered, 4096, r), Algorithm::kNccl);
  r.set(Algorithm::kHierarchical, false, false);  // no NVSHMEM
  EXPECT_EQ(settle(Algorithm::kHierarchical, 4096, r), Algorithm::kNccl);
}

TEST(AutoChoice, RegisteredInputsTakeTheZeroCopyTwoShotFromItsThresholds) {
  const RegisteredRule rule{1 * kMiB, 32 * kMiB};
  const FakeView r = everything();
  // Below min_bytes the table's pick stands.
  EXPECT_EQ(settle(Algorithm::kOneShot, kMiB - 1, r, rule), Algorithm::kOneShot);
  EXPECT_EQ(settle(Algorithm::kHierarchical, kMiB / 2, r, rule), Algorithm::kHierarchical);
  // From min_bytes it replaces the copy-in forms and NCCL...
  EXPECT_EQ(settle(Algorithm::kHierarchical, kMiB, r, rule), Algorithm::kRegistered);
  EXPECT_EQ(settle(Algorithm::kNccl, 64 * kMiB, r, rule), Algorithm::kRegistered);
  // ... but LL128 only from over_ll128_bytes.
  EXPECT_EQ(settle(Algorithm::kLl128, 16 * kMiB, r, rule), Algorithm::kLl128);
  EXPECT_EQ(settle(Algorithm::kLl128, 32 * kMiB - 2, r, rule), Algorithm::kLl128);
  EXPECT_EQ(settle(Algorithm::kLl128, 32 * kMiB, r, rule), Algorithm::kRegistered);
  // The push two-shot likewise.
  EXPECT_EQ(settle(Algorithm::kPush, 16 * kMiB, r, rule), Algorithm::kPush);
  EXPECT_EQ(settle(Algorithm::kPush, 32 * kMiB, r, rule), Algorithm::kRegistered);
  // A registered input whose call cannot take it (e.g. output too large for the gather room) keeps the table's way.
  FakeView no = r;
  no.set(Algorithm::kRegistered, true, false);
  EXPECT_EQ(settle(Algorithm::kLl128, 64 * kMiB, no, rule), Algorithm::kLl128);
}

// A 1 x 4 table: one-shot to 64 KB, LL128 to 16 MB (threads 512), push to 64 MB, NCCL above.
TuningTable table() {
  TuningTable t;
  t.card = "test card";
  t.ranks = 4;
  t.nodes = 1;
  t.gpus_per_node = 4;
  t.entries = {TuningEntry{64 * 1024, "oneshot", 128, 0, -1, 0}, TuningEntry{16 * kMiB, "ll128", 512, 0, -1, 0},
               TuningEntry{64 * kMiB, "push", 256, 0, -1, 1024}};
  return t;
}

Policy policy(Algorithm env = Algorithm::kAuto, bool with_table = true) {
  return Policy(with_table ? std::optional<TuningTable>(table()) : std::nullopt, "h100-ndr400", 1, 4, RegisteredRule{},
                env);
}

Choice select(const Policy& p, const FakeView& v, int64_t bytes, Choice call = {}, Algorithm options = Algorithm::kAuto,
              bool may_use_nccl = true) {
  return nvrar::select::select(Request{call, options, may_use_nccl, bytes, 3, "allreduce"}, p, v);
}

TEST(Selection, TableEntriesParsedOnceAndLookedUpBySize) {
  const Policy p = policy();
  const FakeView v = plain_pointers();
  EXPECT_EQ(select(p, v, 4096).algorithm, Algorithm::kOneShot);
  EXPECT_EQ(select(p, v, 4096).threads, 128);
  EXPECT_EQ(select(p, v, 64 * 1024).algorithm, Algorithm::kOneShot);
  EXPECT_EQ(select(p, v, 64 * 1024 + 1).algorithm, Algorithm::kLl128);
  const Choice push = select(p, v, 64 * kMiB);
  EXPECT_EQ(push.algorithm, Algorithm::kPush);
  EXPECT_EQ(push.piece_units, 1024);
  EXPECT_EQ(select(p, v, 64 * kMiB + 1).algorithm, Algorithm::kNccl);  // above the last entry
  EXPECT_EQ(p.table_max_bytes(Algorithm::kLl128), 16 * kMiB);
  EXPECT_EQ(p.table_max_bytes(Algorithm::kPush), 64 * kMiB);
  EXPECT_EQ(p.table_max_bytes(Algorithm::kHierarchical), 0);
}

TEST(Selection, CallBeatsOptionsBeatsEnvironmentBeatsTable) {
  const FakeView v = plain_pointers();
  const Policy env_push = policy(Algorithm::kPush);
  // NVRAR_ALGO over the table.
  EXPECT_EQ(select(env_push, v, 4096).algorithm, Algorithm::kPush);
  // Options over NVRAR_ALGO.
  EXPECT_EQ(select(env_push, v, 4096, {}, Algorithm::kHierarchical).algorithm, Algorithm::kHierarchical);
  // The call over both, with its launch shape kept.
  const Choice call{Algorithm::kLl128, 256, 8, -1, 0};
  const Choice got = select(env_push, v, 4096, call, Algorithm::kHierarchical);
  EXPECT_EQ(got.algorithm, Algorithm::kLl128);
  EXPECT_EQ(got.threads, 256);
  EXPECT_EQ(got.blocks, 8);
  // NCCL by name always runs.
  EXPECT_EQ(select(env_push, v, 4096, Choice{Algorithm::kNccl}).algorithm, Algorithm::kNccl);
}

TEST(Selection, DefaultsThatCannotRunTheCallGiveWayToAuto) {
  FakeView v = plain_pointers();
  v.set(Algorithm::kLl128, true, false);  // e.g. NVRAR_ALGO=ll128 and a prefill above its capacity
  EXPECT_EQ(select(policy(Algorithm::kLl128), v, 4096).algorithm, Algorithm::kOneShot);
  // Options' default likewise, and it does not fall to NVRAR_ALGO but to auto.
  EXPECT_EQ(select(policy(Algorithm::kPush), v, 4096, {}, Algorithm::kLl128).algorithm, Algorithm::kOneShot);
  // A registered default with a plain-pointer input.
  EXPECT_EQ(select(policy(Algorithm::kRegistered), v, 4096).algorithm, Algorithm::kOneShot);
}

TEST(Selection, ExplicitRequestsTheCallCannotRunAreErrorsNamingRankCallAndReason) {
  FakeView v = plain_pointers();  // registered: available, but not for a plain-pointer input
  v.set(Algorithm::kOneShot, true, false).set(Algorithm::kLl128, false, false).set(Algorithm::kPush, true, false);
  v.set(Algorithm::kHierarchical, false, false);
  const Policy p = policy();
  for (Algorithm a : kNvrarAlgorithms) {
    try {
      select(p, v, 64 * kMiB, Choice{a});
      ADD_FAILURE() << nvrar::algorithm_name(a) << " was accepted";
    } catch (const nvrar::Error& e) {
      const std::string m = e.what();
      EXPECT_NE(m.find("rank 3 allreduce: "), std::string::npos) << m;
      EXPECT_NE(m.find(nvrar::algorithm_name(a)), std::string::npos) << m;
    }
  }
}

TEST(Selection, AutoMayBeToldToKeepToNvrarKernels) {
  const FakeView v = plain_pointers();
  const Policy p = policy();
  EXPECT_EQ(select(p, v, 128 * kMiB, {}, Algorithm::kAuto, true).algorithm, Algorithm::kNccl);
  EXPECT_EQ(select(p, v, 128 * kMiB, {}, Algorithm::kAuto, false).algorithm, Algorithm::kHierarchical);
  // Where no NVRAR kernel can run the call, NCCL still.
  FakeView none = v;
  none.set(Algorithm::kHierarchical, true, false);
  EXPECT_EQ(select(p, none, 128 * kMiB, {}, Algorithm::kAuto, false).algorithm, Algorithm::kNccl);
}

TEST(Selection, CostModelWhereNoTableApplies) {
  const FakeView v = plain_pointers();
  const Policy p = policy(Algorithm::kAuto, /*with_table=*/false);
  for (int64_t bytes : {int64_t{4096}, kMiB, 64 * kMiB}) {
    const Algorithm a = select(p, v, bytes).algorithm;
    EXPECT_TRUE(a == Algorithm::kOneShot || a == Algorithm::kHierarchical || a == Algorithm::kNccl);
  }
  // Tiny messages on one NVLink domain: one exchange beats two.
  EXPECT_EQ(select(p, v, 4096).algorithm, Algorithm::kOneShot);
  // Across nodes (no NVLink domain): never the one-shot.
  FakeView multi = v;
  multi.set(Algorithm::kOneShot, false, false);
  const Policy four_nodes(std::nullopt, "h100-ndr400", 4, 4, RegisteredRule{}, Algorithm::kAuto);
  for (int64_t bytes : {int64_t{4096}, kMiB, 64 * kMiB})
    EXPECT_NE(select(four_nodes, multi, bytes).algorithm, Algorithm::kOneShot);
}

TEST(Selection, OneRankWithoutATableCopiesThroughNccl) {
  const FakeView v = plain_pointers();
  const Policy one(std::nullopt, "h100-ndr400", 1, 1, RegisteredRule{}, Algorithm::kAuto);
  for (int64_t bytes : {int64_t{4096}, kMiB, 64 * kMiB}) EXPECT_EQ(select(one, v, bytes).algorithm, Algorithm::kNccl);
  // Told to keep to NVRAR's kernels, it does.
  EXPECT_EQ(select(one, v, 4096, {}, Algorithm::kAuto, false).algorithm, Algorithm::kHierarchical);
}

TEST(Selection, ADefaultKeepsTheCallsLaunchShape) {
  const Choice shaped{Algorithm::kAuto, 256, 8, -1, 0};
  const Choice got = select(policy(Algorithm::kLl128), plain_pointers(), 4096, shaped);
  EXPECT_EQ(got.algorithm, Algorithm::kLl128);
  EXPECT_EQ(got.threads, 256);
  EXPECT_EQ(got.blocks, 8);
}

TEST(Selection, KeepingToNvrarKernelsAlsoOverridesANcclDefault) {
  // The engine's --allreduce nvrar with NVRAR_ALGO=nccl: NVRAR's kernel, as the engine always ran.
  const FakeView v = plain_pointers();
  EXPECT_EQ(select(policy(Algorithm::kNccl), v, 4096, {}, Algorithm::kAuto, false).algorithm,
            Algorithm::kHierarchical);
  EXPECT_EQ(select(policy(Algorithm::kNccl), v, 4096, {}, Algorithm::kAuto, true).algorithm, Algorithm::kNccl);
  // An explicit NCCL call stays NCCL.
  EXPECT_EQ(select(policy(), v, 4096, Choice{Algorithm::kNccl}, Algorithm::kAuto, false).algorithm, Algorithm::kNccl);
}

TEST(Selection, AModelPresetIsCheckedOnlyWhereTheModelDecides) {
  EXPECT_NO_THROW(Policy(table(), "no-such-preset", 1, 4, RegisteredRule{}, Algorithm::kAuto));
}

TEST(Selection, UnknownModelPresetIsRefusedNamingTheVariable) {
  try {
    Policy(std::nullopt, "no-such-preset", 1, 4, RegisteredRule{}, Algorithm::kAuto);
    ADD_FAILURE() << "accepted";
  } catch (const nvrar::Error& e) {
    EXPECT_NE(std::string(e.what()).find("NVRAR_MODEL_PRESET"), std::string::npos) << e.what();
  }
}

}  // namespace
