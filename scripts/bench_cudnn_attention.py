#!/usr/bin/env python3
"""Attention-only anchors for nvrar-llm's long-prompt benchmark (scripts/engine-long-bench.sh, issue 17): cuDNN's
fused attention through torch's scaled_dot_product_attention at Llama-3.1-8B's attention shapes (32 query heads,
8 KV heads, head_dim 128, bf16), the floor an engine's attention can be held to on the same card.

    python3 scripts/bench_cudnn_attention.py --cases prefill:1:8192 decode:1:8192 decode:8:8192 \\
        [--layers 32] [--replays 10] [--backends cudnn,flash] [--all-backends] [--json out.json]

- prefill:B:T: causal attention of B x T tokens from position 0 (q [B, 32, T, 128], K/V [B, 8, T, 128]). Reported:
  ms per layer, x 32 for the model, TFLOP/s counting B * 2 * 2 * T * T / 2 * 128 * 32 (two matrix products over
  the causal half).
- decode:B:C: one query per sequence against a cache of C positions (q [B, 32, 1, 128], K/V [B, 8, C, 128]), each
  of --layers layers reading its own cache (so no layer finds another's K/V in L2). Reported: ms per layer, x 32,
  and the K/V bytes read (B * C * 8 * 128 * 2 bytes * 2) over the time, in TB/s.
Variants: GQA through enable_gqa=True, or (decode) the 4 query heads of a KV head folded into the query length
([B, 8, 4, 128]), or (prefill) K/V repeated to 32 heads beforehand; K/V stored [B, H, S, D] or [B, S, H, D]. For
decode every variant is timed and the fastest counts; for prefill the first that runs. Backends in --backends
order (sdpa_kernel with one backend, so nothing falls back silently): the first with a variant that runs gives the
case's number, and its name is recorded; --all-backends times the others too (listed under "variants").
Timing: the calls of one measurement (--layers calls for decode; enough calls of the one layer for ~20 ms for
prefill) are captured in one CUDA graph (eager calls where capture fails, recorded as graph: false), 2 warm-up
replays, then the median of --replays replays timed with CUDA events, divided by the calls. Out of memory is
recorded per case. NVLink multicast stays off (the variables are forced here)."""
import argparse
import json
import os
import statistics
import sys
import traceback

os.environ["NCCL_NVLS_ENABLE"] = "0"
os.environ["NVSHMEM_DISABLE_NVLS"] = "1"
os.environ["TORCH_SYMM_MEM_DISABLE_MULTICAST"] = "1"

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch.nn.attention import SDPBackend, sdpa_kernel  # noqa: E402

HEADS, KV_HEADS, HEAD_DIM, MODEL_LAYERS = 32, 8, 128, 32
GROUP = HEADS // KV_HEADS
BACKENDS = {"cudnn": SDPBackend.CUDNN_ATTENTION, "flash": SDPBackend.FLASH_ATTENTION,
            "efficient": SDPBackend.EFFICIENT_ATTENTION}
DEVICE = "cuda"
PREFILL_TARGET_FLOP = 10e12  # calls per prefill measurement: about 10 TFLOP of work, ~15-20 ms on an H200


def make(batch, heads, seq, layout):
    """A [batch, heads, seq, 128] bf16 tensor stored as [B, H, S, D] ('bhsd') or [B, S, H, D] ('bshd')."""
    if layout == "bhsd":
        return torch.randn(batch, heads, seq, HEAD_DIM, device=DEVICE, dtype=torch.bfloat16)
    return torch.randn(batch, seq, heads, HEAD_DIM, device=DEVICE, dtype=torch.bfloat16).transpose(1, 2)


def prefill_calls(batch, tokens, variant, layout):
    """The attention call of one layer (repeated by the caller)."""
    q = make(batch, HEADS, tokens, layout)
    kv_heads = KV_HEADS if variant == "gqa" else HEADS
    k, v = make(batch, kv_heads, tokens, layout), make(batch, kv_heads, tokens, layout)
    gqa = variant == "gqa"
    return [lambda: F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=gqa)]


