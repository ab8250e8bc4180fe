#include "core/auto_choice.h"

namespace nvrar::core {

Choice settle_auto_choice(Choice pick, int64_t bytes, const CallReach& reach, const RegisteredRule& rule) {
  if (pick.algorithm == Algorithm::kTwoShotRegistered && !reach.registered) pick = Choice{Algorithm::kHierarchical};
  if (pick.algorithm == Algorithm::kOneShot && !reach.oneshot) pick = Choice{Algorithm::kHierarchical};
  if (pick.algorithm == Algorithm::kTwoShotLl128 && !reach.ll128)
    pick = Choice{reach.ll128_too_big ? Algorithm::kNccl : Algorithm::kHierarchical};
  if (pick.algorithm == Algorithm::kTwoShotPush && !reach.push)
    pick = Choice{reach.push_too_big ? Algorithm::kNccl : Algorithm::kHierarchical};
  if (pick.algorithm == Algorithm::kHierarchical && !reach.hierarchical) pick = Choice{Algorithm::kNccl};
  const bool nvlink_twoshot = pick.algorithm == Algorithm::kTwoShotLl128 || pick.algorithm == Algorithm::kTwoShotPush;
  if (reach.registered && bytes >= rule.min_bytes && (!nvlink_twoshot || bytes >= rule.over_ll128_bytes))
    pick = Choice{Algorithm::kTwoShotRegistered};
  return pick;
}

}  // namespace nvrar::core
