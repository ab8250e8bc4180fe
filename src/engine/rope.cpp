// RoPE inverse frequencies with Llama-3 scaling (rope.h).
#include "engine/rope.h"

#include <cmath>
#include <numbers>

#include "engine/error.h"

namespace nvrar::engine {

namespace {

double llama3_scaled(double inv_freq, const RopeScaling& s) {
  const double context = double(s.original_max_position_embeddings);
  const double low_freq_wavelen = context / s.low_freq_factor;
  const double high_freq_wavelen = context / s.high_freq_factor;
  const double wavelen = 2.0 * std::numbers::pi / inv_freq;
  if (wavelen < high_freq_wavelen) return inv_freq;
  if (wavelen > low_freq_wavelen) return inv_freq / s.factor;
  const double smooth = (context / wavelen - s.low_freq_factor) / (s.high_freq_factor - s.low_freq_factor);
  return (1.0 - smooth) * inv_freq / s.factor + smooth * inv_freq;
}

}  // namespace

std::vector<double> rope_inv_freq(std::int64_t head_dim, double theta, const RopeScaling& scaling) {
  if (head_dim <= 0 || head_dim % 2 != 0) fail("rope_inv_freq: head_dim {} (must be positive and even)", head_dim);
  if (!(theta > 0)) fail("rope_inv_freq: rope_theta {} (must be positive)", theta);
  std::vector<double> inv_freq(std::size_t(head_dim / 2));
  for (std::size_t i = 0; i < inv_freq.size(); ++i) {
    const double plain = std::pow(theta, -double(2 * i) / double(head_dim));
    inv_freq[i] = scaling.enabled() ? llama3_scaled(plain, scaling) : plain;
  }
  return inv_freq;
}

std::vector<double> rope_inv_freq(const ModelConfig& config) {
  return rope_inv_freq(config.head_dim, config.rope_theta, config.rope_scaling);
}

}  // namespace nvrar::engine