def decode_calls(batch, context, variant, layout, layers):
    """One call per layer, each against its own K/V cache."""
    if variant == "gqa":
        q = make(batch, HEADS, 1, layout)
    else:  # folded: a KV head's 4 query heads as 4 query rows
        q = make(batch, KV_HEADS, GROUP, layout)
    calls = []
    for _ in range(layers):
        k, v = make(batch, KV_HEADS, context, layout), make(batch, KV_HEADS, context, layout)
        calls.append(lambda k=k, v=v: F.scaled_dot_product_attention(q, k, v, enable_gqa=variant == "gqa"))
    return calls


def measure(calls, repeat, replays):
    """Milliseconds per call (median over replays of `repeat` rounds of `calls`), and whether a graph ran them."""
    def run():
        for _ in range(repeat):
            for c in calls:
                c()

    run()  # plans cuDNN's graph, chooses kernels; raises here if the backend cannot run the shape
    torch.cuda.synchronize()
    graph = None
    try:
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            run()
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            run()
        torch.cuda.synchronize()
        replay = graph.replay
    except Exception as e:  # eager timing instead; its launch cost is in the number, so say so
        print(f"  graph capture failed ({type(e).__name__}: {str(e).splitlines()[0][:120] if str(e) else ''}); "
              f"timing eager calls", flush=True)
        graph, replay = None, run
        torch.cuda.synchronize()
    events = [torch.cuda.Event(enable_timing=True) for _ in range(replays + 1)]
    for _ in range(2):
        replay()
    events[0].record()
    for i in range(replays):
        replay()
        events[i + 1].record()
    torch.cuda.synchronize()
    ms = statistics.median(events[i].elapsed_time(events[i + 1]) for i in range(replays))
    return ms / (repeat * len(calls)), graph is not None


def run_case(kind, batch, length, args):
    if kind == "prefill":
        variants = [(v, l) for l in ("bshd", "bhsd") for v in ("gqa", "expanded")]
        flop = batch * 2 * 2 * length * length / 2 * HEAD_DIM * HEADS
        repeat = max(1, min(MODEL_LAYERS, round(PREFILL_TARGET_FLOP / flop)))
    else:
        variants = [(v, l) for l in ("bhsd", "bshd") for v in ("gqa", "folded")]
        kv_bytes = batch * length * KV_HEADS * HEAD_DIM * 2 * 2
    tried, best = [], None
    for backend in args.backends:
        for variant, layout in variants:
            entry = {"backend": backend, "variant": variant, "layout": layout}
            try:
                with sdpa_kernel([BACKENDS[backend]]):
                    if kind == "prefill":
                        ms, graphed = measure(prefill_calls(batch, length, variant, layout), repeat, args.replays)
                    else:
                        ms, graphed = measure(decode_calls(batch, length, variant, layout, args.layers), 1,
                                              args.replays)
                entry.update({"status": "ok", "ms_per_layer": ms, "graph": graphed})
            except torch.cuda.OutOfMemoryError:
                entry["status"] = "out of memory"
            except RuntimeError as e:
                entry["status"] = f"not run: {str(e).splitlines()[0][:160] if str(e) else type(e).__name__}"
            torch.cuda.synchronize()
            torch.cuda.empty_cache()
            tried.append(entry)
            if entry["status"] == "ok":
                if best is None or (best["backend"] == backend and entry["ms_per_layer"] < best["ms_per_layer"]):
                    best = entry
                if kind == "prefill":
                    break  # compute-bound: the layout and GQA form hardly matter; keep the time short
        if best is not None and not args.all_backends:
            break
    result = {"variants": tried}
    if best is None:
        oom = any(t["status"] == "out of memory" for t in tried)
        last = tried[-1]["status"] if tried else "no backend tried"
        result["status"] = "out of memory" if oom else f"no backend ran: {last}"
        return result
    ms = best["ms_per_layer"]
    result.update({"status": "ok", "backend": best["backend"], "variant": f"{best['variant']} {best['layout']}",
                   "graph": best["graph"], "ms_per_layer": ms, "ms_model": ms * MODEL_LAYERS})
    if kind == "prefill":
        result["tflops"] = flop / (ms * 1e-3) / 1e12
    else:
        result["tb_per_s"] = kv_bytes / (ms * 1e-3) / 1e12
    return result


