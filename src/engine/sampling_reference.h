// Sampling parameters and the CPU reference of the GPU sampling kernel (gpu/sampling.h): temperature, top-k, top-p
// and a seeded draw over one row of bf16 logits, in the same order as Hugging Face's generate (temperature, then
// top-k, then top-p over what top-k kept):
//  - temperature T > 0 divides the logits (T = 0: greedy, the first index of the largest logit);
//  - top-k (k > 0) keeps every token whose logit is at least the k-th largest (ties at the boundary all kept, as
//    HF's `scores < topk_values[..., -1]`);
//  - top-p (p < 1) ranks the survivors (largest logit first, then smallest index) and keeps each token whose
//    predecessors weigh less than p of the survivors' total (HF's boundary: the token that reaches exactly p is
//    the last kept); the first token is always kept;
//  - the draw: a uniform integer below the kept total from Philox(seed, sequence, position) (sampling_math.h), and
//    the token where the running sum of weights in rank order passes it.
// Weights are the fixed-point integers of sampling_math.h, so this walk over a sorted row gives exactly the kernel's
// masks and tokens (the kernel gets there by histograms instead of a sort). Written plainly: sort, then walk.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace nvrar::engine {

struct SamplingParams {
  float temperature = 0;  // 0: greedy
  int top_k = 0;          // 0: no top-k cut
  float top_p = 1;        // 1: no top-p cut
  uint64_t seed = 0;
};

// Error "<where>: temperature ..." etc. unless 0 <= temperature (finite, at most 1e4), top_k >= 0, 0 < top_p <= 1.
void check_sampling_params(const SamplingParams& params, const std::string& where);

// One row's outcome before the draw: which tokens survive top-k and top-p, their fixed-point weights (0 for the
// others) and the survivors' total. For temperature 0 only `keep` is set: the greedy token.
struct SamplingMask {
  std::vector<uint8_t> keep;
  std::vector<uint64_t> weight;
  uint64_t total = 0;
};

// logits: bf16 bits of one row (at most sampling::kMaxVocab tokens).
SamplingMask sampling_mask(std::span<const uint16_t> logits, const SamplingParams& params);

// The probability of each token under the kernel's distribution (weight / total), for statistical tests.
std::vector<double> sampling_probabilities(std::span<const uint16_t> logits, const SamplingParams& params);

// The token drawn for sequence `sequence` (its index in the batch) at `position` (the position the new token will
// have in its sequence); greedy at temperature 0.
int32_t sample_reference(std::span<const uint16_t> logits, const SamplingParams& params, int64_t sequence,
                         int64_t position);

}  // namespace nvrar::engine
