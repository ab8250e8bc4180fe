// Pearson's chi-square goodness-of-fit test for the sampling tests: counts of draws per token against the exact
// probabilities. Tokens whose expected count is below 5 are pooled into one cell (the usual validity rule); the
// p-value is the upper tail of the chi-square distribution, Q(df / 2, X^2 / 2), from the regularized incomplete
// gamma function (series below a + 1, Lentz's continued fraction above).
#pragma once

#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <vector>

namespace nvrar::test {

// Q(a, x) = Gamma(a, x) / Gamma(a), a > 0, x >= 0.
inline double regularized_gamma_q(double a, double x) {
  if (x <= 0) return 1.0;
  const double log_prefix = a * std::log(x) - x - std::lgamma(a);
  if (x < a + 1) {  // P by its series, Q = 1 - P
    double term = 1.0 / a, sum = term;
    for (int n = 1; n < 100000 && std::fabs(term) > std::fabs(sum) * 1e-16; ++n) {
      term *= x / (a + n);
      sum += term;
    }
    return 1.0 - sum * std::exp(log_prefix);
  }
  constexpr double kTiny = 1e-300;  // Lentz: continued fraction of Q
  double b = x + 1 - a, c = 1 / kTiny, d = 1 / b, h = d;
  for (int i = 1; i < 100000; ++i) {
    const double an = -i * (i - a);
    b += 2;
    d = an * d + b;
    if (std::fabs(d) < kTiny) d = kTiny;
    c = b + an / c;
    if (std::fabs(c) < kTiny) c = kTiny;
    d = 1 / d;
    const double delta = d * c;
    h *= delta;
    if (std::fabs(delta - 1) < 1e-16) break;
  }
  return std::exp(log_prefix) * h;
}

struct ChiSquare {
  double statistic = 0;
  int degrees_of_freedom = 0;
  double p_value = 1;
};

// counts[i] draws of token i out of their sum, against probabilities[i]. A draw of a token of probability 0 gives
// p-value 0.
inline ChiSquare chi_square(const std::vector<int64_t>& counts, const std::vector<double>& probabilities) {
  if (counts.size() != probabilities.size()) throw std::invalid_argument("chi_square: sizes differ");
  double n = 0;
  for (int64_t c : counts) n += static_cast<double>(c);
  ChiSquare out;
  double pooled_expected = 0, pooled_observed = 0;
  int cells = 0;
  for (std::size_t i = 0; i < counts.size(); ++i) {
    const double expected = n * probabilities[i];
    if (probabilities[i] == 0 && counts[i] > 0) {
      out.p_value = 0;
      out.statistic = INFINITY;
      return out;
    }
    if (expected < 5) {
      pooled_expected += expected;
      pooled_observed += static_cast<double>(counts[i]);
      continue;
    }
    const double diff = static_cast<double>(counts[i]) - expected;
    out.statistic += diff * diff / expected;
    ++cells;
  }
  if (pooled_expected > 0) {
    const double diff = pooled_observed - pooled_expected;
    out.statistic += diff * diff / pooled_expected;
    ++cells;
  }
  out.degrees_of_freedom = cells - 1;
  out.p_value = out.degrees_of_freedom > 0 ? regularized_gamma_q(out.degrees_of_freedom / 2.0, out.statistic / 2) : 1;
  return out;
}

}  // namespace nvrar::test
