// The persistent decode step (decode_megakernel.cu): every layer of a TP 1 decode step, the final RMSNorm and the
// lm_head in one kernel launch, one block per SM, so the weights stream from HBM without a gap at the ~7 kernel
// boundaries of each layer (NVRAR_LLM_DECODE_KERNEL=persistent; docs/engine.md).
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>
#include <string>

#include "engine/gpu/layers.h"

namespace nvrar::engine::gpu {

constexpr int kMegakernelMaxLayers = 128;
constexpr int kMegakernelMaxRows = 8;

// One layer's weights ([out, in] row-major bf16, the model's fused layouts) and its KV cache.
struct MegakernelLayer {
  const bf16_t* qkv = nullptr;      // [(q_heads + 2 kv_heads) head_dim, hidden]
  const bf16_t* o = nullptr;        // [hidden, q_heads head_dim]
  const bf16_t* gate_up = nullptr;  // [2 inter, hidden]: gate rows, then up rows
  const bf16_t* down = nullptr;     // [hidden, inter]
  const bf16_t* ln_in = nullptr;    // [hidden]
  const bf16_t* ln_post = nullptr;  // [hidden]
  bf16_t* cache_k = nullptr;        // [max_batch][kv_heads][max_seq][head_dim]
  bf16_t* cache_v = nullptr;
};

// A decode step of `rows` tokens (lengths[t] <= max_len for every t: the attention's splits are sized by max_len).
// h holds the embedded tokens on entry and the residual stream after the last layer on exit; qkv, attn and act are
// the model's activation buffers; logits [rows][vocab_cols] bf16. The whole struct is the kernel's parameter (by
// value; ~8.3 KB), so a CUDA graph captures every pointer.
struct MegakernelArgs {
  int rows = 0, num_layers = 0;
  int hidden = 0, q_heads = 0, kv_heads = 0, head_dim = 0, inter = 0;
  int64_t vocab_cols = 0, max_seq = 0, max_len = 0;  // max_len: the longest lengths[t] the step can see
  float eps = 0;
  MegakernelLayer layers[kMegakernelMaxLayers];
  const bf16_t* final_norm = nullptr;
  const bf16_t* lm_head = nullptr;  // [vocab_cols, hidden]
  bf16_t *h = nullptr, *qkv = nullptr, *attn = nullptr, *act = nullptr, *logits = nullptr;
  const int32_t* positions = nullptr;  // [rows] position of each token
  const int32_t* seq = nullptr;        // [rows] its sequence (KV cache slot)
  const int32_t* lengths = nullptr;    // [rows] keys it attends to (position + 1)
  const float* inv_freq = nullptr;     // [head_dim / 2]
  void* workspace = nullptr;           // decode_megakernel_workspace_bytes, zeroed once after allocation
  int64_t workspace_bytes = 0;
};

// "" when decode_megakernel takes this shape on the current device, else why not (for the engine's printout and
// errors): rows 1-8, head_dim 64 or 128, q_heads a multiple of kv_heads by 1, 2, 4 or 8, hidden, q_heads head_dim and
// inter multiples of 512, vocab_cols of 16, at most kMegakernelMaxLayers layers, and one 256-thread block with the
// kernel's shared memory on every SM.
std::string decode_megakernel_refusal(int rows, int num_layers, int hidden, int q_heads, int kv_heads, int head_dim,
                                      int inter, int64_t vocab_cols);

// Workspace bytes for steps of this model shape (any row count up to kMegakernelMaxRows, one layout for all): the grid
// barrier, the attention's arrival counters and split partials, the GEMM units' counters and partial sums (~18 MB
// for Llama-3.1-8B on 132 SMs). Zero it once after allocation; every step leaves it ready for the next (graph replays
// need no memset).
int64_t decode_megakernel_workspace_bytes(int q_heads, int kv_heads, int head_dim, int hidden, int inter,
                                          int64_t vocab_cols);

// Launches the step (cooperative: all blocks resident at once, or a launch error). Throws nvrar::Error naming the
// cause for a shape decode_megakernel_refusal refuses or a failed launch. A block that waits over 10 s for the others
// (a hang) stops the kernel with a device-side trap after printing the phase it waited in.
void decode_megakernel(const MegakernelArgs& args, cudaStream_t stream);

}  // namespace nvrar::engine::gpu
