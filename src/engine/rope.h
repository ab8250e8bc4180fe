// RoPE inverse frequencies with Llama-3's frequency scaling, computed in double on the CPU. The GPU kernels will
// upload this table (as float) and rotate pair i of each head by position x inv_freq[i].
//
// Plain RoPE: inv_freq[i] = theta^(-2i / head_dim), i = 0 .. head_dim/2 - 1.
// Llama-3 scaling (HF rope_type "llama3", transformers' _compute_llama3_parameters), with
// L = original_max_position_embeddings and wavelen = 2 pi / inv_freq:
//   wavelen < L / high_freq_factor  (high frequencies)  unchanged
//   wavelen > L / low_freq_factor   (low frequencies)   inv_freq / factor
//   otherwise (between)             (1 - s) inv_freq / factor + s inv_freq,
//                                   s = (L / wavelen - low_freq_factor) / (high_freq_factor - low_freq_factor)
// The two thresholds join continuously: s = 1 at the high-frequency edge and s = 0 at the low one.
// transformers computes theta^(2i/d) in float32; this table is the double value of the same formula.
#pragma once

#include <cstdint>
#include <vector>

#include "engine/model_config.h"

namespace nvrar::engine {

// head_dim / 2 inverse frequencies; scaled when scaling.enabled(). head_dim must be positive and even, theta > 0.
std::vector<double> rope_inv_freq(std::int64_t head_dim, double theta, const RopeScaling& scaling);
// The table of a (validated) model config: its head_dim, rope_theta and rope_scaling.
std::vector<double> rope_inv_freq(const ModelConfig& config);

}  // namespace nvrar::engine
