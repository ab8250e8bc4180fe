#!/usr/bin/env python3
"""The PyTorch reference for nvrar-llm's long-prompt benchmark (scripts/engine-long-bench.sh, issue 17): a compact
Llama-3.1-8B written for this repository in the style of gpt-fast (eager prefill through SDPA, compiled decode
replayed from a CUDA graph), timed the way nvrar-llm bench times itself.

    python3 scripts/bench_torch_llama.py --cases prefill:1:2048 prefill:8:2048 decode:1:8192 decode:8:8192 \\
        [--layers 32] [--warmup 1] [--iters 3] [--decode-steps 64] [--decode-mode compile|eager]
        [--decode-attention auto|folded|gqa|repeat] [--json out.json]

Model: hidden 4096, 32 layers, 32 query heads, 8 KV heads, head_dim 128, MLP 14336, vocab 128256, RMSNorm, plain
RoPE (theta 500000; Llama-3's frequency scaling does not change the work), dummy bf16 weights (random, scaled by
1/sqrt(fan_in)), fused QKV and gate/up matrices, a static KV cache per layer [batch][kv_heads][max_seq][128].
- prefill:B:T: B x T prompt tokens from an empty cache, eager: every layer, K/V written to the cache, causal
  F.scaled_dot_product_attention on the fresh K/V (GQA through enable_gqa=True where torch picks a fused kernel for
  it, else K/V repeated to 32 heads), then RMSNorm + lm_head + argmax on the last token. CUDA events around it;
  median of --iters after --warmup (fewer when one call is long: --case-budget-s).
- decode:B:C: one token per sequence at position C, the cache's first C positions filled with random values instead
  of a prefill (only the time matters). Each layer is one torch.compile'd function (compiled once per shape, reused
  by all layers); the 32 layers and the head are captured in one CUDA graph by hand, and the median of
  --decode-steps replays is reported, as nvrar-llm's graph decode. Attention: SDPA of the one query per head against
  the whole cache with a length mask, in the fastest of three forms timed on the card first (attention alone, all
  layers, in a CUDA graph; --decode-attention picks one): 'folded' (the 4 query heads of a KV head as 4 query rows,
  [B, 8, 4, 128] against [B, 8, max_seq, 128], no copy), 'gqa' (enable_gqa=True) or 'repeat' (K/V repeated to 32
  heads each step, as gpt-fast). If compiling or capturing fails, eager layers in the graph, then eager without a
  graph; the mode and form that ran are recorded.
Each case's out-of-memory is recorded as "out of memory" and the next case runs; the JSON is rewritten after every
case, so a run cut short keeps what finished. NVLink multicast stays off (the variables are forced here)."""
import argparse
import json
import os
import statistics
import sys
import time
import traceback

os.environ["NCCL_NVLS_ENABLE"] = "0"
os.environ["NVSHMEM_DISABLE_NVLS"] = "1"
os.environ["TORCH_SYMM_MEM_DISABLE_MULTICAST"] = "1"

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

HIDDEN, LAYERS, HEADS, KV_HEADS, HEAD_DIM, FFN, VOCAB = 4096, 32, 32, 8, 128, 14336, 128256
GROUP = HEADS // KV_HEADS  # query heads per KV head
ROPE_THETA, NORM_EPS = 500000.0, 1e-5
SEQ_ALIGN = 128  # cache length granularity: keeps the mask's rows aligned for the fused SDPA kernels
DECODE_FORMS = ("folded", "gqa", "repeat")  # decode_attention's ways of serving 4 query heads per KV head
SDPA_BACKENDS = {0: "math", 1: "flash", 2: "efficient", 3: "cudnn", 4: "overrideable"}  # at::SDPBackend values
DEVICE, DTYPE = "cuda", torch.bfloat16  # scripts/test_torch_llama.py runs the layers on the CPU in float32


class Layer:
    """One decoder layer's weights (plain tensors, so one compiled function serves every layer)."""

    def __init__(self, rand):
        self.wqkv = rand((HEADS + 2 * KV_HEADS) * HEAD_DIM, HIDDEN)
        self.wo = rand(HIDDEN, HEADS * HEAD_DIM)
        self.w13 = rand(2 * FFN, HIDDEN)  # gate and up, stacked
        self.w2 = rand(HIDDEN, FFN)
        self.attn_norm = torch.ones(HIDDEN, dtype=DTYPE, device=DEVICE)
        self.mlp_norm = torch.ones(HIDDEN, dtype=DTYPE, device=DEVICE)

    def args(self):
        return self.wqkv, self.wo, self.w13, self.w2, self.attn_norm, self.mlp_norm


