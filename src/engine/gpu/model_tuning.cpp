// LlamaModel::prepare_gemms: the GEMM kernels of a decode step of n rows chosen before any graph is captured, each
// timed on passes over every layer's matrix of its shape with the work the step does on its output (gemm.h's
// TuneEpilogue), so that a skinny kernel with a fused epilogue and cuBLASLt followed by that epilogue's kernel are
// compared doing the same work.
#include "engine/gpu/model.h"

#include <cuda_runtime.h>

#include <numeric>
#include <optional>
#include <vector>

namespace nvrar::engine::gpu {

void LlamaModel::prepare_gemms(int64_t n) {
  if (prepared_batch_ == n) return;
  prepared_batch_ = n;
  if (persistent_decode(n)) return;  // its GEMMs are its own
  const int64_t H = hidden_;
  std::vector<const void*> qkv, o, gate_up, down;
  for (const Layer& l : layers_) {
    qkv.push_back(l.qkv);
    o.push_back(l.o);
    gate_up.push_back(l.gate_up);
    down.push_back(l.down);
  }
  const void* const head[] = {lm_head_};
  // Where the skinny kernels do SwiGLU and RoPE + KV append in their epilogues (qkv_rope_append, gate_up_swiglu),
  // every candidate is timed with that work: RoPE + append into scratch KV rows (position 0, max_seq 1), since the
  // cache's positions are not set yet.
  DeviceMemory scratch(rank_);
  std::optional<TuneEpilogue> rope, silu;
  if (fuse_epilogue_) {
    int32_t* pos = scratch.i32(2 * n, "GEMM tuning positions");  // [0, n): positions 0; [n, 2 n): sequences 0 .. n-1
    int32_t* seq = pos + n;
    const int64_t kv = n * kv_heads_ * head_dim_;
    bf16_t* k_rows = scratch.bf16(2 * kv, "GEMM tuning KV rows");
    bf16_t* v_rows = k_rows + kv;
    std::vector<int32_t> host(static_cast<std::size_t>(2 * n), 0);
    std::iota(host.begin() + n, host.end(), 0);
    cuda_check(cudaMemcpy(pos, host.data(), host.size() * sizeof(int32_t), cudaMemcpyHostToDevice), "GEMM tuning",
               rank_);
    rope = TuneEpilogue{"RoPE + append", rope_epilogue(pos, seq, k_rows, v_rows, /*max_seq=*/1), qkv_,
                        [=, this] { rope_append_after_gemm(n, pos, seq, k_rows, v_rows, 1); }};
    silu = TuneEpilogue{"SwiGLU", swiglu_epilogue(), act_, [n, this] { swiglu_after_gemm(n); }};
  }
  const TuneEpilogue* rope_work = rope ? &*rope : nullptr;
  const TuneEpilogue* silu_work = silu ? &*silu : nullptr;
  if (fp32_activations_) {  // every layer GEMM's choice for fp32 outputs (the skinny epilogues look those up)
    gemm_->tune(x_, qkv, qkv32_, n, qkv_cols_, H, stream_, DataType::kFloat32, rope_work);
    gemm_->tune(attn_, o, part32_, n, H, q_cols_, stream_, DataType::kFloat32);
    gemm_->tune(x_, gate_up, gu32_, n, 2 * inter_, H, stream_, DataType::kFloat32, silu_work);
    gemm_->tune(act_, down, part32_, n, H, inter_, stream_, DataType::kFloat32);
  } else {
    gemm_->tune(x_, qkv, qkv_, n, qkv_cols_, H, stream_, DataType::kBFloat16, rope_work);
    gemm_->tune(attn_, o, part_, n, H, q_cols_, stream_);
    gemm_->tune(x_, gate_up, gu_, n, 2 * inter_, H, stream_, DataType::kBFloat16, silu_work);
    gemm_->tune(act_, down, part_, n, H, inter_, stream_);
  }
  gemm_->tune(x_, head, logits_, n, vocab_cols_, H, stream_);
  cuda_check(cudaStreamSynchronize(stream_), "GEMM tuning", rank_);  // before `scratch` is freed
}

}  // namespace nvrar::engine::gpu
