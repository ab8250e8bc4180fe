# Summary of call 2's decode A/B: files W/pf/b<B>_<L>_p<MiB>f<fuse>_r<n>.json; ratio to p0f0 per case.
import json, glob, sys, statistics as st
W = sys.argv[1]
rows = {}
for f in sorted(glob.glob(f"{W}/pf/*.json")):
    case, cfg, r = f.split("/")[-1][:-5].rsplit("_", 2)
    rows.setdefault(case, {}).setdefault(cfg, []).append(json.load(open(f)))
print("| case | config (L2 prefetch MiB, SwiGLU fused) | graph step ms (runs); median / p0f0 | eager split (gemm / attn / allreduce / other us) |")
print("|---|---|---|---|")
score = {}
for case, by in rows.items():
    base = st.median([d["decode_step_ms_median"] for d in by.get("p0f0", [])] or [float("nan")])
    for cfg, ds in sorted(by.items()):
        steps = [d["decode_step_ms_median"] for d in ds]
        b = ds[0]["breakdown_us"]
        score.setdefault(cfg, []).append(st.median(steps) / base)
        print(f"| {case} | {cfg} | {' / '.join(f'{s:.3f}' for s in steps)}; x{st.median(steps) / base:.3f} | "
              f"{b['gemm']:.0f} / {b['attention']:.0f} / {b['allreduce']:.0f} / {b['other']:.0f} |")
best = min(score, key=lambda c: st.mean(score[c]))
print("\nmean ratio to p0f0: " + ", ".join(f"{c}: {st.mean(v):.4f}" for c, v in sorted(score.items())) + f"; best {best}")
mb, fuse = best[1:].split("f")
open(f"{W}/best_env.txt", "w").write(f"NVRAR_LLM_L2_PREFETCH_MB={mb},NVRAR_LLM_FUSE_SWIGLU={fuse}")
