#!/usr/bin/env python3
"""Where the engine's logit error comes from, on a CPU: a numerics model of `nvrar-llm check`.

`nvrar-llm check` measures our logits and transformers' bf16 logits against an fp32 forward of the same weights and
reports our largest error over transformers' (issue 17 asks for a ratio <= 1 at every step). This script runs the
same kind of random tiny Llama (scripts/hf_reference.py's shapes and initialisation) three ways, in float64 with
bf16 rounding applied explicitly where each implementation rounds:
  - truth: no rounding after the bf16 weights (the check's fp32 forward, up to fp32's own 2^-24);
  - transformers: LlamaForCausalLM in bf16 with eager attention, rounding where it rounds (every GEMM output, the
    bf16 score matrix and its scaling, softmax probabilities, RoPE's bf16 cos/sin and its three products and sums,
    SiLU and the gate product, RMSNorm's normalised row and its weight product, every residual add, the logits);
    its GEMMs accumulate in float32;
  - nvrar: the engine's kernels (src/engine/gpu), with its GEMMs accumulated exactly (a different order than
    transformers', as cuBLASLt's differs on the GPU), fp32 attention scores, bf16 probabilities only in the prefill's
    tensor-core kernels, fp32 probabilities in decode. Options remove the roundings the engine copies from
    transformers one at a time (--fix), to predict which change brings the ratio under 1 before a GPU measures it.
Every step's logits are teacher-forced (the positions after the prompt of one random sequence), like the check.

    /usr/bin/python3 scripts/precision_model.py [--cases p1,p300,...] [--seeds 4] [--layers 2]
        [--fix rope,swiglu,norm,...] [--fix fp32_activations]

Needs PyTorch (CPU is enough; Debian's python3-torch works). Prints, per case and variant, the worst ratio over
steps and seeds and how many steps have ours larger."""
import argparse
import math
import sys

import torch

# name: (prompt_len, steps, head_dim, heads, kv_heads, hidden, tied, plain_rope, eps), as engine-long-check.sh
CASES = {
    "p1": (1, 16, 64, 4, 4, 256, False, False, 1e-5),
    "p300_tied": (300, 16, 64, 12, 3, 384, True, True, 1e-6),
    "p300": (300, 16, 128, 8, 1, 512, False, False, 1e-5),
    "p2048": (2048, 8, 128, 8, 2, 512, False, False, 1e-5),
    "p2048_tied": (2048, 8, 64, 8, 1, 256, True, False, 1e-5),
}
# Roundings the engine copies from transformers today, each removable: rope (bf16 cos/sin, three roundings -> one),
# swiglu (SiLU rounded before the product -> one rounding), norm (normalised row rounded before the weight -> one),
# residual (bf16 residual stream -> fp32), logits (bf16 logits -> fp32), qkv / gate_up (GEMM outputs kept in fp32
# until RoPE / SwiGLU round once).
FIXES = ("rope", "swiglu", "norm", "residual", "logits", "qkv", "gate_up", "o_down", "gemm_in", "q", "kv")
# The engine's NVRAR_LLM_ACTIVATIONS=fp32 mode as a set of fixes (--fix fp32_activations; docs/numerics.md).
FP32_ACTIVATIONS = ("rope", "swiglu", "residual", "qkv", "gate_up", "o_down")
VOCAB, THETA = 512, 500000.0


def bf16(x):
    return x.to(torch.bfloat16).to(torch.float64)


def identity(x):
    return x


