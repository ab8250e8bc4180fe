#!/usr/bin/env python3
"""Re-tunes part of a table's size range: the entries of BASE below --from, then those of PART (a table of
`nvrar-bench --tune -b <from>`), adjacent equal choices merged. Both must be for the same card and topology.

    python3 scripts/merge_tuning.py BASE.json PART.json OUT.json --from 16M

A BASE entry whose max_bytes is --from or more is dropped whole; the tuner's sizes double, so when the entry before
it ends below half of --from, that entry's range held measured sizes below --from too and the script says so (pick
--from at an entry boundary of BASE)."""
import argparse
import json
import sys

from tuning_from_bench import merge_neighbours


def size(text):
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    t = text.strip().upper().rstrip("B").rstrip("I")
    return int(float(t[:-1]) * units[t[-1]]) if t and t[-1] in units else int(t)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("base")
    ap.add_argument("part")
    ap.add_argument("out")
    ap.add_argument("--from", dest="start", required=True, type=size, help="first size PART measured, e.g. 16M")
    a = ap.parse_args()
    base, part = (json.load(open(p)) for p in (a.base, a.part))
    for key in ("card", "ranks", "nodes", "gpus_per_node"):
        if base[key] != part[key]:
            sys.exit(f"merge_tuning: {key} differs: {base[key]} ({a.base}) vs {part[key]} ({a.part})")
    kept = [e for e in base["entries"] if e["max_bytes"] < a.start]
    dropped = [e for e in base["entries"] if e["max_bytes"] >= a.start]
    if dropped and (kept[-1]["max_bytes"] if kept else 0) < a.start // 2:
        print(f"merge_tuning: warning: {a.base}'s entry up to {dropped[0]['max_bytes']} bytes also covered sizes "
              f"below {a.start}; they now take {a.part}'s first choice", file=sys.stderr)
    if any(e["max_bytes"] < a.start for e in part["entries"]):
        sys.exit(f"merge_tuning: {a.part} has entries below --from {a.start}")
    merged = merge_neighbours(kept + part["entries"])
    out = dict(base)
    out["created"] = part["created"]
    out["source"] = f"{base['source']} below {a.start} bytes ({base['created']}); {part['source']} from there"
    out["entries"] = merged
    with open(a.out, "w") as f:
        json.dump(out, f, indent=2)
        f.write("\n")
    for e in merged:
        print(f"  {e['max_bytes']:>10}  {e['algorithm']}  t{e['threads']}" +
              (f" p{e['piece_units']}" if e.get("piece_units") else ""))


if __name__ == "__main__":
    main()
