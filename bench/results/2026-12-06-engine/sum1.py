# Summary of call 1: W/ab/<kind>_<B>_<L>_<cfg>_r<n>.json. Prefill: the instrumented prefill's phases (ms) per build;
# decode: the graph-replayed step (ms) per config, ratio to base.
import json, glob, sys, statistics as st
W = sys.argv[1]
rows = {}
for f in sorted(glob.glob(f"{W}/ab/*.json")):
    kind, b, l, cfg, r = f.split("/")[-1][:-5].split("_")
    rows.setdefault((kind, int(b), int(l)), {}).setdefault(cfg, []).append(json.load(open(f)))
print("| case | config | runs (ms) | median | / base | phases (median, ms) | card |")
print("|---|---|---|---|---|---|---|")
for (kind, b, l), by in sorted(rows.items()):
    key = "prefill_ms_median" if kind == "prefill" else "decode_step_ms_median"
    split = "prefill_breakdown_us" if kind == "prefill" else "breakdown_us"
    base = st.median([d[key] for d in by["base"]]) if "base" in by else None
    for cfg, ds in by.items():
        v = [d[key] for d in ds]
        parts = {}
        for d in ds:
            for p, us in (d.get(split) or {}).items(): parts.setdefault(p, []).append(us / 1000)
        ph = ", ".join(f"{p} {st.median(x):.3f}" for p, x in parts.items())
        ratio = f"{st.median(v) / base:.4f}" if base else ""
        print(f"| {kind} {b} x {l} | {cfg} | {' / '.join(f'{x:.3f}' for x in v)} | {st.median(v):.3f} | {ratio} | "
              f"{ph} | {ds[0].get('card')} |")
