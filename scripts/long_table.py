#!/usr/bin/env python3
"""The long-prompt benchmark's table (scripts/engine-long-bench.sh): nvrar-llm beside the PyTorch reference and
cuDNN's attention floor, against the goals of issue 17, in one markdown table.

    python3 scripts/long_table.py OUT [--cases 'prefill:1:2048 decode:1:8192 ...'] [--md OUT/long_context.md]

Reads from OUT (any file may be missing; its cells then say so):
  engine_<kind>_b<B>_<L>.json  `nvrar-llm bench --json`: prefill cases read prefill_ms_median (and
                               prefill_tokens_per_s, ttft_ms_median and prefill_breakdown_us.attention, the
                               attention phase of one instrumented prefill, where the engine writes them), decode cases
                               decode_step_ms_median. Without the JSON, engine_<kind>_b<B>_<L>.log names the failure.
  torch_llama.json             scripts/bench_torch_llama.py --json (ms_median per case, or a status)
  cudnn_attention.json         scripts/bench_cudnn_attention.py --json (attention only, ms_model = x 32 layers)
Writes OUT/long_context.md (one table, then a few lines on where the numbers came from) and prints it.
A case is `prefill:BATCH:TOKENS` or `decode:BATCH:CONTEXT`. The goals hold for the whole 32-layer model on an H200:
with fewer layers (LONG_LAYERS), or where the engine's JSON names another card, the pass/miss column says n/a.
Python 3 standard library only (tested by scripts/test_long_table.py)."""
import argparse
import json
import os
import sys

DEFAULT_CASES = ("prefill:1:2048 prefill:1:8192 prefill:8:2048 prefill:8:8192 prefill:1:32768 prefill:1:131072 "
                 "decode:1:128 decode:8:128 decode:1:8192 decode:8:8192 decode:1:32768 decode:32:8192 "
                 "decode:1:131072").split()

# Issue 17's goals on one H200, Llama-3.1-8B, milliseconds; None = the case only has to run.
GOALS_MS = {
    ("prefill", 1, 2048): 50.0,
    ("prefill", 1, 8192): 220.0,
    ("prefill", 8, 2048): 380.0,
    ("prefill", 8, 8192): None,
    ("prefill", 1, 32768): 1400.0,
    ("prefill", 1, 131072): None,
    ("decode", 1, 128): 4.0,
    ("decode", 8, 128): 4.4,
    ("decode", 1, 8192): 4.2,
    ("decode", 8, 8192): 6.3,
    ("decode", 1, 32768): 5.0,
    ("decode", 32, 8192): None,  # the decode attention's goal there is cuDNN's K/V rate (its column)
    ("decode", 1, 131072): None,
}
GOAL_CARD = "H200"
FULL_LAYERS = 32
MPIRUN_NOISE = ("Process name:", "Exit code:", "Primary job", "mpirun detected", "mpirun noticed", "Per user",
                "[", "Child job", "prterun", "job.", "the job", "a non-zero exit code")


def parse_case(text):
    """'prefill:1:2048' -> ('prefill', 1, 2048); ValueError naming the text otherwise."""
    parts = text.split(":")
    if len(parts) != 3 or parts[0] not in ("prefill", "decode"):
        raise ValueError(f"long_table.py: case '{text}': expected prefill:BATCH:TOKENS or decode:BATCH:CONTEXT")
    try:
        batch, length = int(parts[1]), int(parts[2])
    except ValueError:
        raise ValueError(f"long_table.py: case '{text}': batch and length must be integers") from None
    if batch < 1 or length < 1:
        raise ValueError(f"long_table.py: case '{text}': batch and length must be positive")
    return parts[0], batch, length


def case_name(case):
    return f"{case[0]}:{case[1]}:{case[2]}"


def case_label(case):
    kind, batch, length = case
    return f"prefill {batch} x {length}" if kind == "prefill" else f"decode b{batch} ctx {length}"


def engine_stem(case):
    return f"engine_{case[0]}_b{case[1]}_{case[2]}"


def fmt_ms(ms):
    if ms >= 100:
        return f"{ms:.1f} ms"
    if ms >= 10:
        return f"{ms:.2f} ms"
    return f"{ms:.3f} ms"


def load_json(path):
    """The parsed file, None when absent; a file that does not parse is reported on stderr and treated as absent."""
    if not os.path.exists(path):
        return None
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        print(f"long_table.py: {path}: unreadable ({e}); its cells say 'no result'", file=sys.stderr)
        return None


def last_error_line(log_path):
    """The last line of a log that names an error, shortened, or ''."""
    try:
        with open(log_path, errors="replace") as f:
            lines = [l.strip() for l in f if l.strip()]
    except OSError:
        return ""
    # mpirun's own report of a failed rank (separators, "Process name:", "Exit code:") says nothing of the cause.
    lines = [l for l in lines if any(ch.isalnum() for ch in l) and not l.startswith(MPIRUN_NOISE)]
    hits = [l for l in lines if l.startswith(("nvrar-llm:", "nvrar:")) or
            any(w in l.lower() for w in ("error", "out of memory", "failed", "what()"))]
    line = hits[-1] if hits else (lines[-1] if lines else "")
    return line if len(line) <= 90 else line[:87] + "..."


def attention_phase_ms(data):
    """The attention phase of bench's one instrumented prefill (prefill_breakdown_us.attention) in ms, or None."""
    us = (data.get("prefill_breakdown_us") or {}).get("attention")
    return us / 1e3 if isinstance(us, (int, float)) and us > 0 else None


def engine_card(out_dir, case):
    """The card the engine's JSON names, or None."""
    data = load_json(os.path.join(out_dir, engine_stem(case) + ".json"))
    return data.get("card") if isinstance(data, dict) else None