class Model:
    def __init__(self, layers, seed):
        gen = torch.Generator(device=DEVICE).manual_seed(seed)

        def rand(rows, cols):
            w = torch.randn(rows, cols, generator=gen, device=DEVICE, dtype=DTYPE)
            return w.mul_(cols ** -0.5)

        self.embed = rand(VOCAB, HIDDEN)
        self.layers = [Layer(rand) for _ in range(layers)]
        self.final_norm = torch.ones(HIDDEN, dtype=DTYPE, device=DEVICE)
        self.lm_head = rand(VOCAB, HIDDEN)


def rope_tables(length):
    """cos and sin [length][HEAD_DIM / 2], fp32 (rotate-half convention, as Hugging Face's Llama)."""
    inv_freq = 1.0 / ROPE_THETA ** (torch.arange(0, HEAD_DIM, 2, device=DEVICE, dtype=torch.float32) / HEAD_DIM)
    angles = torch.outer(torch.arange(length, device=DEVICE, dtype=torch.float32), inv_freq)
    return angles.cos(), angles.sin()


def rms_norm(x, weight):
    xf = x.float()
    return (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + NORM_EPS)).type_as(x) * weight


def rope(x, cos, sin):
    """x [B, T, H, D]; cos, sin broadcastable to [B, T, H, D / 2]."""
    x1, x2 = x.float().chunk(2, dim=-1)
    return torch.cat((x1 * cos - x2 * sin, x2 * cos + x1 * sin), dim=-1).type_as(x)


def mlp(h, w13, w2, mlp_norm):
    gate, up = F.linear(rms_norm(h, mlp_norm), w13).chunk(2, dim=-1)
    return h + F.linear(F.silu(gate) * up, w2)


def split_qkv(h, wqkv, attn_norm, cos, sin):
    b, t, _ = h.shape
    q, k, v = F.linear(rms_norm(h, attn_norm), wqkv).split(
        [HEADS * HEAD_DIM, KV_HEADS * HEAD_DIM, KV_HEADS * HEAD_DIM], dim=-1)
    q = rope(q.view(b, t, HEADS, HEAD_DIM), cos, sin)
    k = rope(k.view(b, t, KV_HEADS, HEAD_DIM), cos, sin)
    return q, k, v.view(b, t, KV_HEADS, HEAD_DIM)


def prefill_layer(h, layer, k_cache, v_cache, cos, sin, gqa):
    """h [B, T, HIDDEN] from position 0; writes K/V [0, T) of the cache."""
    wqkv, wo, w13, w2, attn_norm, mlp_norm = layer.args()
    b, t, _ = h.shape
    q, k, v = split_qkv(h, wqkv, attn_norm, cos, sin)
    q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)  # [B, heads, T, D] views
    k_cache[:, :, :t] = k
    v_cache[:, :, :t] = v
    if gqa == "native":
        o = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
    else:
        o = F.scaled_dot_product_attention(q, k.repeat_interleave(GROUP, dim=1), v.repeat_interleave(GROUP, dim=1),
                                           is_causal=True)
    h = h + F.linear(o.transpose(1, 2).reshape(b, t, HEADS * HEAD_DIM), wo)
    return mlp(h, w13, w2, mlp_norm)


def decode_attention(q, k_cache, v_cache, mask, form):
    """q [B, 1, HEADS, D] against the whole cache [B, KV_HEADS, max_seq, D] under mask; [B, 1, HEADS * D]. Forms:
    'folded': a KV head's 4 query heads as 4 query rows of one head (no copy); 'gqa': enable_gqa=True;
    'repeat': K/V repeated to 32 heads every step (gpt-fast's way)."""
    b = q.shape[0]
    if form == "folded":
        o = F.scaled_dot_product_attention(q.view(b, KV_HEADS, GROUP, HEAD_DIM), k_cache, v_cache, attn_mask=mask)
    elif form == "gqa":
        o = F.scaled_dot_product_attention(q.transpose(1, 2), k_cache, v_cache, attn_mask=mask, enable_gqa=True)
    else:
        o = F.scaled_dot_product_attention(q.transpose(1, 2), k_cache.repeat_interleave(GROUP, dim=1),
                                           v_cache.repeat_interleave(GROUP, dim=1), attn_mask=mask)
    return o.reshape(b, 1, HEADS * HEAD_DIM)  # heads in order either way: head = kv_head * GROUP + member


