// The "allreduce_add_rmsnorm" section (suites.h): Communicator::allreduce_add_rmsnorm (the one-shot's fused
// kernel, all-reduce + residual/RMSNorm kernel for the other algorithms) against its float64 definition, bitwise
// equal across ranks.
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "check/verify.h"
#include "harness.h"
#include "suites.h"

namespace gpu_allreduce_test {

void run_rmsnorm_case(const Ctx& ctx, Section& s, const RmsnormCase& k, uint64_t seed) {
  const std::size_t count = k.rows * k.hidden;
  const std::size_t es = esize(k.dtype);
  const std::size_t bytes = count * es;
  std::vector<std::vector<unsigned char>> xs(ctx.size, std::vector<unsigned char>(bytes));
  std::vector<const void*> ptrs;
  for (int r = 0; r < ctx.size; ++r) {
    nvrar::check::fill_random(xs[r].data(), count, k.dtype, seed, r);
    ptrs.push_back(xs[r].data());
  }
  const nvrar::check::Reference sum = nvrar::check::reference_sum(ptrs, count, k.dtype);
  std::vector<unsigned char> res(bytes), weight(k.hidden * es);
  nvrar::check::fill_random(res.data(), count, k.dtype, seed + 1, 0);
  nvrar::check::fill_random(weight.data(), k.hidden, k.dtype, seed + 2, 0);

  DeviceBuffer d_x(bytes), d_res(bytes), d_w(k.hidden * es), d_out(bytes);
  CHECK_CUDA(cudaMemcpyAsync(d_x.get(), xs[ctx.rank].data(), bytes, cudaMemcpyHostToDevice, ctx.stream));
  CHECK_CUDA(cudaMemcpyAsync(d_res.get(), res.data(), bytes, cudaMemcpyHostToDevice, ctx.stream));
  CHECK_CUDA(cudaMemcpyAsync(d_w.get(), weight.data(), k.hidden * es, cudaMemcpyHostToDevice, ctx.stream));
  CHECK_CUDA(cudaMemsetAsync(d_out.get(), kPoison, bytes, ctx.stream));
  void* x = d_x.get();
  void* out = k.x_is_out ? d_x.get() : d_out.get();
  const float eps = 1e-5f;
  ctx.comm->allreduce_add_rmsnorm(x, d_res.get(), d_w.get(), out, k.rows, k.hidden, eps, k.dtype, ctx.stream,
                                  k.algorithm);
  ctx.comm->synchronize(ctx.stream);
  std::vector<unsigned char> h_out(bytes), h_res(bytes), h_w(k.hidden * es);
  CHECK_CUDA(cudaMemcpy(h_out.data(), out, bytes, cudaMemcpyDeviceToHost));
  CHECK_CUDA(cudaMemcpy(h_res.data(), d_res.get(), bytes, cudaMemcpyDeviceToHost));
  CHECK_CUDA(cudaMemcpy(h_w.data(), d_w.get(), k.hidden * es, cudaMemcpyDeviceToHost));

  CaseRecord rec;
  rec.label = fmt::format("rmsnorm {} rows x {} {} {}{}", k.rows, k.hidden, nvrar::dtype_name(k.dtype),
                          nvrar::algorithm_name(k.algorithm), k.x_is_out ? " x=out" : "");
  const double u = k.dtype == DataType::kBFloat16 ? 1.0 / 256 : k.dtype == DataType::kFloat16 ? 1.0 / 2048 : 0x1p-24;
  // fp32 accumulation of P terms; NCCL's ring (and auto, which may choose it) rounds each of its P partial sums.
  const double acc = ctx.size * 0x1p-24;
  const int roundings = k.algorithm == Algorithm::kNccl || k.algorithm == Algorithm::kAuto
                            ? std::max(ctx.roundings, ctx.size)
                            : ctx.roundings;  // hierarchical: intra-node, fold and doubling roundings
  const double sum_u = roundings * u;
  // Smallest step of the type: results in the subnormal range are only that exact.
  const double tiny = k.dtype == DataType::kFloat16 ? 0x1p-24 : k.dtype == DataType::kBFloat16 ? 0x1p-133 : 0x1p-149;
  if (std::memcmp(h_w.data(), weight.data(), weight.size()) != 0) rec.problems.push_back("the weight was modified");
  int reported = 0;
  for (std::size_t row = 0; row < k.rows && reported < 3; ++row) {
    std::vector<double> r_ref(k.hidden), r_tol(k.hidden);
    double sumsq = 0;
    for (std::size_t j = 0; j < k.hidden; ++j) {
      const std::size_t i = row * k.hidden + j;
      const double rv = nvrar::check::element_as_double(res.data(), i, k.dtype);
      r_ref[j] = rv + sum.sum[i];
      // sum rounded (u |S| + fp32 accumulation), then the residual add rounded.
      r_tol[j] = (sum_u + acc) * sum.abs_sum[i] + u * (std::fabs(rv) + sum.abs_sum[i]) + tiny;
      sumsq += r_ref[j] * r_ref[j];
    }
    const double inv = 1.0 / std::sqrt(sumsq / static_cast<double>(k.hidden) + eps);
    for (std::size_t j = 0; j < k.hidden && reported < 3; ++j) {
      const std::size_t i = row * k.hidden + j;
      const double got_r = nvrar::check::element_as_double(h_res.data(), i, k.dtype);
      const double got_o = nvrar::check::element_as_double(h_out.data(), i, k.dtype);
      const double w = nvrar::check::element_as_double(weight.data(), j, k.dtype);
      const double want_o = w * r_ref[j] * inv;
      // Normalised value: the residual's error scaled, the norm's own error (a few u, relative), and two roundings.
      const double o_tol =
          std::fabs(w) * inv * (r_tol[j] + 4 * u * std::fabs(r_ref[j]) + tiny) + 2 * u * std::fabs(want_o) + tiny;
      if (!(std::fabs(got_r - r_ref[j]) <= r_tol[j])) {
        rec.problems.push_back(
            fmt::format("residual[{}][{}] = {} want {} (tol {:.3g})", row, j, got_r, r_ref[j], r_tol[j]));
        ++reported;
      } else if (!(std::fabs(got_o - want_o) <= o_tol)) {
        rec.problems.push_back(fmt::format("out[{}][{}] = {} want {} (tol {:.3g})", row, j, got_o, want_o, o_tol));
        ++reported;
      }
    }
  }
  rec.hash = fnv1a64(h_out.data(), bytes) ^ (fnv1a64(h_res.data(), bytes) * 31);
  s.cases.push_back(std::move(rec));
}

void run_rmsnorm(const Ctx& ctx, Totals& totals) {
  Section s{"allreduce_add_rmsnorm"};
  std::vector<Algorithm> algos = {Algorithm::kAuto, Algorithm::kNccl};
  if (ctx.hierarchical) algos.push_back(Algorithm::kHierarchical);
  if (ctx.comm->supports(Algorithm::kOneShot)) algos.push_back(Algorithm::kOneShot);
  if (ctx.comm->supports(Algorithm::kLl128)) algos.push_back(Algorithm::kLl128);
  if (ctx.comm->supports(Algorithm::kPush)) algos.push_back(Algorithm::kPush);
  const std::pair<std::size_t, std::size_t> shapes[] = {{1, 8}, {1, 4096}, {3, 1000}, {5, 2056}, {8, 8192}, {32, 8192}};
  uint64_t seed = 6'000'000;
  for (Algorithm a : algos)
    for (DataType dt : kTypes)
      for (const auto& [rows, hidden] : shapes) {
        if ((hidden * esize(dt)) % 16 != 0) continue;
        if (rows * hidden > capacity_of(ctx, a == Algorithm::kNccl ? Algorithm::kAuto : a, dt)) continue;
        for (bool alias : {false, true}) {
          if (alias && rows != 3 && rows != 8) continue;
          run_rmsnorm_case(ctx, s, RmsnormCase{rows, hidden, dt, a, alias}, seed);
          seed += 10;
        }
      }
  finish_section(ctx, s, totals);
}
}  // namespace gpu_allreduce_test
