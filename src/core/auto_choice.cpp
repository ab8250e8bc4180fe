#include "core/auto_choice.h"

namespace nvrar::core {

Choice settle_auto_choice(Choice pick, int64_t bytes, const CallReach& reach, const RegisteredRule& rule) {
  if (pick.algorithm == Algorithm::kRegistered && !reach.registered) pick = Choice{Algorithm::kHierarchical};
  if (pick.algorithm == Algorithm::kOneShot && !reach.oneshot) pick = Choice{Algorithm::kHierarchical};
  if (pick.algorithm == Algorithm::kLl128 && !reach.ll128)
    pick = Choice{reach.ll128_too_big ? Algorithm::kNccl : Algorithm::kHierarchical};
  if (pick.algorithm == Algorithm::kPush && !reach.push)
    pick = Choice{reach.push_too_big ? Algorithm::kNccl : Algorithm::kHierarchical};
  if (pick.algorithm == Algorithm::kHierarchical && !reach.hierarchical) pick = Choice{Algorithm::kNccl};
  const bool nvlink_twoshot = pick.algorithm == Algorithm::kLl128 || pick.algorithm == Algorithm::kPush;
  if (reach.registered && bytes >= rule.min_bytes && (!nvlink_twoshot || bytes >= rule.over_ll128_bytes))
    pick = Choice{Algorithm::kRegistered};
  return pick;
}

}  // namespace nvrar::core
