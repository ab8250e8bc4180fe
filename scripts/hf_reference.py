#!/usr/bin/env python3
"""Writes a small random Llama-3 model (config.json + model.safetensors, bf16) and transformers' reference for
it: greedy generation from seeded random prompts, with the raw logits of the prefill's last position and of every
decode step (bf16, as transformers runs the model), and the same positions' logits of an fp32 forward of the same
weights (upcast), teacher-forced on the same tokens: the truth `nvrar-llm check` measures both bf16 runs against.

    python3 scripts/hf_reference.py --out DIR [--steps 32] [--batch 2] [--prompt-len 16] [--seed 0]
        [--head-dim 32] [--heads 8] [--kv-heads 4] [--hidden 256] [--layers 2] [--tied] [--plain-rope] [--eps 1e-5]

Defaults: grouped-query attention (8 query heads, 4 KV heads, so TP 1, 2 and 4 all split it), head_dim 32, Llama-3
RoPE scaling, untied embeddings; eager attention in transformers (fp32 softmax)."""
import argparse
import json
import os

import torch
import transformers
from transformers import LlamaConfig, LlamaForCausalLM


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--steps", type=int, default=32)
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--prompt-len", type=int, default=16)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--head-dim", type=int, default=32)
    ap.add_argument("--heads", type=int, default=8)
    ap.add_argument("--kv-heads", type=int, default=4)
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--tied", action="store_true", help="tie lm_head to embed_tokens")
    ap.add_argument("--plain-rope", action="store_true", help="no Llama-3 frequency scaling")
    ap.add_argument("--eps", type=float, default=1e-5)
    args = ap.parse_args()
    torch.backends.cuda.matmul.allow_tf32 = False  # the fp32 forward must be fp32
    torch.backends.cudnn.allow_tf32 = False
    torch.manual_seed(args.seed)
    rope = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
            "original_max_position_embeddings": 1024}
    positions = max(4096, args.prompt_len + args.steps + 16)
    shape = dict(vocab_size=512, hidden_size=args.hidden, intermediate_size=2 * args.hidden,
                 num_hidden_layers=args.layers, num_attention_heads=args.heads, num_key_value_heads=args.kv_heads,
                 head_dim=args.head_dim, max_position_embeddings=positions, rms_norm_eps=args.eps,
                 tie_word_embeddings=args.tied, initializer_range=0.08)
    if args.plain_rope:
        rope = {"rope_type": "default"}
    if int(transformers.__version__.split(".")[0]) >= 5:  # rope_theta moved into rope_parameters; dtype renamed
        config = LlamaConfig(**shape, rope_parameters={**rope, "rope_theta": 500000.0}, dtype="bfloat16")
    else:
        config = LlamaConfig(**shape, rope_theta=500000.0, rope_scaling=None if args.plain_rope else rope,
                             torch_dtype="bfloat16")
    config._attn_implementation = "eager"
    # Built in fp32, then the parameters rounded to bf16: RoPE's inv_freq buffer stays fp32. (model.to(bfloat16)
    # would round it to bf16 too, an angle error that grows with the position: 2^-9 relative, 0.6 rad at position
    # 300 for the fastest pair; the fp32 truth and the bf16 reference would then share that error.)
    torch.set_default_dtype(torch.float32)
    model = LlamaForCausalLM(config).cuda().eval()
    with torch.no_grad():
        for p in model.parameters():
            p.data = p.data.to(torch.bfloat16)
    os.makedirs(args.out, exist_ok=True)
    try:
        model.save_pretrained(args.out, safe_serialization=True)
    except TypeError:  # transformers 5 always writes safetensors and dropped the argument
        model.save_pretrained(args.out)
    print(open(os.path.join(args.out, "config.json")).read())
    prompts = torch.randint(0, config.vocab_size, (args.batch, args.prompt_len), device="cuda")
    with torch.no_grad():
        out = model.generate(prompts, attention_mask=torch.ones_like(prompts), max_new_tokens=args.steps,
                             min_new_tokens=args.steps, do_sample=False, output_logits=True,
                             return_dict_in_generate=True, eos_token_id=None, pad_token_id=0)
    tokens = out.sequences[:, args.prompt_len:].T.tolist()  # [step][batch]
    logits = [step.float().tolist() for step in out.logits]  # [step][batch][vocab]
    # The fp32 truth: the same weights upcast, one teacher-forced forward over prompt + generated tokens (SDPA in
    # fp32, no TF32), logits of the positions whose bf16 logits were recorded.
    model32 = LlamaForCausalLM(config).cuda().eval()  # fresh fp32 buffers (RoPE), the same weights upcast
    model32.load_state_dict({k: v.float() for k, v in model.state_dict().items()})
    try:
        model32.set_attn_implementation("sdpa")
    except AttributeError:  # older transformers
        model32.config._attn_implementation = "sdpa"
    with torch.no_grad():
        full = model32(out.sequences[:, :-1]).logits  # [batch][prompt + steps - 1][vocab]
    start = args.prompt_len - 1
    logits_fp32 = full[:, start:start + args.steps].transpose(0, 1).tolist()  # [step][batch][vocab]
    ref = {"prompts": prompts.tolist(), "tokens": tokens, "logits": logits, "logits_fp32": logits_fp32,
           "transformers": transformers.__version__, "torch": torch.__version__}
    with open(os.path.join(args.out, "reference.json"), "w") as f:
        json.dump(ref, f)
    print(f"wrote {args.out}: {args.batch} prompts x {args.prompt_len} tokens, {args.steps} steps")


if __name__ == "__main__":
    main()
