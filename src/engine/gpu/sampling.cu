// Temperature / top-k / top-p sampling of full-vocabulary rows (sampling.h).
//
// Algorithm, per row, one block of 1024 threads (rows beyond the grid loop over blocks), without sorting:
//  1. One pass over the row: the largest logit (block max) and a histogram of the 2^16 order keys of the bf16 logits
//     (sampling_math.h; equal keys are equal logits, so every token of a bin has the same weight). The histogram is
//     the block's slot of the workspace, zeroed first, filled by global atomics.
//  2. Scans over the bins from the largest key down (thread t owns 64 consecutive bins; cub::BlockScan over the
//     threads): counts find the top-k cut (the bin of the k-th token: all tokens of that bin and above survive, as
//     HF keeps ties); count x weight gives the survivors' total; the top-p boundary is the lowest bin whose first
//     token is still kept (its predecessors weigh < p x total), and inside it how many tokens, by index order, stay
//     (a binary search on the same exact comparison).
//  3. The draw: r = a uniform integer below the kept total, from Philox(seed, sequence = row, position); a scan of
//     the kept weight per bin finds the bin where the running sum passes r, and (r - sum before) / weight says which
//     of its tokens (the j-th by index).
//  4. The j-th token of that bin: each thread counts the bin's tokens in its contiguous stretch of the vocabulary,
//     a block scan, and the thread whose stretch holds the j-th walks to it.
// Ranking by key then index is the reference's rank order, and all weights and sums are exact integers, so mask and
// token equal the CPU reference's (engine/sampling_reference.cpp) bit for bit.
// Launch: grid min(rows, 256) x 1024 threads; synchronisation: __syncthreads only (each block owns its rows and its
// histogram); histogram reads go through L2 (__ldcg) since the atomics that wrote them bypass L1.
#include "engine/gpu/sampling.h"

#include <cuda_runtime.h>

#include <algorithm>
#include <climits>

#include <cub/block/block_reduce.cuh>
#include <cub/block/block_scan.cuh>

#include "engine/sampling_math.h"
#include "nvrar/types.h"

