#!/usr/bin/env python3
"""From an `nsys stats -r cuda_gpu_trace -f csv` export: per kernel name, the median duration and the median idle
gap before each launch that follows the same kernel (back-to-back calls in a CUDA graph), in microseconds."""
import csv
import statistics
import sys


def main():
    rows = list(csv.DictReader(open(sys.argv[1])))
    start_key = next(k for k in rows[0] if k.startswith("Start"))
    dur_key = next(k for k in rows[0] if k.startswith("Duration"))
    kernels = [r for r in rows if r.get("Name") and r.get("GrdX")]
    kernels.sort(key=lambda r: float(r[start_key]))
    scale = 1e-3  # ns -> us
    stats = {}
    prev = None
    for r in kernels:
        name = r["Name"].split("(")[0].split("<")[0][:60]
        s = stats.setdefault(name, {"dur": [], "gap": []})
        s["dur"].append(float(r[dur_key]) * scale)
        if prev is not None and prev[0] == name:
            s["gap"].append((float(r[start_key]) - prev[1]) * scale)
        prev = (name, float(r[start_key]) + float(r[dur_key]))
    print(f"{'kernel':<60} {'n':>6} {'dur med':>8} {'gap med':>8}  (us)")
    for name, s in stats.items():
        gap = statistics.median(s["gap"]) if s["gap"] else float("nan")
        print(f"{name:<60} {len(s['dur']):>6} {statistics.median(s['dur']):>8.2f} {gap:>8.2f}")


if __name__ == "__main__":
    main()
