# Summary of call 1: W/ab/<kind>_b<B>_<L>_<cfg>_r<n>.json; median per case and config, ratio to the first config.
import json, glob, sys, statistics as st
W = sys.argv[1]
rows = {}
for f in sorted(glob.glob(f"{W}/ab/*.json")):
    kind, b, l, cfg, r = f.split("/")[-1][:-5].split("_")
    rows.setdefault((kind, b, l), {}).setdefault(cfg, []).append(json.load(open(f)))
for (kind, b, l), by in rows.items():
    key = "prefill_ms_median" if kind == "prefill" else "decode_step_ms_median"
    split = "prefill_breakdown_us" if kind == "prefill" else "breakdown_us"
    base = None
    for cfg, ds in by.items():
        v = [d[key] for d in ds]
        att = st.median([d[split].get("attention", float("nan")) for d in ds]) / 1000
        base = base or st.median(v)
        print(f"| {kind} {b} x {l} | {cfg} | {' / '.join(f'{x:.3f}' for x in v)} | median {st.median(v):.3f} ms "
              f"x{st.median(v) / base:.4f} | attention phase {att:.3f} ms | {ds[0].get('card')} |")
