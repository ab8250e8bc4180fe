#!/usr/bin/env python3
"""report.md of scripts/cluster-check.sh, from what its steps left in the report folder.

    python3 scripts/cluster_report.py OUT --nodes N --gpus-per-node G [--info TEXT]

Reads OUT/steps.tsv (step, exit status, log), bench_n1_g<G>.json and bench_n<N>_g<G>.json (nvrar-bench --json),
tuning_n<N>_g<G>.json (nvrar-bench --tune), model.json (nvrar-model --json) and heatmap.png; writes OUT/report.md:
the steps, the measured times with NVRAR's speedup over NCCL, what auto decided by, the tuning table, the fitted
parameters and the predicted speedup heatmap (the PNG where matplotlib made one, and always as text, by
scripts/plot_model_heatmap.py). Standard library only; a missing file leaves its section saying so.
"""
import argparse
import csv
import io
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import plot_model_heatmap  # noqa: E402  (the heatmap's loader and text form)


def load_json(path):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def steps_section(out):
    lines = ["## Steps", "", "| step | exit status | log |", "|---|---|---|"]
    path = os.path.join(out, "steps.tsv")
    if not os.path.exists(path):
        return lines + ["| (no steps.tsv) | | |"], False
    ok = True
    with open(path, encoding="utf-8") as f:
        for row in csv.reader(f, delimiter="\t"):
            if len(row) != 3:
                continue
            name, rc, log = row
            ok = ok and rc == "0"
            lines.append(f"| {name} | {'ok' if rc == '0' else 'FAILED (' + rc + ')'} | [{log}]({log}) |")
    return lines, ok


def decided_by(out, log_name):
    """The bench's note on what NVRAR's auto decided by (a table, the first-use tune, the cost model)."""
    try:
        with open(os.path.join(out, log_name), encoding="utf-8", errors="replace") as f:
            for line in f:
                if "decides by" in line:
                    return line.strip().lstrip("#").strip()
    except OSError:
        pass
    return None


def bench_section(out, name, title):
    report = load_json(os.path.join(out, name + ".json"))
    lines = [f"## {title}", ""]
    if report is None:
        return lines + [f"No {name}.json (the bench step did not run or failed)."]
    times = {}
    for r in report.get("results", []):
        times.setdefault(r["bytes"], {})[r["algorithm"]] = r
    algorithms = [a for a in ("nvrar", "hierarchical", "nccl") if any(a in t for t in times.values())]
    lines.append(f"{report.get('ranks')} ranks = {report.get('nodes')} node(s) x {report.get('gpus_per_node')} GPUs on "
                 f"{report.get('hosts', '?')} host(s), {report.get('device')}, {report.get('dtype')}.")
    note = decided_by(out, name + ".log")
    if note:
        lines.append(f"NVRAR's auto: {note}.")
    lines += ["", "| size | " + " | ".join(f"{a} (us)" for a in algorithms) + " | nccl / nvrar | wrong |",
              "|---:|" + "---:|" * len(algorithms) + "---:|---:|"]
    for b in sorted(times):
        row = times[b]
        cells = [f"{row[a]['time_us']:.1f}" if a in row else "" for a in algorithms]
        speedup = (row["nccl"]["time_us"] / row["nvrar"]["time_us"]
                   if "nccl" in row and "nvrar" in row and row["nvrar"]["time_us"] > 0 else None)
        wrong = sum(r.get("wrong", 0) for r in row.values())
        lines.append(f"| {plot_model_heatmap.human_size(b)} | " + " | ".join(cells) +
                     f" | {'' if speedup is None else f'{speedup:.2f}'} | {wrong} |")
    return lines