def decode_layer(h, wqkv, wo, w13, w2, attn_norm, mlp_norm, k_cache, v_cache, cos, sin, pos, mask, form):
    """h [B, 1, HIDDEN] at position pos (a one-element int64 tensor); mask [1, 1, 1, max_seq], True up to pos."""
    q, k, v = split_qkv(h, wqkv, attn_norm, cos, sin)
    k_cache[:, :, pos] = k.transpose(1, 2)
    v_cache[:, :, pos] = v.transpose(1, 2)
    h = h + F.linear(decode_attention(q, k_cache, v_cache, mask, form), wo)
    return mlp(h, w13, w2, mlp_norm)


def head(h, final_norm, lm_head):
    """Greedy next token of the last position."""
    return F.linear(rms_norm(h[:, -1], final_norm), lm_head).argmax(dim=-1)


def sdpa_choice(q, k, v, **kw):
    try:
        return SDPA_BACKENDS.get(int(torch._fused_sdp_choice(q, k, v, **kw)), "?")
    except Exception as e:  # a private function: its absence only costs the label
        return f"unknown ({type(e).__name__})"


def pick_prefill_gqa():
    """'native' (enable_gqa=True) where torch runs it in a fused kernel, else 'repeat'; and the backend's name."""
    q = torch.randn(1, HEADS, 256, HEAD_DIM, device=DEVICE, dtype=DTYPE)
    k = torch.randn(1, KV_HEADS, 256, HEAD_DIM, device=DEVICE, dtype=DTYPE)
    native = sdpa_choice(q, k, k, is_causal=True, enable_gqa=True)
    if native not in ("math", "?") and not native.startswith("unknown"):
        try:
            F.scaled_dot_product_attention(q, k, k, is_causal=True, enable_gqa=True)
            torch.cuda.synchronize()
            return "native", native
        except RuntimeError:
            pass
    kr = k.repeat_interleave(GROUP, dim=1)
    return "repeat", sdpa_choice(q, kr, kr, is_causal=True)


def aligned(n):
    return (n + SEQ_ALIGN - 1) // SEQ_ALIGN * SEQ_ALIGN


def new_cache(model, batch, max_seq, fill):
    shape = (batch, KV_HEADS, max_seq, HEAD_DIM)
    make = (lambda: torch.randn(shape, device=DEVICE, dtype=DTYPE)) if fill else \
        (lambda: torch.empty(shape, device=DEVICE, dtype=DTYPE))
    return [make() for _ in model.layers], [make() for _ in model.layers]


def run_prefill(model, batch, tokens, args, gqa, cos_all, sin_all):
    k_cache, v_cache = new_cache(model, batch, aligned(tokens), fill=False)
    prompt = torch.randint(0, VOCAB, (batch, tokens), device=DEVICE)
    cos = cos_all[:tokens].view(1, tokens, 1, -1)
    sin = sin_all[:tokens].view(1, tokens, 1, -1)
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)

    def once():
        start.record()
        h = F.embedding(prompt, model.embed)
        for i, layer in enumerate(model.layers):
            h = prefill_layer(h, layer, k_cache[i], v_cache[i], cos, sin, gqa)
        head(h, model.final_norm, model.lm_head)
        end.record()
        end.synchronize()
        return start.elapsed_time(end)

    budget_ms = args.case_budget_s * 1e3
    spent = 0.0
    for _ in range(args.warmup):
        spent += once()
        if spent > budget_ms:
            break
    times = []
    for _ in range(args.iters):
        times.append(once())
        if sum(times) > budget_ms:
            break
    ms = statistics.median(times)
    return {"ms_median": ms, "ms_all": times, "tokens_per_s": batch * tokens / (ms / 1e3),
            "sdpa": f"{gqa} GQA"}


def build_decode_step(model, layer_fn, token, k_cache, v_cache, cos_all, sin_all, context, form):
    """A function running one decode step of `token` [B, 1] at position `context`, on static inputs."""
    max_seq = k_cache[0].shape[2]
    pos = torch.tensor([context], device=DEVICE, dtype=torch.int64)
    positions = torch.arange(max_seq, device=DEVICE)

    def step():
        h = F.embedding(token, model.embed)
        cos = cos_all.index_select(0, pos).view(1, 1, 1, -1)
        sin = sin_all.index_select(0, pos).view(1, 1, 1, -1)
        mask = (positions <= pos).view(1, 1, 1, max_seq)
        for i, layer in enumerate(model.layers):
            h = layer_fn(h, *layer.args(), k_cache[i], v_cache[i], cos, sin, pos, mask, form)
        return head(h, model.final_norm, model.lm_head)

    return step


