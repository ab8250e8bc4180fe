// The persistent decode step (decode_megakernel.h): every layer of a TP 1 decode step, the final norm and the lm_head
// in one launch.
//
// Purpose: a decode step at batch 1-8 streams the weights once (16 GB for Llama-3.1-8B) and little else. Launched as
//   ~7 kernels per layer, HBM idles at every boundary (a grid's ramp and drain, and the small kernels between the
//   GEMMs): ~3-4 us per GEMM beyond its bytes, ~0.45 ms of an H200's 4.3 ms step (docs/perf-notes.md). Here one block
//   per SM walks its share of every weight matrix of the step in one continuous stream, so the loads for the next
//   phase are in flight while the block waits for the others at a phase boundary.
// Algorithm: the step is a sequence of phases; every phase but the first starts at a grid barrier.
//   per layer: q/k/v GEMM on rmsnorm(h) (+ RoPE + KV append) | attention | o_proj (h += its output) |
//              gate/up GEMM on rmsnorm(h) (+ SwiGLU) | down_proj (h += its output);
//   then the lm_head GEMM on rmsnorm(h). A GEMM phase's output columns come in units of 16 (weight rows), each
//   multiplied in chunks of 512 elements of k; the phase's chunks are split evenly over the blocks, a unit split
//   between blocks summed by the last of them to finish its part (decode_megakernel_share.h). A chunk goes to tensor
//   cores (mma.sync m16n8k16: the 16 weight rows as A, the <= 8 activation rows as B, the skinny GEMM's staged
//   variant's fragment layout): warp w takes 32-element groups 2 w and 2 w + 1 of each chunk, and the warps' sums meet
//   in shared memory at the end of the block's part of a unit, where warp 0 applies the output (skinny_outputs.cuh's
//   RoPE + append and SwiGLU pairs, the residual add, or the logits store). The weight stream: every thread issues
//   cp.async copies of its 4 x 16 bytes of each chunk into a ring of kStages shared-memory stages, kStages - 1 chunks
//   ahead of the chunk being multiplied, across unit, phase and layer boundaries alike (the weights never depend on
//   the activations). The GEMM inputs rmsnorm(h) (every block computes the norm of the <= 8 rows itself, the
//   residual + RMSNorm kernel's roundings) and the attention output are copied into shared memory at the phase's
//   start; down_proj's input (rows of intermediate_size) is read from L2, one chunk ahead. Attention:
//   decode_megakernel_attention.cuh, items of (token, KV head, key split) over the blocks.
// Launch shape: cooperative, one block of 256 threads per SM (~226 KB of dynamic shared memory: kStages stages of
//   16 rows x 1088 bytes, 68 KB for the activations or the attention's arrays, 4 KB for the warps' sums).
// Sync: cp.async groups and one __syncthreads per chunk (a stage is refilled only after every warp has used it); a
//   grid barrier (an arrival count and a generation word in the workspace, acquire/release, self-resetting) between
//   phases, with a 10 s watchdog that traps; arrival counters for the attention's splits and the split GEMM units
//   (fence, count, the last arrival reads the others' parts). Activations written in this launch are read through L2
//   (__ldcg): other SMs wrote them.
#include "engine/gpu/decode_megakernel.h"

#include <cuda/atomic>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdio>
#include <string>

#include "engine/gpu/attention_fused.h"
#include "engine/gpu/bf16_vector.cuh"
#include "engine/gpu/decode_megakernel_attention.cuh"
#include "engine/gpu/decode_megakernel_gemm.cuh"
#include "engine/gpu/pointwise.cuh"
#include "engine/gpu/skinny_outputs.cuh"
#include "nvrar/types.h"