def parse_case(text):
    parts = text.split(":")
    if len(parts) != 3 or parts[0] not in ("prefill", "decode") or not parts[1].isdigit() or not parts[2].isdigit() \
            or int(parts[1]) < 1 or int(parts[2]) < 2:
        raise SystemExit(f"bench_cudnn_attention.py: case '{text}': expected prefill:BATCH:TOKENS or "
                         f"decode:BATCH:CONTEXT (length >= 2)")
    return parts[0], int(parts[1]), int(parts[2])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cases", nargs="+", default=["prefill:1:8192", "decode:1:8192", "decode:8:8192",
                                                   "decode:1:32768"])
    ap.add_argument("--layers", type=int, default=MODEL_LAYERS,
                    help="decode: K/V caches in one measurement (default 32); results are scaled to 32 layers")
    ap.add_argument("--replays", type=int, default=10)
    ap.add_argument("--backends", default="cudnn,flash", help="comma-separated, tried in order: cudnn,flash,efficient")
    ap.add_argument("--all-backends", action="store_true", help="time every backend, not only the first that runs")
    ap.add_argument("--json", default="")
    args = ap.parse_args()
    cases = [parse_case(c) for c in args.cases]
    args.backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    unknown = [b for b in args.backends if b not in BACKENDS]
    if unknown or not args.backends or args.layers < 1 or args.replays < 1:
        raise SystemExit(f"bench_cudnn_attention.py: --backends from {','.join(BACKENDS)} (got {unknown}), "
                         f"--layers and --replays positive")
    if not torch.cuda.is_available():
        raise SystemExit("bench_cudnn_attention.py: no CUDA device visible to torch")
    report = {"tool": "bench_cudnn_attention.py", "torch": torch.__version__, "cudnn": torch.backends.cudnn.version(),
              "card": torch.cuda.get_device_name(), "layers_per_measurement": args.layers,
              "method": (f"SDPA with one backend ({','.join(args.backends)}, first that runs), calls in one CUDA "
                         f"graph, median of {args.replays} replays; ms_model = ms per layer x {MODEL_LAYERS}"),
              "results": []}
    print(f"# bench_cudnn_attention: torch {torch.__version__}, cuDNN {report['cudnn']}, {report['card']}",
          flush=True)
    with torch.no_grad():
        for kind, batch, length in cases:
            entry = {"case": f"{kind}:{batch}:{length}", "kind": kind, "batch": batch, "len": length}
            try:
                entry.update(run_case(kind, batch, length, args))
            except torch.cuda.OutOfMemoryError:
                entry["status"] = "out of memory"
            except Exception as e:
                entry["status"] = f"error: {type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}"
                traceback.print_exc()
            torch.cuda.empty_cache()
            report["results"].append(entry)
            if args.json:
                with open(args.json, "w") as f:
                    json.dump(report, f, indent=2)
            if entry["status"] == "ok":
                rate = (f"{entry['tflops']:.0f} TFLOP/s" if kind == "prefill" else f"{entry['tb_per_s']:.2f} TB/s")
                print(f"{entry['case']}: {entry['ms_per_layer'] * 1e3:.1f} us/layer, {entry['ms_model']:.3f} ms "
                      f"x {MODEL_LAYERS}, {rate} [{entry['backend']}, {entry['variant']}, "
                      f"{'graph' if entry['graph'] else 'eager'}]", flush=True)
            else:
                print(f"{entry['case']}: {entry['status']}", flush=True)
            for t in entry.get("variants", []):
                shown = f"{t['ms_per_layer'] * 1e3:.1f} us/layer" if t["status"] == "ok" else t["status"]
                print(f"    {t['backend']:>9} {t['variant']:>8} {t['layout']}: {shown}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
