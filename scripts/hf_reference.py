#!/usr/bin/env python3
"""Writes a small random Llama-3 model (config.json + model.safetensors, bf16) and transformers' reference for
it: greedy generation from seeded random prompts, with the raw logits of the prefill's last position and of every
decode step. `nvrar-llm check` compares against this file.

    python3 scripts/hf_reference.py --out DIR [--steps 32] [--batch 2] [--prompt-len 16] [--seed 0]

The model uses grouped-query attention (8 query heads, 4 KV heads, so TP 1, 2 and 4 all split it), Llama-3 RoPE
scaling, untied embeddings, and eager attention in transformers (fp32 softmax)."""
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
    args = ap.parse_args()
    torch.manual_seed(args.seed)
    rope = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
            "original_max_position_embeddings": 1024}
    shape = dict(vocab_size=512, hidden_size=256, intermediate_size=512, num_hidden_layers=2, num_attention_heads=8,
                 num_key_value_heads=4, head_dim=32, max_position_embeddings=4096, rms_norm_eps=1e-5,
                 tie_word_embeddings=False, initializer_range=0.08)
    if int(transformers.__version__.split(".")[0]) >= 5:  # rope_theta moved into rope_parameters; dtype renamed
        config = LlamaConfig(**shape, rope_parameters={**rope, "rope_theta": 500000.0}, dtype="bfloat16")
    else:
        config = LlamaConfig(**shape, rope_theta=500000.0, rope_scaling=rope, torch_dtype="bfloat16")
    config._attn_implementation = "eager"
    model = LlamaForCausalLM(config).to(torch.bfloat16).cuda().eval()
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
    ref = {"prompts": prompts.tolist(), "tokens": tokens, "logits": logits,
           "transformers": transformers.__version__, "torch": torch.__version__}
    with open(os.path.join(args.out, "reference.json"), "w") as f:
        json.dump(ref, f)
    print(f"wrote {args.out}: {args.batch} prompts x {args.prompt_len} tokens, {args.steps} steps")


if __name__ == "__main__":
    main()
