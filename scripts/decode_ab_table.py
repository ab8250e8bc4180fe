#!/usr/bin/env python3
"""The decode attention A/B table (scripts/engine-long-bench.sh with LONG_DECODE_AB=1): nvrar-llm's decode step with
two NVRAR_LLM_DECODE_ATTENTION kernels (default splitk, the base, and fused, the candidate), run alternately, beside
cuDNN's decode attention, in one markdown table.

    python3 scripts/decode_ab_table.py OUT [--cases 'decode:1:8192 decode:8:8192 ...'] [--repeat 2]
        [--kernels 'splitk fused'] [--md FILE]

Reads from OUT (any file may be missing; its cells then say so):
  engine_decode_b<B>_<C>_<kernel>_r<n>.json  `nvrar-llm bench --json` of run n with each kernel:
      decode_step_ms_median (the graph-replayed step) and breakdown_us.attention (one eager, instrumented step:
      RoPE + KV append + attention of every layer); without the JSON, the .log beside it names the failure.
  cudnn_attention.json  scripts/bench_cudnn_attention.py --json (attention only, ms_model = x 32 layers, tb_per_s)
Per case: each run's step time (median over runs in the ratio), candidate / base, the eager step's attention time of
both, the K/V bytes the candidate's attention read per second (B x (C + output_len) x layers x --kv-bytes, over that
time: a lower bound, as the time includes RoPE and the KV append), cuDNN's attention, and issue 17's goal for the
step. Writes OUT/decode_ab.md (or --md) and prints it. Python 3 standard library only (scripts/test_decode_ab_table.py).
"""
import argparse
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from long_table import GOALS_MS, FULL_LAYERS, fmt_ms, last_error_line, load_json, parse_case  # noqa: E402

KERNELS = ("splitk", "fused")  # the default base and candidate
NAMES = {"splitk": "split-K", "fused": "fused", "mma": "mma"}
DEFAULT_CASES = "decode:1:8192 decode:8:8192 decode:32:8192 decode:1:32768 decode:8:32768 decode:1:131072"
# K and V bytes per token and layer of Llama-3.1-8B at TP 1: 8 KV heads x head_dim 128 x 2 tensors x 2 bytes.
KV_BYTES_8B = 8 * 128 * 2 * 2


def run_stem(case, kernel, rep):
    return f"engine_{case[0]}_b{case[1]}_{case[2]}_{kernel}_r{rep}"


def runs_of(out_dir, case, kernel, repeat):
    """[(step ms or None, attention us or None, json or None, failure text)] per run."""
    runs = []
    for rep in range(1, repeat + 1):
        stem = run_stem(case, kernel, rep)
        data = load_json(os.path.join(out_dir, stem + ".json"))
        if data is None:
            log = os.path.join(out_dir, stem + ".log")
            why = last_error_line(log) if os.path.exists(log) else ""
            runs.append((None, None, None, (f"failed ({why})" if why else "failed") if os.path.exists(log)
                         else "not run"))
            continue
        step = data.get("decode_step_ms_median")
        attn = (data.get("breakdown_us") or {}).get("attention")
        step = step if isinstance(step, (int, float)) and step > 0 else None
        attn = attn if isinstance(attn, (int, float)) and attn > 0 else None
        runs.append((step, attn, data, "" if step else f"no decode_step_ms_median in {stem}.json"))
    return runs


def steps_cell(runs):
    """'5.160 / 5.171 ms' over the runs, a failure's text where none ran; and the median step (or None)."""
    steps = [r[0] for r in runs if r[0] is not None]
    if not steps:
        return (runs[0][3] if runs else "not run"), None
    cell = " / ".join(f"{s:.3f}" for s in steps) + " ms"
    failed = len(runs) - len(steps)
    if failed:
        cell += f" ({failed} of {len(runs)} failed)"
    return cell, statistics.median(steps)


def median_attention_ms(runs):
    values = [r[1] / 1e3 for r in runs if r[1] is not None]
    return statistics.median(values) if values else None


def layers_of(runs):
    for r in runs:
        if r[2] is not None and isinstance(r[2].get("num_layers"), int):
            return r[2]["num_layers"]
    return None


def output_len_of(runs, default=64):
    for r in runs:
        if r[2] is not None and isinstance(r[2].get("output_len"), int):
            return r[2]["output_len"]
    return default


def cudnn_cell(cudnn, case):
    r = cudnn.get(f"{case[0]}:{case[1]}:{case[2]}")
    if r is None:
        return "not run", None
    if r.get("status", "ok") != "ok" or not isinstance(r.get("ms_model"), (int, float)):
        return str(r.get("status", "no result"))[:60], None
    cell = fmt_ms(r["ms_model"])
    if isinstance(r.get("tb_per_s"), (int, float)):
        cell += f" ({r['tb_per_s']:.2f} TB/s)"
    return cell, r["ms_model"]