namespace nvrar::engine::gpu {

namespace {

using namespace mega;
__device__ const char* phase_name(int name) {
  switch (name) {
    case 0: return "q/k/v";
    case 1: return "attention";
    case 2: return "o_proj";
    case 3: return "gate/up";
    case 4: return "down_proj";
    default: return "lm_head";
  }
}

struct Workspace {  // at the start of the workspace; the arrival counters and partials follow
  unsigned count, generation;
};

__device__ __forceinline__ uint64_t global_ns() {
  uint64_t t;
  asm volatile("mov.u64 %0, %globaltimer;" : "=l"(t));
  return t;
}

// Grid barrier: every block's writes before it are visible to every block after it.
__device__ void grid_barrier(Workspace* ws, unsigned blocks, int layer, int name) {
  __syncthreads();
  if (threadIdx.x == 0) {
    cuda::atomic_ref<unsigned, cuda::thread_scope_device> count(ws->count), generation(ws->generation);
    const unsigned gen = generation.load(cuda::memory_order_acquire);
    __threadfence();
    if (count.fetch_add(1u, cuda::memory_order_acq_rel) == blocks - 1) {
      count.store(0u, cuda::memory_order_relaxed);
      generation.store(gen + 1, cuda::memory_order_release);
    } else {
      const uint64_t start = global_ns();
      while (generation.load(cuda::memory_order_acquire) == gen) {
        if (global_ns() - start > kWatchdogNs) {
          printf("nvrar-llm: persistent decode kernel: block %d waited over 10 s for the other blocks before %s of "
                 "layer %d; stopping the kernel\n",
                 blockIdx.x, phase_name(name), layer);
          __trap();
        }
      }
    }
    __threadfence();
  }
  __syncthreads();
}

template <int D>
__device__ __forceinline__ void attend_group(int G, const AttentionItem& it, char* act, unsigned* last) {
  switch (G) {
    case 8: return attend_split<8, D>(it, act, last);
    case 4: return attend_split<4, D>(it, act, last);
    case 2: return attend_split<2, D>(it, act, last);
    default: return attend_split<1, D>(it, act, last);
  }
}

__device__ void attention_phase(const Params& p, int layer, char* act, unsigned* last) {
  const MegakernelArgs& a = p.a;
  const int G = a.q_heads / a.kv_heads;
  const int64_t q_cols = static_cast<int64_t>(a.q_heads) * a.head_dim;
  const int64_t qkv_cols = q_cols + 2LL * a.kv_heads * a.head_dim;
  const int64_t items = static_cast<int64_t>(a.rows) * a.kv_heads * p.splits;
  for (int64_t i = blockIdx.x; i < items; i += p.blocks) {
    const int split = static_cast<int>(i % p.splits);
    const int kv = static_cast<int>(i / p.splits % a.kv_heads);
    const int t = static_cast<int>(i / p.splits / a.kv_heads);
    const int len = a.lengths[t];
    const int used = (len + p.keys_per_split - 1) / p.keys_per_split;
    if (len < 1 || used > p.splits) {  // the merge would never complete: stop rather than leave stale rows
      if (threadIdx.x == 0)
        printf("nvrar-llm: persistent decode kernel: row %d attends to %d keys (takes 1 to max_len %lld)\n", t, len,
               static_cast<long long>(a.max_len));
      __trap();
    }
    if (split >= used) continue;
    AttentionItem it;
    it.q = a.qkv + t * qkv_cols + static_cast<int64_t>(kv) * G * a.head_dim;
    const int64_t row0 = kv_cache_row(a.seq[t], a.kv_heads, kv, a.max_seq, 0, a.head_dim);
    it.cache_k = a.layers[layer].cache_k + row0;
    it.cache_v = a.layers[layer].cache_v + row0;
    it.begin = split * p.keys_per_split;
    it.end = min(len, it.begin + p.keys_per_split);
    it.single = used == 1;
    it.out_row = a.attn + t * q_cols + static_cast<int64_t>(kv) * G * a.head_dim;
    it.partials = merge::Partials{p.part_acc, p.part_ml,
                                  (static_cast<int64_t>(t) * a.q_heads + static_cast<int64_t>(kv) * G) * p.splits,
                                  p.splits};
    it.split = split;
    it.counter = p.counters + t * a.kv_heads + kv;
    it.used = used;
    if (a.head_dim == 128)
      attend_group<128>(G, it, act, last);
    else
      attend_group<64>(G, it, act, last);
  }
}

__global__ void __launch_bounds__(kThreads, 1) decode_megakernel_kernel(const __grid_constant__ Params p) {
  extern __shared__ __align__(16) char shared[];
  __shared__ float norm_red[kMegakernelMaxRows * kWarps];
  __shared__ unsigned last_flag;
  Ring ring{shared};
  char* act = shared + kStages * kStageBytes;
  auto* xs = reinterpret_cast<bf16_t*>(act);
  auto* reduce = reinterpret_cast<float*>(act + kActBytes);
  auto* ws = static_cast<Workspace*>(p.a.workspace);
  const MegakernelArgs& a = p.a;
  const unsigned blocks = static_cast<unsigned>(p.blocks);

  WeightStream stream;
  stream.begin(p);
  for (int s = 0; s < kStages - 1; ++s) stream.issue(p, ring.stages + s * kStageBytes);

  const int64_t q_cols = static_cast<int64_t>(a.q_heads) * a.head_dim;
  for (int index = 0; index <= 4 * a.num_layers; ++index) {
    const Phase ph = phase_of(p, index);
    if (index > 0) grid_barrier(ws, blocks, ph.layer, ph.kind == kQkv ? 0 : ph.kind + 1);
    const MegakernelLayer& l = a.layers[ph.kind == kHead ? 0 : ph.layer];
    switch (ph.kind) {
      case kQkv: {
        norm_rows(p, l.ln_in, xs, norm_red);
        const RopeAppendPairs out{a.qkv, ph.n,           a.q_heads, a.kv_heads,  a.head_dim / 2, a.positions,
                                  a.inv_freq, a.seq, l.cache_k, l.cache_v, a.max_seq, false};
        run_units(p, ph, out, xs, false, ring, stream, reduce);
        grid_barrier(ws, blocks, ph.layer, 1);
        attention_phase(p, ph.layer, act, &last_flag);
        break;
      }
      case kO:
        copy_rows(a.attn, a.rows, q_cols, xs);
        run_units(p, ph, ResidualAdd{a.h, a.hidden}, xs, false, ring, stream, reduce);
        break;
      case kGateUp:
        norm_rows(p, l.ln_post, xs, norm_red);
        run_units(p, ph, SwiGluPairs{a.act, a.inter, false}, xs, false, ring, stream, reduce);
        break;
      case kDown:
        run_units(p, ph, ResidualAdd{a.h, a.hidden}, a.act, true, ring, stream, reduce);
        break;
      default:
        norm_rows(p, a.final_norm, xs, norm_red);
        run_units(p, ph, StoreColumns{a.logits, a.vocab_cols, SkinnyEpilogue::Kind::kStore}, xs, false, ring,
                  stream, reduce);
        break;
    }
  }
  asm volatile("cp.async.wait_all;\n" ::: "memory");
}

// The attention's arrival counters: one per (row, KV head) of the largest batch, whatever this step's rows (so a
// smaller step never finds a larger one's partials where its counters are).
int64_t counter_bytes(int kv_heads) {
  return (static_cast<int64_t>(kMegakernelMaxRows) * kv_heads * 4 + 255) / 256 * 256;
}

}  // namespace

std::string decode_megakernel_refusal(int rows, int num_layers, int hidden, int q_heads, int kv_heads, int head_dim,
                                      int inter, int64_t vocab_cols) {
  const int64_t q_cols = static_cast<int64_t>(q_heads) * head_dim;
  const int group = kv_heads > 0 ? q_heads / kv_heads : 0;
  if (rows < 1 || rows > kMegakernelMaxRows)
    return "batch " + std::to_string(rows) + " (takes 1 to " + std::to_string(kMegakernelMaxRows) + " rows)";
  if (num_layers < 1 || num_layers > kMegakernelMaxLayers)
    return std::to_string(num_layers) + " layers (takes 1 to " + std::to_string(kMegakernelMaxLayers) + ")";
  if (head_dim != 64 && head_dim != 128) return "head_dim " + std::to_string(head_dim) + " (takes 64 or 128)";
  if (kv_heads < 1 || q_heads % kv_heads != 0 || (group != 1 && group != 2 && group != 4 && group != 8))
    return std::to_string(q_heads) + " query heads over " + std::to_string(kv_heads) +
           " KV heads (takes 1, 2, 4 or 8 query heads per KV head)";
  if (hidden % kChunk != 0 || q_cols % kChunk != 0 || inter % kChunk != 0)
    return "hidden_size " + std::to_string(hidden) + ", q_heads x head_dim " + std::to_string(q_cols) +
           ", intermediate_size " + std::to_string(inter) + " (takes multiples of " + std::to_string(kChunk) + ")";
  if (hidden > 8192) return "hidden_size " + std::to_string(hidden) + " (takes at most 8192)";
  if (vocab_cols % 16 != 0) return "vocabulary shard " + std::to_string(vocab_cols) + " (takes a multiple of 16)";
  if (static_cast<int64_t>(rows) * (std::max<int64_t>(hidden, q_cols) + 32) * 2 > kActBytes)
    return std::to_string(rows) + " rows of " + std::to_string(std::max<int64_t>(hidden, q_cols)) +
           " activations (takes rows x (that + 32) x 2 bytes <= " + std::to_string(kActBytes) + ")";
  int device = 0, optin = 0, per_sm = 0;
  if (cudaGetDevice(&device) != cudaSuccess ||
      cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, device) != cudaSuccess) {
    cudaGetLastError();
    return "no CUDA device to run it on";
  }
  if (optin < kSharedBytes + 512)
    return "this GPU's " + std::to_string(optin) + " bytes of shared memory per block (takes " +
           std::to_string(kSharedBytes + 512) + ")";
  cudaError_t e = cudaFuncSetAttribute(decode_megakernel_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                       kSharedBytes);
  if (e == cudaSuccess)
    e = cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, decode_megakernel_kernel, kThreads, kSharedBytes);
  if (e != cudaSuccess) {
    cudaGetLastError();
    return std::string("this GPU, where the kernel's shared memory or occupancy query failed: ") +
           cudaGetErrorString(e);
  }
  if (per_sm < 1) return "this GPU, where no SM holds a block of the kernel";
  return "";
}

