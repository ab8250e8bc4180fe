#!/usr/bin/env python3
"""The prefill attention A/B table (scripts/engine-long-bench.sh with LONG_PREFILL_AB=1): nvrar-llm's prefill time
with each NVRAR_LLM_PREFILL_ATTENTION kernel, run in turn, in one markdown table.

    python3 scripts/prefill_ab_table.py OUT [--cases 'prefill:1:2048 ...'] [--kernels 'wgmma-tma wgmma-ws']
                                        [--repeat 2] [--md FILE]

Reads OUT/engine_prefill_b<B>_<T>_<kernel>_r<n>.json (`nvrar-llm bench --json`: prefill_ms_median); a missing JSON
is reported from the .log beside it. Per case: each kernel's runs, its median (and, where the JSON has the
instrumented prefill's split, prefill_breakdown_us.attention, the median of its attention phase: RoPE + KV append +
attention), the ratio to the first kernel, and issue 17's goal. Writes OUT/prefill_ab.md (or --md) and prints it.
Python 3 standard library only (scripts/test_prefill_ab_table.py).
"""
import argparse
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from long_table import (GOALS_MS, FULL_LAYERS, attention_phase_ms, fmt_ms, last_error_line, load_json,  # noqa: E402
                        parse_case)

KERNELS = ("flash", "flash128", "wgmma", "wgmma2", "wgmma-tma", "wgmma-ws", "splitk")


def run_stem(case, kernel, rep):
    return f"engine_{case[0]}_b{case[1]}_{case[2]}_{kernel}_r{rep}"


def runs_of(out_dir, case, kernel, repeat):
    """[(prefill ms or None, layers or None, failure text, attention ms or None)] per run."""
    runs = []
    for rep in range(1, repeat + 1):
        stem = run_stem(case, kernel, rep)
        data = load_json(os.path.join(out_dir, stem + ".json"))
        if data is None:
            log = os.path.join(out_dir, stem + ".log")
            if not os.path.exists(log):
                runs.append((None, None, "not run", None))
            else:
                why = last_error_line(log)
                runs.append((None, None, f"failed ({why})" if why else "failed", None))
            continue
        ms = data.get("prefill_ms_median")
        ms = ms if isinstance(ms, (int, float)) and ms > 0 else None
        layers = data.get("num_layers") if isinstance(data.get("num_layers"), int) else None
        runs.append((ms, layers, "" if ms else f"no prefill_ms_median in {stem}.json", attention_phase_ms(data)))
    return runs


def build_table(out_dir, cases, kernels, repeat):
    head = "| case | " + " | ".join(f"{k} (runs; median)" for k in kernels)
    head += " | " + " | ".join(f"{k} / {kernels[0]}" for k in kernels[1:]) + " | goal | best vs goal |"
    lines = [head, "|" + "---|" * (2 + len(kernels) + len(kernels) - 1 + 1)]
    for case in cases:
        med, cells, layers = {}, [], None
        for k in kernels:
            runs = runs_of(out_dir, case, k, repeat)
            values = [r[0] for r in runs if r[0] is not None]
            layers = layers or next((r[1] for r in runs if r[1] is not None), None)
            if not values:
                med[k] = None
                cells.append(runs[0][2] if runs else "not run")
                continue
            med[k] = statistics.median(values)
            cell = " / ".join(f"{v:.1f}" for v in values) + f"; {fmt_ms(med[k])}"
            attention = [r[3] for r in runs if r[3] is not None]
            if attention:
                cell += f" (attention {fmt_ms(statistics.median(attention))})"
            if len(values) < len(runs):
                cell += f" ({len(runs) - len(values)} of {len(runs)} failed)"
            cells.append(cell)
        base = med[kernels[0]]
        ratios = [f"{med[k] / base:.3f}" if base and med[k] else "-" for k in kernels[1:]]
        goal = GOALS_MS.get(case)
        best = min((v for v in med.values() if v), default=None)
        goal_text, verdict = "-", "-"
        if goal is not None:
            goal_text = f"<= {fmt_ms(goal)}"
            if layers is not None and layers != FULL_LAYERS:
                verdict = f"n/a ({layers} layers)"
            elif best is None:
                verdict = "miss (did not run)"
            else:
                verdict = "pass" if best <= goal else f"miss (+{100 * (best / goal - 1):.0f}%)"
        label = f"prefill {case[1]} x {case[2]}"
        lines.append(f"| {label} | " + " | ".join(cells) + " | " + " | ".join(ratios) +
                     f" | {goal_text} | {verdict} |")
    lines.append("")
    lines.append(f"Runs take the kernels in turn ({repeat} of each, files engine_prefill_b<B>_<T>_<kernel>_r<n>.*); "
                 "time = `prefill_ms_median` of `nvrar-llm bench`; attention = the attention phase (RoPE, KV append, "
                 "attention) of its one instrumented prefill, median over the runs; ratio of the medians.")
    return "\n".join(lines) + "\n"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out_dir")
    ap.add_argument("--cases", default="prefill:1:2048 prefill:8:2048 prefill:1:8192 prefill:1:32768")
    ap.add_argument("--kernels", default="wgmma-tma wgmma-ws", help="NVRAR_LLM_PREFILL_ATTENTION values, in order")
    ap.add_argument("--repeat", type=int, default=2, help="runs of each kernel per case")
    ap.add_argument("--md", default="", help="output file (default OUT/prefill_ab.md)")
    args = ap.parse_args(argv)
    try:
        cases = [c for c in (parse_case(t) for t in args.cases.split()) if c[0] == "prefill"]
    except ValueError as e:
        print(e, file=sys.stderr)
        return 2
    kernels = args.kernels.split()
    unknown = [k for k in kernels if k not in KERNELS]
    if not kernels or unknown:
        print(f"prefill_ab_table.py: --kernels '{args.kernels}': each of {', '.join(KERNELS)}", file=sys.stderr)
        return 2
    if args.repeat < 1:
        print("prefill_ab_table.py: --repeat must be positive", file=sys.stderr)
        return 2
    table = build_table(args.out_dir, cases, kernels, args.repeat)
    md = args.md or os.path.join(args.out_dir, "prefill_ab.md")
    with open(md, "w") as f:
        f.write(table)
    print(table, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
