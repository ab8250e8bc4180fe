#!/usr/bin/env python3
"""Builds a tuning table (src/select/tuning_table.h format) from nvrar-bench JSON results of one machine and topology:
at each size, the fastest measured NVRAR kernel shape or NCCL (minimum over all the files given). The same choice
`nvrar-bench --tune` makes, from runs already recorded.

    python3 scripts/tuning_from_bench.py OUT.json bench_np4_g4.json [shapes_np4_g4.json ...]

Algorithm names understood: oneshot[:t<threads>], hierarchical[:cells|:bulk], ll128[:t<threads>],
push[:t<threads>][:p<piece units>], nccl (others are ignored)."""
import json
import sys


def spec_entry(name):
    parts = name.split(":")
    e = {"algorithm": parts[0], "threads": 0, "blocks": 0, "bulk": -1}
    for o in parts[1:]:
        if o == "bulk":
            e["bulk"] = 1
        elif o == "cells":
            e["bulk"] = 0
        elif o.startswith("t"):
            e["threads"] = int(o[1:])
        elif o.startswith("b"):
            e["blocks"] = int(o[1:])
        elif o.startswith("p"):
            e["piece_units"] = int(o[1:])  # written only when set, as nvrar-bench --tune does
    return e


def merge_neighbours(entries):
    """Adjacent entries with the same choice as one range (the last one's max_bytes and time), like the C++
    merge_equal_neighbours; entries are dicts of a table's "entries"."""
    merged = []
    for e in entries:
        same = ("algorithm", "threads", "blocks", "bulk", "piece_units")
        if merged and all(merged[-1].get(k) == e.get(k) for k in same):
            merged[-1].update({"max_bytes": e["max_bytes"], "time_us": e["time_us"]})
        else:
            merged.append(dict(e))
    return merged


def main():
    out, files = sys.argv[1], sys.argv[2:]
    best = {}
    meta = None
    for path in files:
        d = json.load(open(path))
        key = (d["ranks"], d["nodes"], d["gpus_per_node"], d["device"])
        if meta is None:
            meta = (key, d)
        elif key != meta[0]:
            sys.exit(f"{path}: another machine or topology than {files[0]}")
        for r in d["results"]:
            name = r["algorithm"]
            if name.split(":")[0] not in ("oneshot", "hierarchical", "ll128", "push", "nccl") or r.get("wrong", 0) != 0:
                continue
            b = r["bytes"]
            if b not in best or r["time_us"] < best[b][0]:
                best[b] = (r["time_us"], name)
    d = meta[1]
    card = d["device"].split(" x ", 1)[1]
    entries = []
    for b in sorted(best):
        e = spec_entry(best[b][1])
        e.update({"max_bytes": b, "time_us": round(best[b][0], 2)})
        entries.append(e)
    entries = merge_neighbours(entries)
    while entries and entries[-1]["algorithm"] == "nccl":
        entries.pop()
    table = {"format": "nvrar-tuning-1", "card": card, "created": d["date"],
             "source": "fastest measured at each size in " + ", ".join(p.split("/")[-1] for p in files) +
                       " (scripts/tuning_from_bench.py)",
             "ranks": d["ranks"], "nodes": d["nodes"], "gpus_per_node": d["gpus_per_node"], "entries": entries}
    with open(out, "w") as f:
        json.dump(table, f, indent=2)
        f.write("\n")
    for e in entries:
        print(f"  <= {e['max_bytes']:>10}  {e['algorithm']:<13} t{e['threads']} bulk {e['bulk']}  {e['time_us']} us")


if __name__ == "__main__":
    main()