namespace {

struct WorkspaceLayout {
  int64_t counters, attention_partials, unit_counters, unit_partials, bytes;
};
// For steps of any row count up to kMegakernelMaxRows: the offsets must not depend on the step's rows (a step of fewer
// rows would find a larger step's partials where its counters are).
WorkspaceLayout layout(int q_heads, int kv_heads, int head_dim, int hidden, int inter, int64_t vocab_cols) {
  const auto round = [](int64_t b) { return (b + 255) / 256 * 256; };
  const int64_t blocks = sm_count(), splits = blocks;  // at most one split per block
  const int64_t rows = kMegakernelMaxRows;
  const int64_t units = std::max({static_cast<int64_t>(q_heads + 2 * kv_heads) * head_dim, int64_t{hidden},
                                  2 * int64_t{inter}, vocab_cols}) / 16;
  WorkspaceLayout l{};
  l.counters = 256;  // after the grid barrier's words
  l.attention_partials = l.counters + counter_bytes(kv_heads);
  l.unit_counters = l.attention_partials + round(rows * q_heads * splits * (head_dim + 2) * 4);
  l.unit_partials = l.unit_counters + round(units * 4);
  l.bytes = l.unit_partials + blocks * 2 * 128 * 4;
  return l;
}

}  // namespace

