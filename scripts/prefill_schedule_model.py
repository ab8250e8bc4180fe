#!/usr/bin/env python3
"""A CPU model of how the prefill attention kernel's blocks share the GPU (docs/perf-notes.md).

Each block (query tile x head) costs c0 + c1 x (its 64-key tiles); blocks start in grid order on the first free one
of `slots` block slots (132 SMs x 2 blocks of the wgmma kernel). Prints, per prompt shape, the modelled kernel time
over its work spread evenly over the slots (1.0 = no tail) for the old order (one head after another, each head's
tiles longest first) and the new one (prefill_grid.cuh: sections of KV groups that fit 70% of L2, longest tiles
first with the section's heads fastest).

  python3 scripts/prefill_schedule_model.py [--slots 264] [--c0 6] [--chunk 4096]
"""
import argparse
import heapq
import math


def chunks_of(lengths, chunk, rows):
    """The plan's chunks (plan_prefill): lists of (pos0, count) query tiles."""
    out, cur, used = [], [], 0
    for length in lengths:
        pos = 0
        while pos < length:
            take = min(length - pos, chunk - used)
            for t in range(0, take, rows):
                cur.append((pos + t, min(rows, take - t)))
            pos += take
            used += take
            if used == chunk:
                out.append(cur)
                cur, used = [], 0
    if cur:
        out.append(cur)
    return out


def makespan(order, slots, cost):
    free = [0.0] * slots
    end = 0.0
    for block in order:
        start = heapq.heappop(free)
        finish = start + cost(block)
        end = max(end, finish)
        heapq.heappush(free, finish)
    return end


def section_kv_heads(kv_heads, head_dim, max_len, l2_bytes):
    per = max(1, max_len) * head_dim * 4
    k = max(1, min(kv_heads, l2_bytes * 7 // 10 // per))
    while k > 1 and kv_heads % k:
        k -= 1
    return k


def model(lengths, args):
    cost = lambda t: args.c0 + math.ceil((t[0] + t[1]) / 64)
    old = new = work = 0.0
    for tiles in chunks_of(lengths, args.chunk, 128):
        heavy_first = sorted(tiles, key=lambda t: -(t[0] + t[1]))
        old += makespan([t for _ in range(args.heads) for t in reversed(tiles)], args.slots, cost)
        max_len = max(t[0] + t[1] for t in tiles)
        group = args.heads // args.kv_heads
        section = group * section_kv_heads(args.kv_heads, 128, max_len, args.l2)
        new += makespan([t for _ in range(args.heads // section) for t in heavy_first for _ in range(section)],
                        args.slots, cost)
        work += sum(cost(t) for t in tiles) * args.heads / args.slots
    return old / work, new / work


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--slots", type=int, default=264, help="concurrent blocks (SMs x blocks per SM)")
    p.add_argument("--c0", type=float, default=6.0, help="a block's fixed cost in 64-key steps")
    p.add_argument("--chunk", type=int, default=4096, help="prefill chunk (tokens)")
    p.add_argument("--heads", type=int, default=32)
    p.add_argument("--kv-heads", type=int, default=8)
    p.add_argument("--l2", type=int, default=50 << 20, help="L2 bytes")
    args = p.parse_args()
    print("| prompts | old order | new order |")
    print("|---|---|---|")
    for batch, length in [(1, 2048), (8, 2048), (1, 8192), (1, 32768), (1, 131072)]:
        old, new = model([length] * batch, args)
        print(f"| {batch} x {length} | {old:.3f} | {new:.3f} |")


if __name__ == "__main__":
    main()
