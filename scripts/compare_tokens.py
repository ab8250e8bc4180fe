#!/usr/bin/env python3
"""Compares the greedy tokens that `nvrar-llm check --tokens-out` wrote for several TP sizes and all-reduce
backends (teacher-forced, so every run saw the same contexts). Prints, per step and sequence where the runs
disagree, each run's token and the reference's logit gap between the tokens chosen, so a disagreement can be told
apart from a near tie.

    python3 scripts/compare_tokens.py REFERENCE.json RUN.json [RUN.json ...]

Exit status 0 when all runs chose identical tokens, 1 otherwise."""
import json
import os
import sys


def main():
    if len(sys.argv) < 3:
        sys.exit("usage: compare_tokens.py REFERENCE.json RUN.json [RUN.json ...]")
    ref = json.load(open(sys.argv[1]))
    runs = {os.path.basename(p).removesuffix(".json"): json.load(open(p)) for p in sys.argv[2:]}
    names = list(runs)
    differ = 0
    steps = len(ref["tokens"])
    for n, r in runs.items():
        if len(r) != steps:
            sys.exit(f"{n}: {len(r)} steps, the reference has {steps}")
    for s in range(steps):
        for b in range(len(ref["tokens"][s])):
            chosen = {n: runs[n][s][b] for n in names}
            if len(set(chosen.values())) == 1:
                continue
            differ += 1
            logits = ref["logits"][s][b]
            gap = max(logits[t] for t in chosen.values()) - min(logits[t] for t in chosen.values())
            print(f"step {s} seq {b}: " + ", ".join(f"{n}={t}" for n, t in chosen.items()) +
                  f" (HF {ref['tokens'][s][b]}; HF logit gap between the chosen tokens {gap:.4f})")
    total = steps * len(ref["tokens"][0])
    print(f"greedy tokens of {len(names)} runs ({', '.join(names)}): "
          f"{'identical' if differ == 0 else f'differ at {differ}'} of {total} step x sequence positions")
    return 0 if differ == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
