// Auto's rules after the table's pick (core/auto_choice.h): capacity and reach fallbacks, and where the registered
// two-shot takes over for registered inputs.
#include "core/auto_choice.h"

#include <gtest/gtest.h>

namespace {

using nvrar::Algorithm;
using nvrar::Choice;
using nvrar::core::CallReach;
using nvrar::core::RegisteredRule;
using nvrar::core::settle_auto_choice;

constexpr int64_t kMiB = int64_t{1} << 20;

CallReach everything() {
  CallReach r;
  r.registered = r.oneshot = r.ll128 = r.push = r.hierarchical = true;
  return r;
}

CallReach plain_pointers() {
  CallReach r = everything();
  r.registered = false;
  return r;
}

Algorithm settle(Algorithm pick, int64_t bytes, const CallReach& reach, RegisteredRule rule = {}) {
  return settle_auto_choice(Choice{pick}, bytes, reach, rule).algorithm;
}

TEST(AutoChoice, KeepsWhatCanRunOnPlainPointers) {
  for (Algorithm a : {Algorithm::kOneShot, Algorithm::kLl128, Algorithm::kPush, Algorithm::kHierarchical,
                      Algorithm::kNccl})
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
  CallReach r = plain_pointers();
  r.oneshot = false;
  EXPECT_EQ(settle(Algorithm::kOneShot, 2 * kMiB, r), Algorithm::kHierarchical);
  r.ll128 = false;  // LL128 off (its area did not fit): the hierarchical two-shot
  EXPECT_EQ(settle(Algorithm::kLl128, 512 * 1024, r), Algorithm::kHierarchical);
  r.ll128_too_big = true;  // LL128 over its capacity: NCCL, not the copy-in hierarchical form
  EXPECT_EQ(settle(Algorithm::kLl128, 64 * kMiB, r), Algorithm::kNccl);
  EXPECT_EQ(settle(Algorithm::kRegistered, 64 * kMiB, r), Algorithm::kHierarchical);
  r.push = false;  // the push two-shot alike: off -> hierarchical, over capacity -> NCCL
  EXPECT_EQ(settle(Algorithm::kPush, 8 * kMiB, r), Algorithm::kHierarchical);
  r.push_too_big = true;
  EXPECT_EQ(settle(Algorithm::kPush, 64 * kMiB, r), Algorithm::kNccl);
  r.hierarchical = false;  // no NVSHMEM, or over Options::max_bytes: NCCL, also after the falls above
  EXPECT_EQ(settle(Algorithm::kHierarchical, 4096, r), Algorithm::kNccl);
  EXPECT_EQ(settle(Algorithm::kOneShot, 4096, r), Algorithm::kNccl);
  EXPECT_EQ(settle(Algorithm::kRegistered, 4096, r), Algorithm::kNccl);
}

TEST(AutoChoice, RegisteredInputsTakeTheZeroCopyTwoShotFromItsThresholds) {
  const RegisteredRule rule{1 * kMiB, 32 * kMiB};
  const CallReach r = everything();
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
  CallReach no = r;
  no.registered = false;
  EXPECT_EQ(settle(Algorithm::kLl128, 64 * kMiB, no, rule), Algorithm::kLl128);
}

}  // namespace