namespace nvrar::engine::gpu {

namespace {

namespace sm = nvrar::engine::sampling;

constexpr int kThreads = 1024;
constexpr int kBins = 1 << 16;  // one per bf16 order key
constexpr int kBinsPerThread = kBins / kThreads;
constexpr int64_t kMaxSlots = 256;  // concurrently sampled rows: more than the SMs of any current GPU

__device__ __forceinline__ int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

struct KernelParams {
  float temperature;
  int top_k;
  uint64_t p_fixed;
  uint64_t seed;
};

struct MaxFloat {
  __device__ float operator()(float a, float b) const { return fmaxf(a, b); }
};
struct MinInt {
  __device__ int operator()(int a, int b) const { return a < b ? a : b; }
};
struct MaxInt {
  __device__ int operator()(int a, int b) const { return a > b ? a : b; }
};

using BlockScan = cub::BlockScan<uint64_t, kThreads>;
using ReduceFloat = cub::BlockReduce<float, kThreads>;
using ReduceInt = cub::BlockReduce<int, kThreads>;

struct Shared {
  union {
    BlockScan::TempStorage scan;
    ReduceFloat::TempStorage reduce_float;
    ReduceInt::TempStorage reduce_int;
  } temp;
  float x_max;
  uint32_t cut_key, p_bin, draw_bin, top_bin;
  uint64_t p_count, total, draw_j;
  int lowest;
  int64_t found;
};

// Exclusive prefix of v over the threads in order; total: the sum over all. Ends with a barrier.
__device__ uint64_t exclusive_sum(Shared& s, uint64_t v, uint64_t& total) {
  uint64_t prefix;
  BlockScan(s.temp.scan).ExclusiveSum(v, prefix, total);
  __syncthreads();
  return prefix;
}

// The index (in vocabulary order) of the n-th token (from 0) of `row` whose order key is `key`; vocab if none.
__device__ int64_t nth_with_key(Shared& s, const GatheredLogits& logits, int64_t row, int64_t vocab, uint32_t key,
                                uint64_t n) {
  const int64_t chunk = (vocab + kThreads - 1) / kThreads;
  const int64_t begin = min64(threadIdx.x * chunk, vocab), end = min64(begin + chunk, vocab);
  const auto walk = [&](auto&& visit) {  // tokens [begin, end) in order, shard by shard
    int64_t shard = begin / logits.shard_cols, col = begin - shard * logits.shard_cols;
    for (int64_t v = begin; v < end; ++v) {
      if (!visit(v, logits.data[(shard * logits.rows + row) * logits.shard_cols + col])) return;
      if (++col == logits.shard_cols) {
        col = 0;
        ++shard;
      }
    }
  };
  uint64_t count = 0;
  walk([&](int64_t, uint16_t bits) {
    count += sm::order_key(bits) == key;
    return true;
  });
  if (threadIdx.x == 0) s.found = vocab;
  uint64_t total;
  uint64_t seen = exclusive_sum(s, count, total);
  if (seen <= n && n < seen + count)
    walk([&](int64_t v, uint16_t bits) {
      if (sm::order_key(bits) != key) return true;
      if (seen == n) {
        s.found = v;
        return false;
      }
      ++seen;
      return true;
    });
  __syncthreads();
  const int64_t found = s.found;
  __syncthreads();  // everyone has read it before the next call's thread 0 resets it
  return found;
}

__global__ void __launch_bounds__(kThreads) sample_kernel(GatheredLogits logits, int64_t vocab, KernelParams p,
                                                          const int32_t* positions, const int32_t* position_rows,
                                                          int32_t* tokens, uint32_t* histograms, SamplingTrace trace) {
  __shared__ Shared s;
  uint32_t* hist = histograms + static_cast<int64_t>(blockIdx.x) * kBins;
  const int top_own = kBins - 1 - static_cast<int>(threadIdx.x) * kBinsPerThread;  // this thread's bins: top_own down
  const auto bin_weight = [&](uint32_t b) { return sm::token_weight(sm::key_logit(b), s.x_max, p.temperature); };
  for (int64_t row = blockIdx.x; row < logits.rows; row += gridDim.x) {
    __syncthreads();  // the previous row's readers are done with the histogram
    for (int b = threadIdx.x; b < kBins; b += kThreads) hist[b] = 0;
    __syncthreads();
    // 1. Largest logit and histogram of keys.
    float local_max = -INFINITY;
    for (int shard = 0; shard < logits.shards; ++shard) {
      const bf16_t* src = logits.data + (shard * logits.rows + row) * logits.shard_cols;
      for (int64_t c = threadIdx.x; c < logits.shard_cols; c += kThreads) {
        const uint16_t bits = src[c];
        if (!sm::bf16_is_nan(bits)) local_max = fmaxf(local_max, sm::bf16_to_float(bits));
        atomicAdd(&hist[sm::order_key(bits)], 1u);
      }
    }
    const float block_max = ReduceFloat(s.temp.reduce_float).Reduce(local_max, MaxFloat{});
    if (threadIdx.x == 0) s.x_max = block_max;
    __syncthreads();
    const auto count = [&](int j) { return static_cast<uint64_t>(__ldcg(&hist[top_own - j])); };  // j-th own bin
    // 2a. Top-k cut: the bin of the k-th token in rank order.
    if (threadIdx.x == 0) s.cut_key = 0;
    if (p.top_k > 0 && p.top_k < vocab) {
      uint64_t local = 0, total;
      for (int j = 0; j < kBinsPerThread; ++j) local += count(j);
      uint64_t above = exclusive_sum(s, local, total);
      const uint64_t k = static_cast<uint64_t>(p.top_k);
      if (above < k && k <= above + local)
        for (int j = 0; j < kBinsPerThread; ++j) {
          if (above + count(j) >= k) {
            s.cut_key = static_cast<uint32_t>(top_own - j);
            break;
          }
          above += count(j);
        }
    }
    __syncthreads();
    const uint32_t cut_key = s.cut_key;
    // 2b. The survivors' total, and the highest survivor bin (the first token of the rank order).
    uint64_t local_mass = 0;
    int local_top = -1;
    for (int j = 0; j < kBinsPerThread; ++j) {
      const uint32_t b = static_cast<uint32_t>(top_own - j);
      if (b < cut_key) break;
      if (count(j) == 0) continue;
      if (local_top < 0) local_top = static_cast<int>(b);
      local_mass += count(j) * bin_weight(b);
    }
    const int top_bin = ReduceInt(s.temp.reduce_int).Reduce(local_top, MaxInt{});
    if (threadIdx.x == 0) s.top_bin = static_cast<uint32_t>(top_bin);
    __syncthreads();
    uint64_t survivors_total;
    const uint64_t mass_above_me = exclusive_sum(s, local_mass, survivors_total);
    // 2c. Top-p: the lowest bin whose first token is kept, and how many of its tokens are.
    if (threadIdx.x == 0) {
      s.p_bin = cut_key;
      s.p_count = __ldcg(&hist[cut_key]);
      s.total = survivors_total;
    }
    if (p.p_fixed < sm::kTopPOne) {
      int candidate = -1;
      uint64_t candidate_above = 0, above = mass_above_me;
      for (int j = 0; j < kBinsPerThread; ++j) {
        const uint32_t b = static_cast<uint32_t>(top_own - j);
        if (b < cut_key) break;
        if (count(j) == 0) continue;
        if (!sm::top_p_keeps(above, survivors_total, p.p_fixed)) break;
        candidate = static_cast<int>(b);
        candidate_above = above;
        above += count(j) * bin_weight(b);
      }
      const int block_lowest = ReduceInt(s.temp.reduce_int).Reduce(candidate >= 0 ? candidate : INT_MAX, MinInt{});
      if (threadIdx.x == 0) s.lowest = block_lowest;
      __syncthreads();
      const int lowest = s.lowest;
      if (lowest == INT_MAX) {  // nothing weighs anything: keep the first token only
        if (threadIdx.x == 0) {
          s.p_bin = s.top_bin;
          s.p_count = 1;
          s.total = 0;
        }
      } else if (candidate == lowest) {
        const uint64_t w = bin_weight(static_cast<uint32_t>(candidate));
        uint64_t lo = 1, hi = count(top_own - candidate);  // the first token is kept; find the last one
        while (lo < hi) {
          const uint64_t mid = (lo + hi + 1) / 2;
          if (sm::top_p_keeps(candidate_above + (mid - 1) * w, survivors_total, p.p_fixed))
            lo = mid;
          else
            hi = mid - 1;
        }
        s.p_bin = static_cast<uint32_t>(candidate);
        s.p_count = lo;
        s.total = candidate_above + lo * w;
      }
    }
    __syncthreads();
    const uint32_t p_bin = s.p_bin;
    const uint64_t p_count = s.p_count, kept_total = s.total;
    // 3. The draw: the bin where the running kept weight passes r, and which of its tokens.
    const int32_t input_row = position_rows ? position_rows[row] : static_cast<int32_t>(row);
    const uint32_t position = static_cast<uint32_t>(positions[input_row] + 1);
    if (threadIdx.x == 0) {
      s.draw_bin = s.top_bin;
      s.draw_j = 0;
    }
    if (kept_total > 0) {
      const uint64_t r = sm::draw_below(sm::draw_bits(p.seed, static_cast<uint32_t>(row), position), kept_total);
      const auto kept = [&](int j) {  // the kept weight of own bin j
        const uint32_t b = static_cast<uint32_t>(top_own - j);
        const uint64_t n = count(j);
        return b < p_bin || n == 0 ? uint64_t{0} : (b == p_bin ? p_count : n) * bin_weight(b);
      };
      uint64_t local = 0, total;
      for (int j = 0; j < kBinsPerThread; ++j) local += kept(j);
      uint64_t above = exclusive_sum(s, local, total);
      if (above <= r && r < above + local)
        for (int j = 0; j < kBinsPerThread; ++j) {
          if (r < above + kept(j)) {
            s.draw_bin = static_cast<uint32_t>(top_own - j);
            s.draw_j = (r - above) / bin_weight(static_cast<uint32_t>(top_own - j));
            break;
          }
          above += kept(j);
        }
    }
    __syncthreads();
    // 4. The token, and for tests the mask.
    const int64_t token = nth_with_key(s, logits, row, vocab, s.draw_bin, s.draw_j);
    if (threadIdx.x == 0) tokens[row] = static_cast<int32_t>(token);
    if (trace.keep != nullptr) {
      const int64_t boundary = p_count >= __ldcg(&hist[p_bin]) ? vocab : nth_with_key(s, logits, row, vocab, p_bin, p_count);
      for (int shard = 0; shard < logits.shards; ++shard) {
        const bf16_t* src = logits.data + (shard * logits.rows + row) * logits.shard_cols;
        for (int64_t c = threadIdx.x; c < logits.shard_cols; c += kThreads) {
          const int64_t v = shard * logits.shard_cols + c;
          const uint32_t key = sm::order_key(src[c]);
          trace.keep[row * vocab + v] = key >= cut_key && (key > p_bin || (key == p_bin && v < boundary));
        }
      }
      if (threadIdx.x == 0) trace.total[row] = kept_total;
    }
  }
}

}  // namespace

std::size_t sampling_workspace_bytes(int64_t max_rows) {
  return static_cast<std::size_t>(std::clamp<int64_t>(max_rows, 1, kMaxSlots)) * kBins * sizeof(uint32_t);
}

void sample_rows(const GatheredLogits& logits, const SamplingParams& params, const int32_t* positions,
                 const int32_t* position_rows, int32_t* tokens, void* workspace, int64_t max_rows,
                 cudaStream_t stream, const SamplingTrace* trace) {
  if (!(params.temperature > 0))
    throw Error("nvrar-llm: sample_rows: temperature 0 is greedy (Sampler::greedy), not this kernel");
  if (logits.rows < 1) return;
  const KernelParams p{params.temperature, params.top_k, sm::top_p_fixed(params.top_p), params.seed};
  const int64_t grid = std::min<int64_t>({logits.rows, max_rows, kMaxSlots});
  sample_kernel<<<static_cast<unsigned>(grid), kThreads, 0, stream>>>(logits, logits.vocab(), p, positions,
                                                                      position_rows, tokens,
                                                                      static_cast<uint32_t*>(workspace),
                                                                      trace ? *trace : SamplingTrace{});
}

}  // namespace nvrar::engine::gpu
