#!/usr/bin/env python3
"""Heatmap of NVRAR's predicted speedup over NCCL by (GPU count, message size), from `nvrar-model --json`.

    nvrar-model --preset h100-ndr400 --nodes 1..64 --sizes 4K..64M --json model.json
    python3 scripts/plot_model_heatmap.py model.json                 # model_speedup.png (matplotlib), else ASCII
    python3 scripts/plot_model_heatmap.py model.json --ascii --csv model_speedup.csv

x: message size, y: GPU count (nodes x GPUs per node), cell: speedup = NCCL's best (ring or tree) / NVRAR;
above 1 NVRAR is predicted faster. Needs only the Python standard library for the ASCII table and the CSV;
the PNG needs matplotlib, used only when it is installed.
"""
import argparse
import csv
import json
import math
import os
import sys


def human_size(nbytes):
    for unit in ("B", "K", "M", "G"):
        if nbytes < 1024 or nbytes % 1024 != 0 or unit == "G":
            return f"{nbytes:g}{unit}"
        nbytes //= 1024
    return f"{nbytes:g}G"


def load(path):
    with open(path, encoding="utf-8") as f:
        report = json.load(f)
    if report.get("tool") != "nvrar-model" or "rows" not in report:
        sys.exit(f"plot_model_heatmap: {path} is not an nvrar-model --json report")
    rows = report["rows"]
    gpus = sorted({r["gpus"] for r in rows})
    sizes = sorted({r["bytes"] for r in rows})
    nodes_of = {r["gpus"]: r["nodes"] for r in rows}
    cell = {(r["gpus"], r["bytes"]): r["speedup"] for r in rows}
    grid = [[cell.get((g, b)) for b in sizes] for g in gpus]
    return report, gpus, sizes, nodes_of, grid


def write_csv(path, gpus, sizes, nodes_of, grid):
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["gpus", "nodes"] + [str(b) for b in sizes])
        for g, row in zip(gpus, grid):
            w.writerow([g, nodes_of[g]] + ["" if v is None else f"{v:.4f}" for v in row])


def print_ascii(report, gpus, sizes, nodes_of, grid, out=sys.stdout):
    # Shade by log2(speedup): '#' NVRAR >= 4x faster ... ' ' about even ... '-' NCCL faster.
    def shade(v):
        if v is None:
            return "?"
        l2 = math.log2(v)
        if l2 >= 2:
            return "#"
        if l2 >= 1:
            return "+"
        if l2 >= 0.25:
            return ":"
        if l2 > -0.25:
            return " "
        return "-"

    preset = report.get("preset", {}).get("name", "?")
    print(f"# NVRAR speedup over NCCL (nccl-best / nvrar), preset {preset}", file=out)
    print("# shade: '#' >= 4x, '+' >= 2x, ':' >= 1.19x, ' ' within 1.19x, '-' NCCL faster", file=out)
    width = 7
    print(f"{'GPUs':>5} {'nodes':>5} |" + "".join(f"{human_size(b):>{width}}" for b in sizes), file=out)
    print("-" * (13 + width * len(sizes)), file=out)
    for g, row in zip(reversed(gpus), reversed(grid)):
        cells = "".join(f"{'?' if v is None else f'{v:.2f}':>{width - 1}}{shade(v)}" for v in row)
        print(f"{g:>5} {nodes_of[g]:>5} |{cells}", file=out)


def plot_png(path, report, gpus, sizes, nodes_of, grid):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import TwoSlopeNorm

    values = [[float("nan") if v is None else v for v in row] for row in grid]
    flat = [v for row in values for v in row if not math.isnan(v)]
    lo, hi = min(flat + [0.99]), max(flat + [1.01])
    fig, ax = plt.subplots(figsize=(1.0 + 0.6 * len(sizes), 1.0 + 0.45 * len(gpus)))
    im = ax.imshow(values, origin="lower", aspect="auto", cmap="RdBu",
                   norm=TwoSlopeNorm(vmin=lo, vcenter=1.0, vmax=hi))
    ax.set_xticks(range(len(sizes)), [human_size(b) for b in sizes], rotation=45)
    ax.set_yticks(range(len(gpus)), [f"{g} ({nodes_of[g]}n)" for g in gpus])
    for i, row in enumerate(values):
        for j, v in enumerate(row):
            if not math.isnan(v):
                ax.text(j, i, f"{v:.1f}", ha="center", va="center", fontsize=7)
    preset = report.get("preset", {})
    ax.set_xlabel("message size")
    ax.set_ylabel("GPUs (nodes)")
    ax.set_title(f"predicted NVRAR speedup over NCCL: {preset.get('name', '?')}")
    fig.colorbar(im, ax=ax, label="nccl-best / nvrar")
    fig.tight_layout()
    fig.savefig(path, dpi=150)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("json", help="nvrar-model --json output")
    ap.add_argument("--out", help="PNG to write (default: <json stem>_speedup.png)")
    ap.add_argument("--csv", help="also write the speedup grid as CSV")
    ap.add_argument("--ascii", action="store_true", help="print the ASCII heatmap even when matplotlib is there")
    args = ap.parse_args()

    report, gpus, sizes, nodes_of, grid = load(args.json)
    if args.csv:
        write_csv(args.csv, gpus, sizes, nodes_of, grid)
    try:
        import matplotlib  # noqa: F401

        have_matplotlib = True
    except ImportError:
        have_matplotlib = False
    if args.ascii or not have_matplotlib:
        if not have_matplotlib and not args.ascii:
            print("# matplotlib not found: ASCII heatmap instead of a PNG", file=sys.stderr)
        print_ascii(report, gpus, sizes, nodes_of, grid)
    if have_matplotlib and not args.ascii:
        out = args.out or os.path.splitext(args.json)[0] + "_speedup.png"
        plot_png(out, report, gpus, sizes, nodes_of, grid)
        print(f"wrote {out}")


if __name__ == "__main__":
    main()