def capture(step, warmup=3):
    """Warm-up on a side stream (compiles, plans cuBLAS/cuDNN), then one CUDA graph of the step."""
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(warmup):
            step()
    torch.cuda.current_stream().wait_stream(side)
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        step()
    torch.cuda.synchronize()
    return graph


def time_steps(run, steps):
    events = [torch.cuda.Event(enable_timing=True) for _ in range(steps + 1)]
    for _ in range(3):
        run()
    events[0].record()
    for i in range(steps):
        run()
        events[i + 1].record()
    torch.cuda.synchronize()
    return [events[i].elapsed_time(events[i + 1]) for i in range(steps)]


def pick_decode_form(batch, k_cache, v_cache, forms):
    """The decode attention form with the shortest time on this card: every layer's cache once, in a CUDA graph
    (eager where capture fails), median of 5; with each form's time in us per layer, or why it did not run."""
    q = torch.randn(batch, 1, HEADS, HEAD_DIM, device=DEVICE, dtype=DTYPE)
    mask = torch.ones(1, 1, 1, k_cache[0].shape[2], device=DEVICE, dtype=torch.bool)
    times = {}
    for form in forms:
        def layers():
            for k, v in zip(k_cache, v_cache):
                decode_attention(q, k, v, mask, form)
        try:
            try:
                run = capture(layers, warmup=1).replay
            except torch.cuda.OutOfMemoryError:
                raise
            except Exception:
                torch.cuda.synchronize()
                run = layers
            times[form] = round(statistics.median(time_steps(run, 5)) * 1e3 / len(k_cache), 2)
        except Exception as e:  # an SDPA form torch cannot run here: the others remain
            times[form] = f"{type(e).__name__}: {str(e).splitlines()[0][:120] if str(e) else ''}"
        torch.cuda.synchronize()
        torch.cuda.empty_cache()
    ran = [f for f in forms if isinstance(times[f], float)]
    if not ran:
        raise RuntimeError(f"no decode attention form ran: {times}")
    return min(ran, key=lambda f: times[f]), times


def run_decode(model, batch, context, args, compiled_layer, cos_all, sin_all):
    k_cache, v_cache = new_cache(model, batch, aligned(context + 1), fill=True)
    token = torch.randint(0, VOCAB, (batch, 1), device=DEVICE)
    forms = DECODE_FORMS if args.decode_attention == "auto" else (args.decode_attention,)
    form, form_us = pick_decode_form(batch, k_cache, v_cache, forms)
    q = torch.randn(batch, HEADS, 1, HEAD_DIM, device=DEVICE, dtype=DTYPE)
    mask = torch.ones(1, 1, 1, k_cache[0].shape[2], device=DEVICE, dtype=torch.bool)
    k0, v0 = k_cache[0], v_cache[0]
    if form == "folded":
        backend = sdpa_choice(q.view(batch, KV_HEADS, GROUP, HEAD_DIM), k0, v0, attn_mask=mask)
    elif form == "gqa":
        backend = sdpa_choice(q, k0, v0, attn_mask=mask, enable_gqa=True)
    else:
        backend = sdpa_choice(q, k0.repeat_interleave(GROUP, dim=1), v0.repeat_interleave(GROUP, dim=1),
                              attn_mask=mask)
    result = {"sdpa": f"{form} GQA, backend {backend} (eager choice)", "attention_us_per_layer": form_us}
    modes = (["compile+graph"] if args.decode_mode == "compile" else []) + ["eager+graph", "eager"]
    failures = []
    for mode in modes:
        layer_fn = compiled_layer if mode == "compile+graph" else decode_layer
        step = build_decode_step(model, layer_fn, token, k_cache, v_cache, cos_all, sin_all, context, form)
        t0 = time.time()
        try:
            if mode == "eager":
                times = time_steps(step, args.decode_steps)
            else:
                graph = capture(step)
                result["compile_and_capture_s"] = round(time.time() - t0, 1)
                times = time_steps(graph.replay, args.decode_steps)
                del graph
        except torch.cuda.OutOfMemoryError:
            raise
        except Exception as e:  # the next mode runs; the reason is kept
            failures.append(f"{mode}: {type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}")
            print(f"  {mode} failed:\n{traceback.format_exc(limit=3)}", flush=True)
            torch.cuda.synchronize()
            continue
        result.update({"ms_median": statistics.median(times), "ms_all": [round(t, 4) for t in times],
                       "mode": mode})
        break
    if failures:
        result["failed_modes"] = failures
    if "ms_median" not in result:
        raise RuntimeError("every decode mode failed: " + "; ".join(failures))
    return result


