#!/usr/bin/env python3
"""PyTorch anchors for nvrar-bench, measured the same way (../shared/BENCHMARKING.md): NCCL through
torch.distributed.all_reduce, and PyTorch symmetric memory's one_shot_all_reduce and two_shot_all_reduce_.

    torchrun --nproc-per-node 4 scripts/bench_torch_symm.py [--min-bytes 4096] [--max-bytes 67108864] [--json out.json]

Per size and algorithm: 20 calls captured in one CUDA graph, 3 warm-up replays, 15 timed replays (CUDA events),
per-rank median of replay time / 20, maximum over ranks. Before each timed replay the ranks are aligned as in
nvrar-bench (tools/bench/gpu_backend_measure.cpp): a ~100 us GPU sleep while the host queues a one-element all-reduce, the
start event and the replay, so the replay starts at about the same moment on every GPU (--no-start-gate: without).
bf16, pseudo-random inputs; each algorithm's result is
checked once against a float64 sum of all ranks' inputs (printed as #wrong). Multicast stays off
(TORCH_SYMM_MEM_DISABLE_MULTICAST=1, NCCL_NVLS_ENABLE=0 are forced here)."""
import argparse
import json
import os
import statistics
import sys

os.environ["TORCH_SYMM_MEM_DISABLE_MULTICAST"] = "1"
os.environ["NCCL_NVLS_ENABLE"] = "0"
os.environ["NVSHMEM_DISABLE_NVLS"] = "1"

import torch  # noqa: E402
import torch.distributed as dist  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--min-bytes", type=int, default=4096)
    ap.add_argument("--max-bytes", type=int, default=64 << 20)
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--json", default="")
    ap.add_argument("--no-start-gate", action="store_true")
    args = ap.parse_args()

    local = int(os.environ["LOCAL_RANK"])
    torch.cuda.set_device(local)
    dist.init_process_group("nccl", device_id=torch.device("cuda", local))
    rank, world = dist.get_rank(), dist.get_world_size()
    group = dist.group.WORLD
    import torch.distributed._symmetric_memory as symm_mem

    group_name = group.group_name
    max_elems = args.max_bytes // 2
    buf = symm_mem.empty(max_elems, dtype=torch.bfloat16, device="cuda")
    symm_mem.rendezvous(buf, group_name)
    plain = torch.empty(max_elems, dtype=torch.bfloat16, device="cuda")
    stream = torch.cuda.Stream()
    gate = torch.zeros(1, dtype=torch.int32, device="cuda")

    def algos(n):
        view = buf[:n]
        return {
            "torch-nccl": (plain[:n], lambda: dist.all_reduce(plain[:n])),
            "symm-one-shot": (view, lambda: torch.ops.symm_mem.one_shot_all_reduce(view, "sum", group_name)),
            "symm-two-shot": (view, lambda: torch.ops.symm_mem.two_shot_all_reduce_(view, "sum", group_name)),
        }

    results = []
    sizes = []
    b = args.min_bytes
    while b <= args.max_bytes:
        sizes.append(b)
        b *= 2
    if rank == 0:
        print(f"# bench_torch_symm: {world} x {torch.cuda.get_device_name()}, torch {torch.__version__}, "
              f"NCCL {'.'.join(map(str, torch.cuda.nccl.version()))}, bf16, {args.iters} calls/graph, "
              f"{args.rounds} replays, max over ranks of per-rank median")
        print(f"# {'bytes':>10} " + " ".join(f"{a:>16}" for a in algos(1)))
    for size in sizes:
        n = size // 2
        gen = torch.Generator(device="cuda").manual_seed(1000 + size)
        inputs = [torch.rand(n, generator=gen, device="cuda", dtype=torch.float32) * 2 - 1 for _ in range(world)]
        inputs = [x.to(torch.bfloat16) for x in inputs]
        want = torch.stack([x.double() for x in inputs]).sum(0)
        # Up to one bf16 rounding (unit roundoff 2^-8) per rank on an element's path (NCCL's ring), as nvrar-bench.
        tol = world * 2.0 ** -8 * torch.stack([x.double().abs() for x in inputs]).sum(0) + 1e-6
        row = []
        for name, (tensor, fn) in algos(n).items():
            try:
                tensor.copy_(inputs[rank])
                torch.cuda.synchronize()
                dist.barrier()
                res = fn()
                out = res if isinstance(res, torch.Tensor) and res.data_ptr() != tensor.data_ptr() else tensor
                torch.cuda.synchronize()
                wrong = int(((out.double() - want).abs() > tol).sum().item())
                with torch.cuda.stream(stream):
                    g = torch.cuda.CUDAGraph()
                    with torch.cuda.graph(g, stream=stream):
                        for _ in range(args.iters):
                            fn()
                times = []
                for i in range(3 + args.rounds):
                    start = torch.cuda.Event(enable_timing=True)
                    stop = torch.cuda.Event(enable_timing=True)
                    if not args.no_start_gate:
                        torch.cuda._sleep(200_000)  # ~100 us at H100 clocks: the host queues what follows meanwhile
                        dist.all_reduce(gate, op=dist.ReduceOp.MAX)
                    start.record()
                    g.replay()
                    stop.record()
                    stop.synchronize()
                    if i >= 3:
                        times.append(start.elapsed_time(stop) * 1e3 / args.iters)
                t = torch.tensor([statistics.median(times)], device="cuda", dtype=torch.float64)
                dist.all_reduce(t, op=dist.ReduceOp.MAX)
                w = torch.tensor([wrong], device="cuda")
                dist.all_reduce(w)
                row.append((name, t.item(), int(w.item())))
                del g
            except Exception as e:  # noqa: BLE001 - report and keep the other algorithms
                if rank == 0:
                    print(f"# {name} at {size} bytes failed: {type(e).__name__}: {e}", file=sys.stderr)
                row.append((name, float("nan"), -1))
        for name, t, w in row:
            results.append({"algorithm": name, "bytes": size, "time_us": t, "wrong": w})
        if rank == 0:
            print(f"  {size:>10} " + " ".join(f"{t:>10.2f} #{w:<4}" for _, t, w in row), flush=True)
    if rank == 0 and args.json:
        with open(args.json, "w") as f:
            json.dump({"tool": "bench_torch_symm.py", "device": f"{world} x {torch.cuda.get_device_name()}",
                       "ranks": world, "torch": torch.__version__, "dtype": "bfloat16", "results": results}, f,
                      indent=1)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