int64_t decode_megakernel_workspace_bytes(int q_heads, int kv_heads, int head_dim, int hidden, int inter,
                                          int64_t vocab_cols) {
  return layout(q_heads, kv_heads, head_dim, hidden, inter, vocab_cols).bytes;
}

void decode_megakernel(const MegakernelArgs& args, cudaStream_t stream) {
  const std::string refusal = decode_megakernel_refusal(args.rows, args.num_layers, args.hidden, args.q_heads,
                                                        args.kv_heads, args.head_dim, args.inter, args.vocab_cols);
  if (!refusal.empty()) throw Error("nvrar-llm: persistent decode kernel: " + refusal);
  const WorkspaceLayout l =
      layout(args.q_heads, args.kv_heads, args.head_dim, args.hidden, args.inter, args.vocab_cols);
  if (args.workspace == nullptr)
    throw Error("nvrar-llm: persistent decode kernel: no workspace (MegakernelArgs::workspace is null)");
  if (args.workspace_bytes < l.bytes)
    throw Error("nvrar-llm: persistent decode kernel: a workspace of " + std::to_string(args.workspace_bytes) +
                " bytes (takes " + std::to_string(l.bytes) + " for this model shape)");
  Params p{};
  p.a = args;
  p.blocks = sm_count();
  // Attention splits: about one item per block over the rows' KV heads, at least 64 keys each, in warps of 32 keys.
  const int64_t max_len = std::max<int64_t>(1, args.max_len);
  const int64_t heads = static_cast<int64_t>(args.rows) * args.kv_heads;
  int64_t splits = std::clamp<int64_t>((p.blocks + heads - 1) / heads, 1, (max_len + 63) / 64);
  int64_t keys = (max_len + splits - 1) / splits;
  keys = (keys + 31) / 32 * 32;
  p.keys_per_split = static_cast<int>(keys);
  p.splits = static_cast<int>((max_len + keys - 1) / keys);
  char* w = static_cast<char*>(args.workspace);
  p.counters = reinterpret_cast<unsigned*>(w + l.counters);
  p.part_acc = reinterpret_cast<float*>(w + l.attention_partials);
  p.part_ml = p.part_acc + static_cast<int64_t>(args.rows) * args.q_heads * p.splits * args.head_dim;
  p.unit_counters = reinterpret_cast<unsigned*>(w + l.unit_counters);
  p.unit_partials = reinterpret_cast<float*>(w + l.unit_partials);

  cudaLaunchConfig_t config{};
  config.gridDim = dim3(static_cast<unsigned>(p.blocks));
  config.blockDim = dim3(kThreads);
  config.dynamicSmemBytes = kSharedBytes;
  config.stream = stream;
  cudaLaunchAttribute attribute{};
  attribute.id = cudaLaunchAttributeCooperative;
  attribute.val.cooperative = 1;
  config.attrs = &attribute;
  config.numAttrs = 1;
  cudaError_t e = cudaLaunchKernelEx(&config, decode_megakernel_kernel, p);
  if (e == cudaSuccess) e = cudaGetLastError();
  if (e != cudaSuccess)
    throw Error("nvrar-llm: persistent decode kernel: launch of " + std::to_string(p.blocks) + " blocks x " +
                std::to_string(kThreads) + " threads with " + std::to_string(kSharedBytes) +
                " bytes of shared memory failed: " + cudaGetErrorString(e));
}

}  // namespace nvrar::engine::gpu
