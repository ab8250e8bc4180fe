#!/usr/bin/env python3
"""Side-by-side table of nvrar-bench and bench_torch_symm.py JSON files of one machine and rank count:
time per algorithm per size (us), the best anchor (NCCL, NCCL symmetric, PyTorch), and the ratios to it of NVRAR's
auto choice on arbitrary pointers (nvrar), on registered buffers (nvrar-registered, where measured), and of its best
kernel at that size (min of nvrar, oneshot, hierarchical, ll128, push, registered, nvrar-registered).

    python3 scripts/compare_bench.py bench_np4_g4.json torch_np4.json [--markdown] [--keep-wrong] [--each]

--each: instead, the ratio of nvrar (and nvrar-registered, where measured) to every anchor at every size.

    python3 scripts/compare_bench.py --spread a_r1.json a_r2.json ... -- b_r1.json b_r2.json ... [--markdown]

--spread: repeated sweeps of two setups (A before "--", B after; e.g. two builds, or the start gate on and off):
per algorithm and size, the median and the min-max of A and of B over the repeats, and B's median / A's.

Anchors whose check reported wrong elements are left out of "best anchor" unless --keep-wrong."""
import json
import math
import statistics
import sys


def spread(md):
    args = sys.argv[1:]
    cut = args.index("--")
    sides = [[a for a in args[:cut] if not a.startswith("--")], [a for a in args[cut + 1:] if not a.startswith("--")]]
    runs = []  # per side: algorithm -> bytes -> [us per repeat]
    for files in sides:
        t = {}
        for path in files:
            for r in json.load(open(path))["results"]:
                t.setdefault(r["algorithm"], {}).setdefault(r["bytes"], []).append(r["time_us"])
        runs.append(t)
    head = ["algorithm", "bytes", "A median", "A min-max", "B median", "B min-max", "B / A"]
    rows = []
    for algo in runs[0]:
        for b in sorted(runs[0][algo]):
            a_t, b_t = runs[0][algo][b], runs[1].get(algo, {}).get(b, [])
            am = statistics.median(a_t)
            bm = statistics.median(b_t) if b_t else math.nan
            rows.append([algo, fmt_size(b), f"{am:.2f}", f"{min(a_t):.2f}-{max(a_t):.2f}", f"{bm:.2f}",
                         f"{min(b_t):.2f}-{max(b_t):.2f}" if b_t else "-", f"{bm / am:.2f}"])
    emit(head, rows, md)


def fmt_size(b):
    return f"{b >> 20}M" if b >= 1 << 20 else f"{b >> 10}K"


def main():
    if "--spread" in sys.argv:
        spread("--markdown" in sys.argv)
        return
    files = [a for a in sys.argv[1:] if not a.startswith("--")]
    md = "--markdown" in sys.argv
    keep_wrong = "--keep-wrong" in sys.argv
    times = {}  # algorithm -> bytes -> us
    wrong = {}
    for path in files:
        d = json.load(open(path))
        for r in d["results"]:
            times.setdefault(r["algorithm"], {})[r["bytes"]] = r["time_us"]
            wrong[(r["algorithm"], r["bytes"])] = r.get("wrong", 0)
    algos = list(times)
    anchors = [a for a in algos if a.startswith("nccl") or a.startswith("symm") or a.startswith("torch")]
    sizes = sorted({b for a in algos for b in times[a]})

    registered = "nvrar-registered" in times
    if "--each" in sys.argv:
        ours = [a for a in ("nvrar", "nvrar-registered") if a in times]
        head = ["bytes"] + [f"{o} / {a}" for o in ours for a in anchors]
        rows = [[fmt_size(b)] + [f"{times[o].get(b, math.nan) / times[a].get(b, math.nan):.2f}" for o in ours
                                 for a in anchors] for b in sizes]
        emit(head, rows, md)
        return
    head = ["bytes"] + algos + ["best anchor", "nvrar / best"] + (["nvrar-registered / best"] if registered else []) + [
        "best NVRAR kernel / best"]
    rows = []
    for b in sizes:
        vals = [times[a].get(b, math.nan) for a in algos]
        anc = [(times[a][b], a) for a in anchors if b in times[a] and not math.isnan(times[a][b])
               and (keep_wrong or wrong.get((a, b), 0) == 0)]
        best = min(anc) if anc else (math.nan, "-")
        mine = times.get("nvrar", {}).get(b, math.nan)
        kernels = [times[a][b] for a in ("nvrar", "oneshot", "hierarchical", "ll128", "push", "registered",
                                          "nvrar-registered")
                   if a in times and b in times[a] and not math.isnan(times[a][b])]
        best_kernel = min(kernels) if kernels else math.nan
        ratios = [f"{mine / best[0]:.2f}"]
        if registered:
            ratios.append(f"{times['nvrar-registered'].get(b, math.nan) / best[0]:.2f}")
        rows.append([fmt_size(b)] + [f"{v:.1f}" for v in vals] + [f"{best[0]:.1f} ({best[1]})"] + ratios +
                    [f"{best_kernel / best[0]:.2f}"])
    emit(head, rows, md)


def emit(head, rows, md):
    if md:
        print("| " + " | ".join(head) + " |")
        print("|" + "---|" * len(head))
        for r in rows:
            print("| " + " | ".join(r) + " |")
    else:
        w = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(head)]
        print("  ".join(h.rjust(w[i]) for i, h in enumerate(head)))
        for r in rows:
            print("  ".join(c.rjust(w[i]) for i, c in enumerate(r)))


if __name__ == "__main__":
    main()
