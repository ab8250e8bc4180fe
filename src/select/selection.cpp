#include "select/selection.h"

#include <algorithm>

#include <fmt/format.h>

namespace nvrar::select {

Choice settle_auto_choice(Choice pick, int64_t bytes, const CallView& view, const RegisteredRule& rule) {
  // Available but not running this call means over its capacity (the one limit of a default-shaped call).
  const auto too_big = [&](Algorithm a) { return view.available(a) && !view.runs(a); };
  switch (pick.algorithm) {
    case Algorithm::kRegistered:
    case Algorithm::kOneShot:
      if (!view.runs(pick.algorithm)) pick = Choice{Algorithm::kHierarchical};
      break;
    case Algorithm::kLl128:
    case Algorithm::kPush:
      if (!view.runs(pick.algorithm))
        pick = Choice{too_big(pick.algorithm) ? Algorithm::kNccl : Algorithm::kHierarchical};
      break;
    default:
      break;
  }
  if (pick.algorithm == Algorithm::kHierarchical && !view.runs(Algorithm::kHierarchical))
    pick = Choice{Algorithm::kNccl};
  const bool nvlink_twoshot = pick.algorithm == Algorithm::kLl128 || pick.algorithm == Algorithm::kPush;
  if (view.runs(Algorithm::kRegistered) && bytes >= rule.min_bytes &&
      (!nvlink_twoshot || bytes >= rule.over_ll128_bytes))
    pick = Choice{Algorithm::kRegistered};
  return pick;
}

Algorithm decide_by_model(const model::Preset& preset, int nodes, bool single_nvlink_domain, int64_t bytes) {
  const double b = static_cast<double>(bytes);
  const model::Choice c = single_nvlink_domain
                              ? model::best_algorithm(preset, nodes, b,
                                                      {model::Algorithm::kOneShot, model::Algorithm::kNvrar,
                                                       model::Algorithm::kNcclRing, model::Algorithm::kNcclTree})
                              : model::best_algorithm(preset, nodes, b);
  switch (c.algorithm) {
    case model::Algorithm::kOneShot:
      return Algorithm::kOneShot;
    case model::Algorithm::kNvrar:
      return Algorithm::kHierarchical;
    default:
      return Algorithm::kNccl;
  }
}

namespace {

model::Preset preset_for(const std::string& name, int gpus_per_node) {
  model::Preset p;
  try {
    p = model::find_preset(name);
  } catch (const Error& e) {
    throw Error(fmt::format("NVRAR_MODEL_PRESET='{}': {}", name, e.what()));
  }
  p.gpus_per_node = gpus_per_node;
  return p;
}

}  // namespace

Policy::Policy(std::optional<TuningTable> table, const std::string& model_preset, int nodes, int gpus_per_node,
               RegisteredRule rule, Algorithm env_algorithm)
    : table_(std::move(table)),
      nodes_(nodes),
      ranks_(nodes * gpus_per_node),
      rule_(rule),
      env_algorithm_(env_algorithm) {
  if (!table_) preset_ = preset_for(model_preset, gpus_per_node);  // only the model path uses (and checks) it
  if (table_)
    for (const TuningEntry& e : table_->entries)
      entries_.push_back(
          {e.max_bytes, Choice{parse_algorithm(e.algorithm), e.threads, e.blocks, e.bulk, e.piece_units}});
}

Choice Policy::pick(int64_t bytes, bool single_nvlink_domain) const {
  if (table_) {
    // Entries are sorted by max_bytes (parse_tuning_table checks it): the first that holds the message.
    const auto it = std::lower_bound(entries_.begin(), entries_.end(), bytes,
                                     [](const Entry& e, int64_t b) { return e.max_bytes < b; });
    return it == entries_.end() ? Choice{Algorithm::kNccl} : it->choice;
  }
  // One rank: the sum is the input, and NCCL's copy beats every kernel of ours (1 x H200: 1.05 vs 1.89 us at 4 KB,
  // 33 vs 106 us at 64 MB; bench/results/2026-12-04-h200-house/main-job).
  if (ranks_ == 1) return Choice{Algorithm::kNccl};
  return Choice{decide_by_model(preset_, nodes_, single_nvlink_domain, bytes)};
}

int64_t Policy::table_max_bytes(Algorithm a) const {
  int64_t most = 0;
  for (const Entry& e : entries_)
    if (e.choice.algorithm == a) most = std::max(most, e.max_bytes);
  return most;
}

Choice select(const Request& request, const Policy& policy, const CallView& view) {
  // 1. The call's own request is strict.
  if (request.call.algorithm != Algorithm::kAuto) {
    if (request.call.algorithm == Algorithm::kNccl) return request.call;
    const std::string why = view.refusal(request.call);
    if (!why.empty()) throw Error(fmt::format("nvrar: rank {} {}: {}", request.rank, request.call_name, why));
    return request.call;
  }
  // 2. A communicator-wide default (Options, else NVRAR_ALGO) where it can run this call.
  Choice c = request.call;  // its launch shape, if any, stays
  c.algorithm = request.options_algorithm != Algorithm::kAuto ? request.options_algorithm : policy.env_algorithm();
  // 3. Auto.
  if (c.algorithm == Algorithm::kAuto || !view.runs(c.algorithm))
    c = settle_auto_choice(policy.pick(request.bytes, view.available(Algorithm::kOneShot)), request.bytes, view,
                           policy.registered_rule());
  // Last, for defaults and auto alike: NVRAR's kernel instead of NCCL where told so.
  if (!request.auto_may_use_nccl && c.algorithm == Algorithm::kNccl && view.runs(Algorithm::kHierarchical))
    c = Choice{Algorithm::kHierarchical};
  return c;
}

}  // namespace nvrar::select
