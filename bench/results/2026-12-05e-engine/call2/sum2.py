import json, glob, sys, statistics as st
W = sys.argv[1]
rows = {}
for f in sorted(glob.glob(f"{W}/ab/*.json")):
    kind, b, l, cfg, r = f.split("/")[-1][:-5].split("_")
    rows.setdefault((b, l), {}).setdefault(cfg, []).append(json.load(open(f)))
for (b, l), by in rows.items():
    base = st.median([d["decode_step_ms_median"] for d in by["none"]])
    for cfg, ds in by.items():
        v = [d["decode_step_ms_median"] for d in ds]
        print(f"| decode {b} x {l} | {cfg} | {' / '.join(f'{x:.3f}' for x in v)} | {st.median(v):.3f} ms | "
              f"{(st.median(v) - base) * 1000 / 32:+.2f} us per layer | {ds[0].get('card')} |")