def tuning_section(out, name):
    table = load_json(os.path.join(out, name))
    lines = ["## Tuning table", ""]
    if table is None:
        return lines + [f"No {name} (the tune step did not run or failed)."]
    lines += [f"`{name}` ({table.get('card')}, {table.get('created')}); sizes above the last go to NCCL. Use it with "
              "`NVRAR_TUNING_FILE`, or copy it into `tuning/`.", "",
              "| up to | algorithm | threads | blocks | bulk | us |", "|---:|---|---:|---:|---:|---:|"]
    for e in table.get("entries", []):
        lines.append(f"| {plot_model_heatmap.human_size(e['max_bytes'])} | {e['algorithm']} | {e.get('threads', 0)} | "
                     f"{e.get('blocks', 0)} | {e.get('bulk', -1)} | {e.get('time_us', 0):.1f} |")
    return lines


def model_section(out):
    lines = ["## Cost model, calibrated", ""]
    path = os.path.join(out, "model.json")
    model = load_json(path)
    if model is None:
        return lines + ["No model.json (the model step did not run or failed)."]
    preset = model.get("preset", {})
    intra, inter = preset.get("intra", {}), preset.get("inter", {})
    cal, net = model.get("calibration"), model.get("network_calibration")
    lines.append(f"Preset `{preset.get('name')}` at {preset.get('gpus_per_node')} GPUs per node, after the fits:")
    lines.append("")
    lines.append(f"- NVLink: alpha {intra.get('alpha_us', 0):.2f} us, {intra.get('bandwidth_gbs', 0):.0f} GB/s, "
                 f"{intra.get('message_us', 0):.2f} us per further message"
                 + (f" (fitted to '{cal.get('intra_algorithm')}', rms error {100 * cal['intra_rms_relative_error']:.1f}%)"
                    if cal and cal.get("intra_fitted") else " (not fitted: the preset's)"))
    if net:
        lines.append(f"- Network: alpha {net['alpha_us']:.2f} us, {net['bandwidth_gbs']:.1f} GB/s per NIC (fitted, "
                     f"rms error {100 * net['rms_relative_error']:.1f}%, worst {100 * net['max_relative_error']:.1f}%)")
    else:
        lines.append(f"- Network: alpha {inter.get('alpha_us', 0):.2f} us, {inter.get('bandwidth_gbs', 0):.1f} GB/s "
                     "per NIC (not fitted: the preset's; a run of several nodes, one per host, fits it)")
    notes = (cal or {}).get("notes", []) + (net or {}).get("notes", [])
    lines += [f"- note: {n}" for n in notes]
    lines += ["", "## Predicted speedup over NCCL (Figure 8)", ""]
    if os.path.exists(os.path.join(out, "heatmap.png")):
        lines += ["![NVRAR's predicted speedup over NCCL](heatmap.png)", ""]
    report, gpus, sizes, nodes_of, grid = plot_model_heatmap.load(path)
    text = io.StringIO()
    plot_model_heatmap.print_ascii(report, gpus, sizes, nodes_of, grid, out=text)
    return lines + ["```", text.getvalue().rstrip(), "```"]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", help="the report folder of scripts/cluster-check.sh")
    ap.add_argument("--nodes", type=int, required=True)
    ap.add_argument("--gpus-per-node", type=int, required=True)
    ap.add_argument("--info", default="", help="one line on how the run was made")
    args = ap.parse_args()
    n, g = args.nodes, args.gpus_per_node
    steps, ok = steps_section(args.out)
    lines = [f"# NVRAR cluster check: {n} x {g} GPUs", "",
             f"{args.info}; report written {time.strftime('%Y-%m-%d %H:%M:%S %Z')}. "
             f"{'Every step passed.' if ok else 'Some step FAILED: see its log.'}", ""]
    lines += steps + [""]
    if n > 1:
        lines += bench_section(args.out, f"bench_n1_g{g}", f"nvrar-bench, one node x {g}") + [""]
    lines += bench_section(args.out, f"bench_n{n}_g{g}", f"nvrar-bench, {n} nodes x {g}") + [""]
    lines += tuning_section(args.out, f"tuning_n{n}_g{g}.json") + [""]
    lines += model_section(args.out) + [""]
    with open(os.path.join(args.out, "report.md"), "w", encoding="utf-8") as f:
        f.write("\n".join(lines))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