def build_table(out_dir, cases, repeat, kv_bytes, kernels=KERNELS):
    base, cand = kernels
    nb, nc = NAMES.get(base, base), NAMES.get(cand, cand)
    cudnn_data = load_json(os.path.join(out_dir, "cudnn_attention.json"))
    cudnn = {r.get("case"): r for r in (cudnn_data or {}).get("results", []) if isinstance(r, dict)}
    lines = [f"| case | {nb} step (runs) | {nc} step (runs) | {nc} / {nb} | eager attention {nb} -> {nc} "
             f"| {nc} K/V read | cuDNN attention (x 32 layers) | {nc} vs cuDNN | goal (step) | {nc} vs goal |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for case in cases:
        runs = {k: runs_of(out_dir, case, k, repeat) for k in kernels}
        cells, med = {}, {}
        for k in kernels:
            cells[k], med[k] = steps_cell(runs[k])
        ratio = f"{med[cand] / med[base]:.3f}" if med[base] and med[cand] else "-"
        attn = {k: median_attention_ms(runs[k]) for k in kernels}
        attn_cell = " -> ".join(fmt_ms(attn[k]) if attn[k] else "-" for k in kernels)
        layers = layers_of(runs[cand]) or layers_of(runs[base])
        kv_cell = "-"
        if attn[cand] and layers:
            tokens = case[1] * (case[2] + output_len_of(runs[cand]))
            kv_cell = f">= {tokens * layers * kv_bytes / (attn[cand] * 1e-3) / 1e12:.2f} TB/s"
        cudnn_text, cudnn_ms = cudnn_cell(cudnn, case)
        vs_cudnn = "-"
        if attn[cand] and cudnn_ms and layers:
            vs_cudnn = f"{attn[cand] * FULL_LAYERS / layers / cudnn_ms:.2f}x its time"
        goal = GOALS_MS.get(case)
        goal_text, verdict = "-", "-"
        if goal is not None:
            goal_text = f"<= {fmt_ms(goal)}"
            if layers is not None and layers != FULL_LAYERS:
                verdict = f"n/a ({layers} layers)"
            elif med[cand] is None:
                verdict = "miss (did not run)"
            else:
                verdict = "pass" if med[cand] <= goal else f"miss (+{100 * (med[cand] / goal - 1):.0f}%)"
        label = f"decode b{case[1]} ctx {case[2]}"
        lines.append(f"| {label} | {cells[base]} | {cells[cand]} | {ratio} | {attn_cell} | {kv_cell} | "
                     f"{cudnn_text} | {vs_cudnn} | {goal_text} | {verdict} |")
    lines.append("")
    lines.append(f"Runs alternate {nb} and {nc} ({repeat} of each, files engine_decode_b<B>_<C>_<kernel>_r<n>.*); "
                 "step = `decode_step_ms_median` (graph-replayed steps), ratio of the medians over runs. Eager "
                 "attention = `breakdown_us.attention` of one instrumented eager step (RoPE + KV append + attention, "
                 f"all layers); {nc} K/V read = the cache bytes of that step over it (a lower bound).")
    if cudnn_data:
        lines.append(f"cuDNN (scripts/bench_cudnn_attention.py): torch {cudnn_data.get('torch', '?')}, "
                     f"cuDNN {cudnn_data.get('cudnn', '?')}; {cudnn_data.get('method', '')}")
    return "\n".join(lines) + "\n"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out_dir")
    ap.add_argument("--cases", default=DEFAULT_CASES, help="space-separated decode:batch:context list")
    ap.add_argument("--repeat", type=int, default=2, help="runs of each kernel per case")
    ap.add_argument("--kv-bytes", type=int, default=KV_BYTES_8B,
                    help="K and V bytes per token and layer (default Llama-3.1-8B at TP 1: 4096)")
    ap.add_argument("--kernels", default=" ".join(KERNELS),
                    help="the base and the candidate NVRAR_LLM_DECODE_ATTENTION kernels (default 'splitk fused')")
    ap.add_argument("--md", default="", help="output file (default OUT/decode_ab.md)")
    args = ap.parse_args(argv)
    kernels = tuple(args.kernels.split())
    if len(kernels) != 2 or kernels[0] == kernels[1]:
        print(f"decode_ab_table.py: --kernels '{args.kernels}': expected two different kernels", file=sys.stderr)
        return 2
    try:
        cases = [parse_case(c) for c in args.cases.split()]
    except ValueError as e:
        print(e, file=sys.stderr)
        return 2
    cases = [c for c in cases if c[0] == "decode"]  # prefill cases run once, outside the A/B
    if args.repeat < 1:
        print("decode_ab_table.py: --repeat must be positive", file=sys.stderr)
        return 2
    table = build_table(args.out_dir, cases, args.repeat, args.kv_bytes, kernels)
    md = args.md or os.path.join(args.out_dir, "decode_ab.md")
    with open(md, "w") as f:
        f.write(table)
    print(table, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
