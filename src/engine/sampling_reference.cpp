// The CPU reference of GPU sampling (sampling_reference.h): sort the row, then walk it. Compiled with
// -ffp-contract=off (CMakeLists.txt) so that sampling_math.h's double arithmetic rounds as on the GPU.
#include "engine/sampling_reference.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "engine/error.h"
#include "engine/sampling_math.h"

namespace nvrar::engine {

namespace {

namespace sm = sampling;

void check_row(std::span<const uint16_t> logits) {
  if (logits.empty() || static_cast<int64_t>(logits.size()) > sm::kMaxVocab)
    fail("sampling: a row of {} logits (1 to {} supported)", logits.size(), sm::kMaxVocab);
}

int32_t greedy(std::span<const uint16_t> logits) {
  int32_t best = 0;
  float best_value = -INFINITY;
  for (std::size_t i = 0; i < logits.size(); ++i) {
    const float x = sm::bf16_to_float(logits[i]);
    if (x > best_value) {  // strictly: the first index of a tie, NaN never
      best_value = x;
      best = static_cast<int32_t>(i);
    }
  }
  return best;
}

// Token indices in rank order: larger key first, then smaller index.
std::vector<int32_t> rank_order(std::span<const uint16_t> logits) {
  std::vector<int32_t> order(logits.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) {
    return sm::order_key(logits[a]) > sm::order_key(logits[b]);
  });
  return order;
}

}  // namespace

void check_sampling_params(const SamplingParams& p, const std::string& where) {
  if (!(p.temperature >= 0.0f && p.temperature <= 1e4f))
    throw Error(fmt::format("{}: temperature {} outside [0, 10000] (0: greedy)", where, p.temperature));
  if (p.top_k < 0) throw Error(fmt::format("{}: top-k {} is negative (0: no top-k cut)", where, p.top_k));
  if (!(p.top_p > 0.0f && p.top_p <= 1.0f))
    throw Error(fmt::format("{}: top-p {} outside (0, 1] (1: no top-p cut)", where, p.top_p));
}

SamplingMask sampling_mask(std::span<const uint16_t> logits, const SamplingParams& params) {
  check_row(logits);
  const int64_t vocab = static_cast<int64_t>(logits.size());
  SamplingMask mask;
  mask.keep.assign(logits.size(), 0);
  mask.weight.assign(logits.size(), 0);
  if (params.temperature == 0.0f) {
    mask.keep[greedy(logits)] = 1;
    return mask;
  }
  const std::vector<int32_t> order = rank_order(logits);
  float x_max = -INFINITY;
  for (const uint16_t bits : logits)
    if (!sm::bf16_is_nan(bits)) x_max = std::max(x_max, sm::bf16_to_float(bits));
  // Top-k: every token whose key reaches the k-th token's.
  const uint32_t cut_key =
      params.top_k > 0 && params.top_k < vocab ? sm::order_key(logits[order[params.top_k - 1]]) : 0;
  uint64_t survivors_total = 0;
  for (int32_t i : order) {
    if (sm::order_key(logits[i]) < cut_key) break;
    mask.keep[i] = 1;
    mask.weight[i] = sm::token_weight(sm::bf16_to_float(logits[i]), x_max, params.temperature);
    survivors_total += mask.weight[i];
  }
  // Top-p over the survivors, in rank order; the first token stays whatever the weights.
  const uint64_t p_fixed = sm::top_p_fixed(params.top_p);
  if (p_fixed < sm::kTopPOne) {
    uint64_t above = 0;
    bool first = true;
    for (int32_t i : order) {
      if (!mask.keep[i]) break;
      if (!first && !sm::top_p_keeps(above, survivors_total, p_fixed)) {
        mask.keep[i] = 0;
        mask.weight[i] = 0;
      }
      above += mask.weight[i];
      first = false;
    }
  }
  for (std::size_t i = 0; i < logits.size(); ++i) mask.total += mask.weight[i];
  return mask;
}

std::vector<double> sampling_probabilities(std::span<const uint16_t> logits, const SamplingParams& params) {
  const SamplingMask mask = sampling_mask(logits, params);
  std::vector<double> p(logits.size(), 0.0);
  if (params.temperature == 0.0f || mask.total == 0) {  // one token certain: the greedy or the first-ranked one
    p[params.temperature == 0.0f ? greedy(logits) : rank_order(logits)[0]] = 1.0;
    return p;
  }
  for (std::size_t i = 0; i < p.size(); ++i)
    p[i] = static_cast<double>(mask.weight[i]) / static_cast<double>(mask.total);
  return p;
}

int32_t sample_reference(std::span<const uint16_t> logits, const SamplingParams& params, int64_t sequence,
                         int64_t position) {
  if (params.temperature == 0.0f) {
    check_row(logits);
    return greedy(logits);
  }
  const SamplingMask mask = sampling_mask(logits, params);
  const std::vector<int32_t> order = rank_order(logits);
  if (mask.total == 0) return order[0];
  const uint64_t r = sm::draw_below(
      sm::draw_bits(params.seed, static_cast<uint32_t>(sequence), static_cast<uint32_t>(position)), mask.total);
  uint64_t above = 0;
  for (int32_t i : order) {
    if (r < above + mask.weight[i]) return i;
    above += mask.weight[i];
  }
  fail("sampling: internal error: draw {} not below the total {}", r, mask.total);
}

}  // namespace nvrar::engine
