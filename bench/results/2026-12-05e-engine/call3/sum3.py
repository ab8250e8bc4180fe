# Summary of call 3: W/ab/decode_<B>_<L>_<cfg>_r<n>.json; per case the graph step by NVRAR_LLM_FUSE_EPILOGUE.
import json, glob, sys, statistics as st
W = sys.argv[1]
rows = {}
for f in sorted(glob.glob(f"{W}/ab/*.json")):
    kind, b, l, cfg, r = f.split("/")[-1][:-5].split("_")
    rows.setdefault((int(b), int(l)), {}).setdefault(cfg, []).append(json.load(open(f)))
print("| case | epilogue 0 (runs) | epilogue 1 (runs) | 1 / 0 | per layer | card |")
print("|---|---|---|---|---|---|")
for (b, l), by in sorted(rows.items()):
    v0 = [d["decode_step_ms_median"] for d in by.get("e0", [])]
    v1 = [d["decode_step_ms_median"] for d in by.get("e1", [])]
    if not v0 or not v1: continue
    m0, m1 = st.median(v0), st.median(v1)
    print(f"| decode {b} x {l} | {' / '.join(f'{x:.3f}' for x in v0)} | {' / '.join(f'{x:.3f}' for x in v1)} | "
          f"{m1 / m0:.4f} | {(m1 - m0) * 1000 / 32:+.2f} us | {by['e1'][0].get('card')} |")
