// The persistent decode kernel (engine/gpu/decode_megakernel.h) against a CPU reference of the same step, stage by
// stage: a one-layer model leaves every intermediate in its buffers (q/k/v and the new cache rows, the attention
// output, SwiGLU's output, the residual stream, the logits), and each is checked against the CPU's computation from
// the kernel's own previous stage (float64 sums, transformers' bf16 roundings), so a fault shows where it is. Then a
// three-layer model: repeated launches and a CUDA graph's replays give the same bits (the grid barrier and the
// attention's counters reset themselves), and the logits follow a CPU forward of all layers.
#include <gtest/gtest.h>

#include <cuda_runtime_api.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "engine/gpu/decode_megakernel.h"
#include "engine/gpu/decode_megakernel_share.h"
#include "engine_gpu_test_support.h"
#include "nvrar/types.h"

namespace nvrar::engine::gpu {
namespace {

using test_support::bf;
using test_support::download;
using test_support::fl;
using test_support::random_bf16;
using test_support::upload;
using Bits = std::vector<uint16_t>;

struct Shape {
  int rows, layers, hidden, q_heads, kv_heads, head_dim, inter;
  int64_t vocab;
  std::vector<int> lengths;  // keys each row attends to (its new token at lengths - 1)
  int64_t max_seq;
};

struct HostLayer {
  Bits qkv, o, gate_up, down, ln_in, ln_post;
};

// The model, its inputs and the device copies.
struct Case {
  Shape s;
  std::vector<HostLayer> layers;
  Bits final_norm, lm_head, h0;
  std::vector<Bits> cache_k, cache_v;  // per layer [rows][kv_heads][max_seq][head_dim], random before the new rows
  std::vector<int32_t> positions, seq, lengths;
  std::vector<float> inv_freq;
  int64_t q_cols() const { return int64_t{s.q_heads} * s.head_dim; }
  int64_t qkv_cols() const { return q_cols() + 2LL * s.kv_heads * s.head_dim; }