def parse_case(text):
    parts = text.split(":")
    if len(parts) != 3 or parts[0] not in ("prefill", "decode") or not parts[1].isdigit() or not parts[2].isdigit() \
            or int(parts[1]) < 1 or int(parts[2]) < 1:
        raise SystemExit(f"bench_torch_llama.py: case '{text}': expected prefill:BATCH:TOKENS or decode:BATCH:CONTEXT")
    return parts[0], int(parts[1]), int(parts[2])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cases", nargs="+", default=["prefill:1:2048", "decode:1:8192"])
    ap.add_argument("--layers", type=int, default=LAYERS, help="truncate the model (default 32)")
    ap.add_argument("--warmup", type=int, default=1, help="untimed prefills per case")
    ap.add_argument("--iters", type=int, default=3, help="timed prefills per case (median)")
    ap.add_argument("--decode-steps", type=int, default=64, help="timed graph replays per decode case (median)")
    ap.add_argument("--decode-mode", choices=["compile", "eager"], default="compile")
    ap.add_argument("--decode-attention", choices=("auto",) + DECODE_FORMS, default="auto",
                    help="decode SDPA form (auto: the fastest of the three, timed per case before compiling)")
    ap.add_argument("--case-budget-s", type=float, default=20.0,
                    help="stop a prefill case's warm-up / timed calls once they have taken this long")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", default="")
    args = ap.parse_args()
    cases = [parse_case(c) for c in args.cases]
    if not 1 <= args.layers <= LAYERS or args.iters < 1 or args.warmup < 0 or args.decode_steps < 1:
        raise SystemExit("bench_torch_llama.py: --layers must be 1..32, --iters and --decode-steps positive")
    if not torch.cuda.is_available():
        raise SystemExit("bench_torch_llama.py: no CUDA device visible to torch")

    for name, value in (("recompile_limit", 64), ("cache_size_limit", 64)):  # one recompile per decode shape
        try:
            if hasattr(torch._dynamo.config, name):
                setattr(torch._dynamo.config, name, value)
        except Exception:  # a renamed or deprecated knob: the default (8 shapes) suffices for a few cases
            pass
    compiled_layer = torch.compile(decode_layer, fullgraph=True)
    report = {"tool": "bench_torch_llama.py", "torch": torch.__version__, "cuda": torch.version.cuda,
              "card": torch.cuda.get_device_name(), "layers": args.layers,
              "method": (f"prefill eager (median of <= {args.iters} after {args.warmup} warm-up), decode "
                         f"{args.decode_mode} layers in one CUDA graph (median of {args.decode_steps} replays)"),
              "results": []}

    def save():
        if args.json:
            with open(args.json, "w") as f:
                json.dump(report, f, indent=2)

    with torch.no_grad():
        t0 = time.time()
        model = Model(args.layers, args.seed)
        longest = max(length for _, _, length in cases) + 1
        cos_all, sin_all = rope_tables(aligned(longest))
        gqa, gqa_backend = pick_prefill_gqa()
        report["prefill_sdpa"] = f"{gqa} GQA, backend {gqa_backend}"
        print(f"# bench_torch_llama: torch {torch.__version__} on {report['card']}, {args.layers} layers, "
              f"weights made in {time.time() - t0:.1f} s; prefill SDPA: {report['prefill_sdpa']}", flush=True)
        for kind, batch, length in cases:
            name = f"{kind}:{batch}:{length}"
            entry = {"case": name, "kind": kind, "batch": batch, "len": length}
            t0 = time.time()
            try:
                if kind == "prefill":
                    entry.update(run_prefill(model, batch, length, args, gqa, cos_all, sin_all))
                else:
                    entry.update(run_decode(model, batch, length, args, compiled_layer, cos_all, sin_all))
                entry["status"] = "ok"
            except torch.cuda.OutOfMemoryError:
                entry["status"] = "out of memory"
            except Exception as e:
                entry["status"] = f"error: {type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}"
                traceback.print_exc()
            entry["wall_s"] = round(time.time() - t0, 1)
            torch.cuda.synchronize()
            torch.cuda.empty_cache()
            report["results"].append(entry)
            save()
            shown = f"{entry['ms_median']:.3f} ms" if entry["status"] == "ok" else entry["status"]
            how = ", ".join(str(entry[k]) for k in ("mode", "sdpa", "attention_us_per_layer") if k in entry)
            print(f"{name}: {shown} ({how + '; ' if how else ''}{entry['wall_s']} s wall)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