def engine_cell(out_dir, case):
    """(cell text, value in ms or None, ran: True/False/None for not run, layers or None, extra note or '')."""
    stem = engine_stem(case)
    data = load_json(os.path.join(out_dir, stem + ".json"))
    log = os.path.join(out_dir, stem + ".log")
    if data is None:
        if os.path.exists(log):
            why = last_error_line(log)
            return (f"failed ({why})" if why else "failed (no JSON)"), None, False, None, ""
        return "not run", None, None, None, ""
    key = "prefill_ms_median" if case[0] == "prefill" else "decode_step_ms_median"
    ms = data.get(key)
    layers = data.get("num_layers")
    if not isinstance(ms, (int, float)) or ms <= 0:
        return f"no {key} in {stem}.json", None, False, layers, ""
    note = ""
    if case[0] == "prefill":
        tps = data.get("prefill_tokens_per_s") or case[1] * case[2] / (ms / 1e3)
        note = f"{case_label(case)}: {tps:,.0f} prompt tokens/s"
        if isinstance(data.get("ttft_ms_median"), (int, float)):
            note += f", TTFT {fmt_ms(data['ttft_ms_median'])}"
        if attention_phase_ms(data) is not None:
            note += f", attention phase {fmt_ms(attention_phase_ms(data))}"
    return fmt_ms(ms), ms, True, layers, note


def results_by_case(data):
    if not data:
        return {}
    return {r.get("case"): r for r in data.get("results", []) if isinstance(r, dict)}


def torch_cell(results, case):
    r = results.get(case_name(case))
    if r is None:
        return "not run"
    if r.get("status", "ok") != "ok" or not isinstance(r.get("ms_median"), (int, float)):
        return str(r.get("status", "no result"))[:60]
    return fmt_ms(r["ms_median"])


def cudnn_cell(results, case):
    r = results.get(case_name(case))
    if r is None:
        return "not run"
    if r.get("status", "ok") != "ok" or not isinstance(r.get("ms_model"), (int, float)):
        return str(r.get("status", "no result"))[:60]
    cell = fmt_ms(r["ms_model"])
    if case[0] == "prefill" and isinstance(r.get("tflops"), (int, float)):
        cell += f" ({r['tflops']:.0f} TFLOP/s)"
    if case[0] == "decode" and isinstance(r.get("tb_per_s"), (int, float)):
        cell += f" ({r['tb_per_s']:.2f} TB/s)"
    backend = r.get("backend", "")
    if backend and backend != "cudnn":
        cell += f" [{backend}]"
    return cell


def goal_cell(case):
    if case not in GOALS_MS:
        return "-"
    goal = GOALS_MS[case]
    return "runs" if goal is None else f"<= {fmt_ms(goal)}"


def verdict(case, ms, ran, layers, card=None):
    if case not in GOALS_MS:
        return "-"
    if ran is None:
        return "not run"
    if layers is not None and layers != FULL_LAYERS:
        return f"n/a ({layers} layers)"
    if card and GOAL_CARD not in card:
        return f"n/a (goals are for an {GOAL_CARD})"
    if not ran:
        return "miss (did not run)"
    goal = GOALS_MS[case]
    if goal is None:
        return "pass (ran)"
    return "pass" if ms <= goal else f"miss (+{100 * (ms / goal - 1):.0f}%)"


def build_table(out_dir, cases):
    torch_data = load_json(os.path.join(out_dir, "torch_llama.json"))
    cudnn_data = load_json(os.path.join(out_dir, "cudnn_attention.json"))
    torch_results, cudnn_results = results_by_case(torch_data), results_by_case(cudnn_data)
    lines = ["| case | nvrar-llm | PyTorch reference | cuDNN attention floor (attention only, x 32 layers) | goal "
             "| vs goal |",
             "|---|---|---|---|---|---|"]
    notes = []
    for case in cases:
        cell, ms, ran, layers, note = engine_cell(out_dir, case)
        lines.append(f"| {case_label(case)} | {cell} | {torch_cell(torch_results, case)} | "
                     f"{cudnn_cell(cudnn_results, case)} | {goal_cell(case)} | "
                     f"{verdict(case, ms, ran, layers, engine_card(out_dir, case))} |")
        if note:
            notes.append(note)
    lines.append("")
    lines.append("nvrar-llm: prefill = `prefill_ms_median` (the whole batch), decode = `decode_step_ms_median` "
                 "(one step of the batch); engine_<case>.json/.log beside this file.")
    if notes:
        lines.append("nvrar-llm prefill throughput: " + "; ".join(notes) + ".")
    if torch_data:
        lines.append(f"PyTorch reference (scripts/bench_torch_llama.py): torch {torch_data.get('torch', '?')}, "
                     f"{torch_data.get('card', '?')}, {torch_data.get('layers', '?')} layers; "
                     f"{torch_data.get('method', '')}")
    if cudnn_data:
        lines.append(f"cuDNN floor (scripts/bench_cudnn_attention.py): torch {cudnn_data.get('torch', '?')}, "
                     f"cuDNN {cudnn_data.get('cudnn', '?')}; {cudnn_data.get('method', '')}")
    return "\n".join(lines) + "\n"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out_dir")
    ap.add_argument("--cases", default=" ".join(DEFAULT_CASES), help="space-separated kind:batch:length list")
    ap.add_argument("--md", default="", help="output file (default OUT/long_context.md)")
    args = ap.parse_args(argv)
    try:
        cases = [parse_case(c) for c in args.cases.split()]
    except ValueError as e:
        print(e, file=sys.stderr)
        return 2
    table = build_table(args.out_dir, cases)
    md = args.md or os.path.join(args.out_dir, "long_context.md")
    with open(md, "w") as f:
        f.write(table)
    print(table, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
