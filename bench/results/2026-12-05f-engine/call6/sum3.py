# Summary of call 3: W/ab/prefill_<B>_<L>_c<chunk>_r<n>.json; prefill_ms_median per chunk, ratio to 4096.
import json, glob, sys, statistics as st
W = sys.argv[1]
rows = {}
for f in sorted(glob.glob(f"{W}/ab/*.json")):
    kind, b, l, cfg, r = f.split("/")[-1][:-5].split("_")
    rows.setdefault((int(b), int(l)), {}).setdefault(int(cfg[1:]), []).append(json.load(open(f)))
print("| case | chunk | runs (median of 3 prefills, ms) | median | / 4096 | card |")
print("|---|---|---|---|---|---|")
for (b, l), by in sorted(rows.items()):
    base = st.median([d["prefill_ms_median"] for d in by[4096]]) if 4096 in by else None
    for k, ds in sorted(by.items()):
        v = [d["prefill_ms_median"] for d in ds]
        ratio = f"{st.median(v) / base:.4f}" if base else ""
        print(f"| prefill {b} x {l} | {k} | {' / '.join(f'{x:.2f}' for x in v)} | {st.median(v):.2f} | {ratio} | "
              f"{ds[0].get('card')} |")