def inv_freq(head_dim, plain):
    base = [1.0 / THETA ** (2 * i / head_dim) for i in range(head_dim // 2)]
    if plain:
        return torch.tensor(base, dtype=torch.float32).double()
    factor, low, high, original = 8.0, 1.0, 4.0, 1024
    out = []
    for f in base:
        wavelen = 2 * math.pi / f
        if wavelen < original / high:
            out.append(f)
        elif wavelen > original / low:
            out.append(f / factor)
        else:
            smooth = (original / wavelen - low) / (high - low)
            out.append((1 - smooth) * f / factor + smooth * f)
    return torch.tensor(out, dtype=torch.float32).double()  # fp32 buffer, as in both implementations


def make_model(case, seed, num_layers=2):
    prompt_len, steps, D, heads, kv_heads, hidden, tied, plain, eps = CASES[case]
    g = torch.Generator().manual_seed(seed)

    def weight(*shape):
        return bf16(torch.randn(*shape, generator=g, dtype=torch.float64) * 0.08)

    layers = [dict(q=weight(heads * D, hidden), k=weight(kv_heads * D, hidden), v=weight(kv_heads * D, hidden),
                   o=weight(hidden, heads * D), gate=weight(2 * hidden, hidden), up=weight(2 * hidden, hidden),
                   down=weight(hidden, 2 * hidden)) for _ in range(num_layers)]
    embed = weight(VOCAB, hidden)
    head = embed if tied else weight(VOCAB, hidden)
    tokens = torch.randint(0, VOCAB, (prompt_len + steps - 1,), generator=g)
    return dict(layers=layers, embed=embed, head=head, tokens=tokens, D=D, heads=heads, kv_heads=kv_heads, eps=eps,
                inv_freq=inv_freq(D, plain), prompt_len=prompt_len, steps=steps)


class Numerics:
    """Where one implementation rounds. r: a bf16 rounding or identity; gemm: x @ w.T and its output rounding."""

    def __init__(self, kind, fixes=()):
        self.kind = kind
        exact = kind == "truth"
        hf = kind == "transformers"
        r = identity if exact else bf16
        keep = (lambda name: identity) if exact else (lambda name: identity if name in fixes else bf16)
        self.r = r
        self.rope_inner = keep("rope")  # cos/sin and the partial products
        self.norm_inner = keep("norm")
        self.silu_inner = keep("swiglu")
        self.residual = keep("residual")
        self.logits = keep("logits")
        self.qkv_out = r if hf else keep("qkv")
        self.gate_up_out = r if hf else keep("gate_up")
        self.fp32_accumulate = hf
        self.o_down_out = r if hf else keep("o_down")
        self.gemm_in = r if hf else keep("gemm_in")
        self.kv = r if hf else keep("kv")
        self.q = r if hf else keep("q")

    def gemm(self, x, w, out_round):
        if self.fp32_accumulate:  # bf16 x bf16 products are exact in fp32; the sum is not
            return out_round((x.float() @ w.float().T).double())
        return out_round(x @ w.T)

    def rmsnorm(self, x, eps):
        inv = torch.rsqrt((x * x).mean(-1, keepdim=True) + eps)
        return self.gemm_in(self.norm_inner(x * inv))  # weights are ones: their product is exact

    def rope(self, x, positions, freqs, out_round):
        angle = (positions[:, None].float() * freqs.float()[None, :]).double()  # fp32 angles in both
        c = self.rope_inner(torch.cos(angle))[:, None, :]
        s = self.rope_inner(torch.sin(angle))[:, None, :]
        half = x.shape[-1] // 2
        x1, x2 = x[..., :half], x[..., half:]
        ri = self.rope_inner
        y1 = out_round(ri(x1 * c) + ri(-x2 * s))  # q and k are stored in bf16 (k in the cache)
        y2 = out_round(ri(x2 * c) + ri(x1 * s))
        return torch.cat([y1, y2], -1)

    def attention(self, q, k, v, prompt_len):
        # q [T, H, D], k/v [T, KV, D]; causal. transformers' eager: bf16 scores, scaled in bf16, fp32 softmax, bf16
        # probabilities, bf16 output. The engine: fp32 scores and softmax; probabilities rounded to bf16 only for
        # rows of the prefill (tensor cores), output rounded once.
        T, H, D = q.shape
        group = H // k.shape[1]
        k = k.repeat_interleave(group, 1)
        v = v.repeat_interleave(group, 1)
        scores = torch.einsum("thd,shd->hts", q, k)
        if self.kind == "transformers":
            scores = self.r(self.r(scores) * (D ** -0.5))
        else:
            scores = scores * (D ** -0.5)
        mask = torch.ones(T, T, dtype=torch.bool).triu(1)
        scores = scores.masked_fill(mask, float("-inf"))
        if self.kind == "nvrar":  # flash prefill: un-normalised bf16 probabilities, fp32 row sum, divided at the end
            m = scores.max(-1, keepdim=True).values
            e = torch.exp(scores - m)
            rows = torch.arange(T) < prompt_len
            pe = torch.where(rows[None, :, None], self.r(e), e)
            return self.gemm_in(torch.einsum("hts,shd->thd", pe, v) / e.sum(-1).T[:, :, None])
        p = torch.softmax(scores, -1)
        if self.kind == "transformers":
            return self.r(torch.einsum("hts,shd->thd", self.r(p), v))
        return torch.einsum("hts,shd->thd", p, v)


def forward(model, num):
    D, H, KV, eps = model["D"], model["heads"], model["kv_heads"], model["eps"]
    tokens = model["tokens"]
    T = tokens.shape[0]
    positions = torch.arange(T)
    h = model["embed"][tokens]
    for layer in model["layers"]:
        x = num.rmsnorm(h, eps)
        q = num.gemm(x, layer["q"], num.qkv_out).view(T, H, D)
        k = num.gemm(x, layer["k"], num.qkv_out).view(T, KV, D)
        v = num.kv(num.gemm(x, layer["v"], num.qkv_out)).view(T, KV, D)
        q = num.rope(q, positions, model["inv_freq"], num.q)
        k = num.rope(k, positions, model["inv_freq"], num.kv)
        a = num.attention(q, k, v, model["prompt_len"]).reshape(T, H * D)
        h = num.residual(h + num.gemm(a, layer["o"], num.o_down_out))
        x = num.rmsnorm(h, eps)
        gate = num.gemm(x, layer["gate"], num.gate_up_out)
        up = num.gemm(x, layer["up"], num.gate_up_out)
        act = num.gemm_in(num.silu_inner(gate * torch.sigmoid(gate)) * up)
        h = num.residual(h + num.gemm(act, layer["down"], num.o_down_out))
    x = num.rmsnorm(h, eps)
    logits = num.gemm(x, model["head"], num.logits)
    start = model["prompt_len"] - 1
    return logits[start:start + model["steps"]]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cases", default=",".join(CASES))
    ap.add_argument("--seeds", type=int, default=4)
    ap.add_argument("--layers", type=int, default=2, help="decoder layers (the check's models have 2)")
    ap.add_argument("--fix", action="append", default=[],
                    help=f"comma-separated roundings to remove, any of {', '.join(FIXES)}, or fp32_activations "
                    f"(the engine's NVRAR_LLM_ACTIVATIONS=fp32: {','.join(FP32_ACTIVATIONS)}); repeat for variants")
    args = ap.parse_args()
    expand = lambda f: FP32_ACTIVATIONS if f == "fp32_activations" else (f,)
    variants = [()] + [tuple(g for f in spec.split(",") if f for g in expand(f)) for spec in args.fix]
    for v in variants:
        bad = [f for f in v if f not in FIXES]
        if bad:
            sys.exit(f"precision_model.py: --fix {','.join(bad)}: not one of {', '.join(FIXES)}")
    torch.set_num_threads(max(1, torch.get_num_threads()))
    print("| case | nvrar variant | worst ratio | median ratio | steps ours > transformers |")
    print("|---|---|---|---|---|")
    for case in args.cases.split(","):
        if case not in CASES:
            sys.exit(f"precision_model.py: --cases {case}: not one of {', '.join(CASES)}")
        ratios = {v: [] for v in variants}
        for seed in range(args.seeds):
            model = make_model(case, seed, args.layers)
            truth = forward(model, Numerics("truth"))
            hf_err = (forward(model, Numerics("transformers")) - truth).abs().amax(-1)
            for v in variants:
                ours = (forward(model, Numerics("nvrar", v)) - truth).abs().amax(-1)
                ratios[v] += (ours / hf_err).tolist()
        for v in variants:
            r = torch.tensor(ratios[v])
            print(f"| {case} | {'+'.join(v) or 'today'} | {r.max():.2f} | {r.median():.2f} | "
                  f"{int((r > 1).sum())} of {len(r)} |", flush=True)


if __name__ == "__main__":
    main()