  explicit Case(const Shape& shape, uint64_t seed) : s(shape) {
    const int64_t H = s.hidden;
    for (int l = 0; l < s.layers; ++l) {
      const uint64_t b = seed + 100 * l;
      layers.push_back(HostLayer{random_bf16(qkv_cols() * H, b + 1, 0.08f), random_bf16(H * q_cols(), b + 2, 0.06f),
                                 random_bf16(2 * s.inter * H, b + 3, 0.08f), random_bf16(H * s.inter, b + 4, 0.05f),
                                 random_bf16(H, b + 5, 0.2f), random_bf16(H, b + 6, 0.2f)});
      for (auto& v : layers.back().ln_in) v = bf(1.0f + fl(v));
      for (auto& v : layers.back().ln_post) v = bf(1.0f + fl(v));
      const int64_t cache = int64_t{s.rows} * s.kv_heads * s.max_seq * s.head_dim;
      cache_k.push_back(random_bf16(cache, b + 7, 1.5f));
      cache_v.push_back(random_bf16(cache, b + 8, 1.0f));
    }
    final_norm = random_bf16(H, seed + 91, 0.2f);
    for (auto& v : final_norm) v = bf(1.0f + fl(v));
    lm_head = random_bf16(s.vocab * H, seed + 92, 0.08f);
    h0 = random_bf16(s.rows * H, seed + 93, 1.0f);
    for (int t = 0; t < s.rows; ++t) {
      lengths.push_back(s.lengths[t]);
      positions.push_back(s.lengths[t] - 1);
      seq.push_back(s.rows - 1 - t);  // rows and cache slots in opposite orders
    }
    for (int i = 0; i < s.head_dim / 2; ++i)
      inv_freq.push_back(static_cast<float>(1.0 / std::pow(500000.0, 2.0 * i / s.head_dim)));
  }
  int64_t cache_row(int t, int kv, int position) const {
    return ((int64_t{seq[t]} * s.kv_heads + kv) * s.max_seq + position) * s.head_dim;
  }
};

// CPU pieces, with the engine's roundings.
Bits rmsnorm(const Bits& h, const Bits& w, int rows, int64_t H, float eps) {
  Bits out(h.size());
  for (int r = 0; r < rows; ++r) {
    float sumsq = 0;
    for (int64_t j = 0; j < H; ++j) sumsq += fl(h[r * H + j]) * fl(h[r * H + j]);
    const float inv = 1.0f / std::sqrt(sumsq / static_cast<float>(H) + eps);
    for (int64_t j = 0; j < H; ++j) out[r * H + j] = bf(fl(w[j]) * fl(bf(fl(h[r * H + j]) * inv)));
  }
  return out;
}
std::vector<double> linear(const Bits& x, const Bits& w, int rows, int64_t n, int64_t k) {
  std::vector<double> y(rows * n);
  for (int r = 0; r < rows; ++r)
    for (int64_t j = 0; j < n; ++j) {
      double acc = 0;
      for (int64_t i = 0; i < k; ++i) acc += double(fl(x[r * k + i])) * fl(w[j * k + i]);
      y[r * n + j] = acc;
    }
  return y;
}
void rope(float x1, float x2, int position, float inv_freq, uint16_t& y1, uint16_t& y2) {
  const float angle = static_cast<float>(position) * inv_freq;
  const float c = fl(bf(std::cos(angle))), s = fl(bf(std::sin(angle)));
  y1 = bf(fl(bf(x1 * c)) + fl(bf(-x2 * s)));
  y2 = bf(fl(bf(x2 * c)) + fl(bf(x1 * s)));
}
uint16_t swiglu(float g, float u) { return bf(fl(bf(g / (1.0f + std::exp(-g)))) * u); }

// q/k/v of the layer from x (rows x H): the rotated q and k and v, bf16, [rows][qkv_cols].
Bits qkv_rope(const Case& c, const HostLayer& l, const Bits& x) {
  const int64_t n = c.qkv_cols(), half = c.s.head_dim / 2;
  const std::vector<double> y = linear(x, l.qkv, c.s.rows, n, c.s.hidden);
  Bits out(y.size());
  for (int t = 0; t < c.s.rows; ++t)
    for (int64_t head = 0; head < n / c.s.head_dim; ++head)
      for (int64_t e = 0; e < half; ++e) {
        const int64_t i1 = t * n + head * c.s.head_dim + e, i2 = i1 + half;
        const float a = fl(bf(float(y[i1]))), b = fl(bf(float(y[i2])));
        if (head < c.s.q_heads + c.s.kv_heads) {
          rope(a, b, c.positions[t], c.inv_freq[e], out[i1], out[i2]);
        } else {
          out[i1] = bf(a);
          out[i2] = bf(b);
        }
      }
  return out;
}

// Attention of q (from qkv, [rows][qkv_cols]) over a cache, float64 softmax, output bf16 [rows][q_cols].
std::vector<double> attention(const Case& c, const Bits& qkv, const Bits& ck, const Bits& cv) {
  const int D = c.s.head_dim, G = c.s.q_heads / c.s.kv_heads;
  std::vector<double> out(int64_t{c.s.rows} * c.q_cols());
  for (int t = 0; t < c.s.rows; ++t)
    for (int h = 0; h < c.s.q_heads; ++h) {
      const int kv = h / G, len = c.lengths[t];
      std::vector<double> sc(len);
      double mx = -1e300;
      for (int p = 0; p < len; ++p) {
        double d = 0;
        for (int e = 0; e < D; ++e)
          d += double(fl(qkv[t * c.qkv_cols() + h * D + e])) * fl(ck[c.cache_row(t, kv, p) + e]);
        sc[p] = d / std::sqrt(double(D));
        mx = std::max(mx, sc[p]);
      }
      double sum = 0;
      for (double& v : sc) sum += (v = std::exp(v - mx));
      for (int e = 0; e < D; ++e) {
        double acc = 0;
        for (int p = 0; p < len; ++p) acc += sc[p] * fl(cv[c.cache_row(t, kv, p) + e]);
        out[t * c.q_cols() + h * D + e] = acc / sum;
      }
    }
  return out;
}

// h + bf16(y), rounded.
Bits residual(const Bits& h, const std::vector<double>& y) {
  Bits out(h.size());
  for (std::size_t i = 0; i < h.size(); ++i) out[i] = bf(fl(h[i]) + fl(bf(float(y[i]))));
  return out;
}
Bits swiglu_rows(const std::vector<double>& gu, int rows, int64_t inter) {
  Bits out(rows * inter);
  for (int r = 0; r < rows; ++r)
    for (int64_t p = 0; p < inter; ++p)
      out[r * inter + p] = swiglu(fl(bf(float(gu[r * 2 * inter + p]))), fl(bf(float(gu[r * 2 * inter + inter + p]))));
  return out;
}

// max |got - want| over max(|want|) plus the fraction of elements off by more than 2 bf16 ulps of their value.
struct Diff {
  double worst = 0, scale = 0;
  int64_t off = 0, count = 0;
};
template <typename Want>
Diff compare(const Bits& got, const Want& want) {
  Diff d;
  for (std::size_t i = 0; i < got.size(); ++i) {
    const double w = double(want[i]), e = std::fabs(fl(got[i]) - w);
    d.worst = std::max(d.worst, e);
    d.scale = std::max(d.scale, std::fabs(w));
    d.off += e > std::fabs(w) / 64 + 1e-3 ? 1 : 0;
    ++d.count;
  }
  return d;
}
std::vector<double> as_double(const Bits& b) {
  std::vector<double> v(b.size());
  for (std::size_t i = 0; i < b.size(); ++i) v[i] = fl(b[i]);
  return v;
}

// Device copies and the kernel's arguments.
struct DeviceCase {
  std::vector<void*> owned;
  MegakernelArgs a;
  template <typename T>
  T* up(const std::vector<T>& v) {
    T* d = upload(v);
    owned.push_back(d);
    return d;
  }
  template <typename T>
  T* zeros(int64_t n) {
    void* d = nullptr;
    EXPECT_EQ(cudaMalloc(&d, n * sizeof(T) + 16), cudaSuccess);
    EXPECT_EQ(cudaMemset(d, 0, n * sizeof(T) + 16), cudaSuccess);
    owned.push_back(d);
    return static_cast<T*>(d);
  }
  explicit DeviceCase(const Case& c) {
    const Shape& s = c.s;
    a.rows = s.rows;
    a.num_layers = s.layers;
    a.hidden = s.hidden;
    a.q_heads = s.q_heads;
    a.kv_heads = s.kv_heads;
    a.head_dim = s.head_dim;
    a.inter = s.inter;
    a.vocab_cols = s.vocab;
    a.max_seq = s.max_seq;
    a.max_len = s.max_seq;
    a.eps = 1e-5f;
    for (int l = 0; l < s.layers; ++l) {
      const HostLayer& hl = c.layers[l];
      a.layers[l] = MegakernelLayer{up(hl.qkv),     up(hl.o),          up(hl.gate_up),    up(hl.down),
                                    up(hl.ln_in),   up(hl.ln_post),    up(c.cache_k[l]), up(c.cache_v[l])};
    }
    a.final_norm = up(c.final_norm);
    a.lm_head = up(c.lm_head);
    a.h = up(c.h0);
    a.qkv = zeros<bf16_t>(s.rows * c.qkv_cols());
    a.attn = zeros<bf16_t>(s.rows * c.q_cols());
    a.act = zeros<bf16_t>(int64_t{s.rows} * s.inter);
    a.logits = zeros<bf16_t>(s.rows * s.vocab);
    a.positions = up(c.positions);
    a.seq = up(c.seq);
    a.lengths = up(c.lengths);
    a.inv_freq = up(c.inv_freq);
    a.workspace_bytes =
        decode_megakernel_workspace_bytes(s.q_heads, s.kv_heads, s.head_dim, s.hidden, s.inter, s.vocab);
    a.workspace = zeros<char>(a.workspace_bytes);
  }
  ~DeviceCase() {
    for (void* p : owned) cudaFree(p);
  }
};

bool refused(const Shape& s) {
  const std::string why =
      decode_megakernel_refusal(s.rows, s.layers, s.hidden, s.q_heads, s.kv_heads, s.head_dim, s.inter, s.vocab);
  if (!why.empty()) ADD_FAILURE() << "refused: " << why;
  return !why.empty();
}

// One layer, every stage against the CPU's computation from the kernel's previous stage.
void check_one_layer(const Shape& shape) {
  SCOPED_TRACE("rows " + std::to_string(shape.rows) + ", head_dim " + std::to_string(shape.head_dim) + ", " +
               std::to_string(shape.q_heads) + " q heads / " + std::to_string(shape.kv_heads) + " kv heads");
  if (refused(shape)) return;
  const Case c(shape, 7000 + shape.rows * 10 + shape.head_dim);
  DeviceCase d(c);
  decode_megakernel(d.a, nullptr);
  ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  const Shape& s = c.s;
  const int64_t H = s.hidden;
  const HostLayer& l = c.layers[0];
  const Bits qkv = download(d.a.qkv, s.rows * c.qkv_cols());
  const Bits ck = download(d.a.layers[0].cache_k, c.cache_k[0].size());
  const Bits cv = download(d.a.layers[0].cache_v, c.cache_v[0].size());
  const Bits attn = download(d.a.attn, s.rows * c.q_cols());
  const Bits act = download(d.a.act, int64_t{s.rows} * s.inter);
  const Bits h = download(d.a.h, s.rows * H);
  const Bits logits = download(d.a.logits, s.rows * s.vocab);

  // q/k/v and the cache: the new rows hold k and v; every other row is untouched.
  const Bits want_qkv = qkv_rope(c, l, rmsnorm(c.h0, l.ln_in, s.rows, H, 1e-5f));
  Diff q = compare(qkv, as_double(want_qkv));
  EXPECT_LE(q.off, q.count / 100) << "q/k/v: " << q.off << " of " << q.count << " elements off, worst " << q.worst;
  Bits want_k = c.cache_k[0], want_v = c.cache_v[0];
  for (int t = 0; t < s.rows; ++t)
    for (int kv = 0; kv < s.kv_heads; ++kv)
      for (int e = 0; e < s.head_dim; ++e) {
        const int64_t at = c.cache_row(t, kv, c.positions[t]) + e;
        want_k[at] = qkv[t * c.qkv_cols() + c.q_cols() + kv * s.head_dim + e];
        want_v[at] = qkv[t * c.qkv_cols() + c.q_cols() + (s.kv_heads + kv) * s.head_dim + e];
      }
  EXPECT_EQ(ck, want_k) << "the K cache: the new rows are the rotated k of qkv, the rest untouched";
  EXPECT_EQ(cv, want_v) << "the V cache";

  // Attention over the kernel's own q and cache.
  Diff at = compare(attn, attention(c, qkv, ck, cv));
  EXPECT_LE(at.worst, at.scale / 64) << "attention: worst " << at.worst << " of " << at.scale;
  EXPECT_LE(at.off, at.count / 100) << "attention: " << at.off << " of " << at.count << " off";

  // o_proj + residual, norm, gate/up + SwiGLU: against act.
  const Bits h1 = residual(c.h0, linear(attn, l.o, s.rows, H, c.q_cols()));
  const Bits want_act = swiglu_rows(linear(rmsnorm(h1, l.ln_post, s.rows, H, 1e-5f), l.gate_up, s.rows,
                                           2 * s.inter, H), s.rows, s.inter);
  Diff ac = compare(act, as_double(want_act));
  EXPECT_LE(ac.worst, ac.scale / 32) << "SwiGLU output: worst " << ac.worst << " of " << ac.scale;
  EXPECT_LE(ac.off, ac.count / 50) << "SwiGLU output: " << ac.off << " of " << ac.count << " off";

  // down + residual from the kernel's act (h1 as the CPU has it), then the logits from the kernel's h.
  Diff hd = compare(h, as_double(residual(h1, linear(act, l.down, s.rows, H, s.inter))));
  EXPECT_LE(hd.off, hd.count / 50) << "residual stream: " << hd.off << " of " << hd.count << " off";
  const std::vector<double> want_logits =
      linear(rmsnorm(h, c.final_norm, s.rows, H, 1e-5f), c.lm_head, s.rows, s.vocab, H);
  Diff lg = compare(logits, want_logits);
  EXPECT_LE(lg.off, lg.count / 100) << "logits: " << lg.off << " of " << lg.count << " off, worst " << lg.worst;
}

TEST(DecodeMegakernelGpu, OneLayerStagesMatchCpu) {
  REQUIRE_GPU();
  // hidden 512, q_cols 512, intermediate 1024, a vocabulary of 272 (17 units of 16); lengths 1 to 1024 of 1024
  // keys: one split, several, and a row whose last split is short.
  check_one_layer({1, 1, 512, 4, 1, 128, 1024, 272, {300}, 1024});
  check_one_layer({3, 1, 512, 4, 1, 128, 1024, 272, {1, 37, 700}, 1024});
  check_one_layer({8, 1, 512, 8, 1, 64, 1024, 272, {5, 64, 65, 129, 250, 511, 512, 1000}, 1024});
  check_one_layer({4, 1, 512, 8, 4, 64, 1536, 272, {33, 1, 900, 257}, 1024});
  check_one_layer({2, 1, 512, 4, 4, 128, 1024, 272, {1024, 17}, 1024});
  // hidden 1024 and intermediate 1536: units of 2 and 3 chunks, split between blocks (their sums combined).
  check_one_layer({3, 1, 1024, 8, 2, 128, 1536, 1040, {90, 1, 513}, 1024});
}

TEST(DecodeMegakernelGpu, LayersRepeatsAndGraphReplaysAgree) {
  REQUIRE_GPU();
  const Shape s{5, 3, 512, 4, 1, 128, 1024, 272, {40, 1, 333, 600, 129}, 1024};
  if (refused(s)) return;
  const Case c(s, 4242);
  // The CPU forward through the three layers (the kernel's appends change only rows the step attends to last).
  Bits h = c.h0;
  std::vector<Bits> ck = c.cache_k, cv = c.cache_v;
  for (int li = 0; li < s.layers; ++li) {
    const HostLayer& l = c.layers[li];
    const Bits qkv = qkv_rope(c, l, rmsnorm(h, l.ln_in, s.rows, s.hidden, 1e-5f));
    for (int t = 0; t < s.rows; ++t)
      for (int kv = 0; kv < s.kv_heads; ++kv)
        for (int e = 0; e < s.head_dim; ++e) {
          const int64_t at = c.cache_row(t, kv, c.positions[t]) + e;
          ck[li][at] = qkv[t * c.qkv_cols() + c.q_cols() + kv * s.head_dim + e];
          cv[li][at] = qkv[t * c.qkv_cols() + c.q_cols() + (s.kv_heads + kv) * s.head_dim + e];
        }
    const std::vector<double> att = attention(c, qkv, ck[li], cv[li]);
    Bits attn(att.size());
    for (std::size_t i = 0; i < att.size(); ++i) attn[i] = bf(float(att[i]));
    h = residual(h, linear(attn, l.o, s.rows, s.hidden, c.q_cols()));
    const Bits act = swiglu_rows(linear(rmsnorm(h, l.ln_post, s.rows, s.hidden, 1e-5f), l.gate_up, s.rows,
                                        2 * s.inter, s.hidden), s.rows, s.inter);
    h = residual(h, linear(act, l.down, s.rows, s.hidden, s.inter));
  }
  const std::vector<double> want =
      linear(rmsnorm(h, c.final_norm, s.rows, s.hidden, 1e-5f), c.lm_head, s.rows, s.vocab, s.hidden);

  // Each run starts from the same residual stream (the kernel overwrites it) and rewrites the same cache rows.
  DeviceCase d(c);
  const int64_t hbytes = int64_t{s.rows} * s.hidden * 2;
  bf16_t* h0 = d.up(c.h0);
  std::vector<Bits> runs;
  for (int i = 0; i < 3; ++i) {
    ASSERT_EQ(cudaMemcpy(d.a.h, h0, hbytes, cudaMemcpyDeviceToDevice), cudaSuccess);
    decode_megakernel(d.a, nullptr);
    runs.push_back(download(d.a.logits, s.rows * s.vocab));
  }
  cudaStream_t stream = nullptr;
  ASSERT_EQ(cudaStreamCreate(&stream), cudaSuccess);
  cudaGraph_t graph = nullptr;
  cudaGraphExec_t exec = nullptr;
  ASSERT_EQ(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal), cudaSuccess);
  cudaMemcpyAsync(d.a.h, h0, hbytes, cudaMemcpyDeviceToDevice, stream);
  decode_megakernel(d.a, stream);
  ASSERT_EQ(cudaStreamEndCapture(stream, &graph), cudaSuccess);
  ASSERT_EQ(cudaGraphInstantiate(&exec, graph, 0), cudaSuccess);
  for (int i = 0; i < 2; ++i) {
    ASSERT_EQ(cudaGraphLaunch(exec, stream), cudaSuccess);
    ASSERT_EQ(cudaStreamSynchronize(stream), cudaSuccess);
    runs.push_back(download(d.a.logits, s.rows * s.vocab));
  }
  cudaGraphExecDestroy(exec);
  cudaGraphDestroy(graph);
  cudaStreamDestroy(stream);
  for (std::size_t i = 1; i < runs.size(); ++i) EXPECT_EQ(runs[i], runs[0]) << "run " << i << " differs from run 0";
  Diff lg = compare(runs[0], want);
  EXPECT_LE(lg.worst, lg.scale / 16) << "logits after 3 layers: worst " << lg.worst << " of " << lg.scale;
  EXPECT_LE(lg.off, lg.count / 4) << "logits after 3 layers: " << lg.off << " of " << lg.count << " off";
}

// The split of a GEMM phase over the blocks (CPU): every chunk in exactly one block's segments, shares within one
// chunk of each other, the partial units first, and for every unit split between blocks a distinct partial-sum slot
// per block, found again from the unit alone (owner_of, split_slot) as the combining block finds it.
TEST(DecodeMegakernelShare, EveryChunkOnceAndSplitUnitsFound) {
  struct Case {
    int64_t units, chunks, blocks;
  };
  // 8B on 132 SMs (q/k/v, o, gate/up, down, lm_head), on 78 and 144, tiny phases with fewer chunks than blocks.
  const Case cases[] = {{384, 8, 132}, {256, 8, 132}, {1792, 8, 132}, {256, 28, 132}, {8016, 8, 132},
                        {256, 28, 78},  {384, 8, 144}, {32, 1, 132},   {32, 2, 132},   {17, 3, 132},
                        {5, 7, 3},      {1, 56, 132},  {1000, 1, 7}};
  for (const Case& c : cases) {
    SCOPED_TRACE(std::to_string(c.units) + " units x " + std::to_string(c.chunks) + " chunks over " +
                 std::to_string(c.blocks) + " blocks");
    const int64_t T = c.units * c.chunks;
    std::vector<int> seen(T, 0);
    std::vector<std::vector<int64_t>> touching(c.units);
    int64_t smallest = T, largest = 0;
    for (int64_t b = 0; b < c.blocks; ++b) {
      const mega::Share sh = mega::share_of(c.units, c.chunks, c.blocks, b);
      int64_t size = 0;
      std::vector<int64_t> units_here;
      for (int i = 0; i < sh.segments; ++i) {
        ASSERT_LT(sh.first(i), sh.last(i));
        if (i + 1 < sh.segments)  // only the last segment may hold more than one unit
          ASSERT_EQ(sh.first(i) / c.chunks, (sh.last(i) - 1) / c.chunks);
        for (int64_t x = sh.first(i); x < sh.last(i); ++x) {
          ++seen[x];
          ++size;
          ASSERT_EQ(mega::owner_of(c.units, c.chunks, c.blocks, x), b);
          const int64_t u = x / c.chunks;
          if (std::find(units_here.begin(), units_here.end(), u) == units_here.end()) units_here.push_back(u);
        }
      }
      for (int64_t u : units_here) touching[u].push_back(b);
      smallest = std::min(smallest, size);
      largest = std::max(largest, size);
    }
    EXPECT_LE(largest - smallest, 1) << "shares of unequal size";
    for (int64_t x = 0; x < T; ++x) ASSERT_EQ(seen[x], 1) << "chunk " << x;
    // Split units: the blocks touching them are owner_of's range, each with its own slot.
    std::vector<std::vector<int>> slot_unit(c.blocks, std::vector<int>(2, -1));
    for (int64_t u = 0; u < c.units; ++u) {
      const int64_t lo = mega::owner_of(c.units, c.chunks, c.blocks, u * c.chunks);
      const int64_t hi = mega::owner_of(c.units, c.chunks, c.blocks, u * c.chunks + c.chunks - 1);
      std::vector<int64_t> owners;
      for (int64_t o = lo; o <= hi; ++o)
        if (mega::share_start(c.units, c.chunks, c.blocks, o) < mega::share_start(c.units, c.chunks, c.blocks, o + 1))
          owners.push_back(o);
      ASSERT_EQ(owners, touching[u]) << "unit " << u;
      if (owners.size() < 2) continue;
      for (int64_t o : owners) {
        int& slot = slot_unit[o][mega::split_slot(c.units, c.chunks, c.blocks, o, u)];
        ASSERT_EQ(slot, -1) << "block " << o << " holds two split units in one slot";
        slot = static_cast<int>(u);
      }
    }
  }
}

// One workspace, steps of 8 rows then of 1 (one KV head and 2048 keys: the most attention splits): the 1-row step gives
// the bits it gives on a fresh workspace (the workspace's layout does not depend on the step's rows).
TEST(DecodeMegakernelGpu, SmallerStepAfterLargerOnOneWorkspace) {
  REQUIRE_GPU();
  const Shape big{8, 1, 1024, 8, 1, 128, 1536, 272, {2048, 1500, 1, 64, 2000, 700, 1024, 33}, 2048};
  const Shape small{1, 1, 1024, 8, 1, 128, 1536, 272, {1999}, 2048};
  if (refused(big) || refused(small)) return;
  const Case cb(big, 515), cs(small, 516);
  DeviceCase db(cb), ds(cs), fresh(cs);
  decode_megakernel(fresh.a, nullptr);
  const Bits want = download(fresh.a.logits, small.vocab);
  decode_megakernel(db.a, nullptr);
  ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  ds.a.workspace = db.a.workspace;  // the same shape: the same workspace size
  decode_megakernel(ds.a, nullptr);
  EXPECT_EQ(download(ds.a.logits, small.vocab), want);
}

TEST(DecodeMegakernelGpu, RefusesWhatItCannotRun) {
  EXPECT_NE(decode_megakernel_refusal(9, 32, 4096, 32, 8, 128, 14336, 128256), "");  // rows
  EXPECT_NE(decode_megakernel_refusal(1, 32, 4096, 32, 8, 96, 14336, 128256), "");   // head_dim
  EXPECT_NE(decode_megakernel_refusal(1, 32, 4096, 32, 3, 128, 14336, 128256), "");  // 32 / 3 heads
  EXPECT_NE(decode_megakernel_refusal(1, 32, 4000, 32, 8, 128, 14336, 128256), "");  // hidden
  EXPECT_NE(decode_megakernel_refusal(1, 32, 4096, 32, 8, 128, 14336, 128250), "");  // vocabulary shard
  EXPECT_NE(decode_megakernel_refusal(8, 32, 8192, 64, 8, 128, 28672, 128256), "");  // 8 rows of 8192
  if (!test_support::have_gpu()) GTEST_SKIP() << "no CUDA device (the shape checks above ran)";
  EXPECT_EQ(decode_megakernel_refusal(8, 32, 4096, 32, 8, 128, 14336, 128256), "");  // Llama-3.1-8B at batch 8
  MegakernelArgs a;
  a.rows = 1;
  a.num_layers = 1;
  a.hidden = 512;
  a.q_heads = 4;
  a.kv_heads = 1;
  a.head_dim = 128;
  a.inter = 1024;
  a.vocab_cols = 272;
  EXPECT_THROW(decode_megakernel(a, nullptr), Error);  // no workspace
}

}  // namespace
}  // namespace nvrar::engine::gpu
