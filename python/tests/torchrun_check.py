"""The package (and so the C ABI under it) at N ranks, one GPU each; run under torchrun, not pytest:

    torchrun --nproc-per-node N python/tests/torchrun_check.py

A communicator from torch.distributed's default group (the unique id travels through it); then, against sums
PyTorch computes from the same inputs (every rank's input is a function of its rank, so each rank rebuilds all of
them): all_reduce for each dtype and several sizes (odd counts included) in place and out of place, from registered
tensors, the fused all-reduce + residual + RMSNorm, and the custom op under torch.compile(fullgraph=True) and
replayed from a CUDA graph. Prints one line per rank; exits 1 if any check fails.
"""

import os
import sys

import torch
import torch.distributed as dist

import nvrar

TOLERANCE = {torch.float32: 1e-5, torch.bfloat16: 2e-2, torch.float16: 2e-3}


def rank_input(rank, shape, dtype, seed):
    generator = torch.Generator(device="cuda").manual_seed(seed * 1000 + rank)
    return torch.randn(shape, generator=generator, device="cuda").to(dtype)


def reference_sum(world, shape, dtype, seed):
    total = sum(rank_input(r, shape, dtype, seed).float() for r in range(world))
    return total.to(dtype)


def main():
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    torch.cuda.set_device(local_rank)
    dist.init_process_group("nccl", device_id=torch.device("cuda", local_rank))
    rank, world = dist.get_rank(), dist.get_world_size()
    comm = nvrar.Communicator()
    failures, checks = [], 0

    def check(what, got, want, dtype):
        nonlocal checks
        checks += 1
        tol = TOLERANCE[dtype] * max(1, world)
        if not torch.allclose(got.float(), want.float(), rtol=tol, atol=tol):
            error = (got.float() - want.float()).abs().max().item()
            failures.append(f"{what}: largest error {error:.3g} (tolerance {tol:.3g})")

    seed = 0
    for dtype in TOLERANCE:
        for count in (1, 7, 1000, 8192 * 4, (1 << 20) + 3):
            seed += 1
            x = rank_input(rank, (count,), dtype, seed)
            want = reference_sum(world, (count,), dtype, seed)
            check(f"all_reduce {count} {dtype}", comm.all_reduce(x), want, dtype)
            check(f"all_reduce in place {count} {dtype}", comm.all_reduce(x, out=x), want, dtype)
    if nvrar.built_with_nvshmem():
        for count in (4096, 1 << 20):
            seed += 1
            buf = comm.empty((count,), torch.bfloat16)
            buf.copy_(rank_input(rank, (count,), torch.bfloat16, seed))
            check(f"registered all_reduce {count}", comm.all_reduce(buf),
                  reference_sum(world, (count,), torch.bfloat16, seed), torch.bfloat16)
            comm.free(buf)
    for dtype in (torch.bfloat16, torch.float32):
        seed += 1
        x = rank_input(rank, (4, 4096), dtype, seed)
        residual = rank_input(0, (4, 4096), dtype, seed + 500)  # the same on every rank, as in a model
        weight = rank_input(0, (4096,), dtype, seed + 600)
        summed = reference_sum(world, (4, 4096), dtype, seed) + residual
        h = summed.float()
        want = weight * (h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + 1e-5)).to(dtype)
        got = comm.allreduce_add_rmsnorm(x, residual, weight, 1e-5)
        check(f"allreduce_add_rmsnorm residual {dtype}", residual, summed, dtype)
        check(f"allreduce_add_rmsnorm out {dtype}", got, want, dtype)

    name = comm.name
    compiled = torch.compile(lambda t: torch.ops.nvrar.all_reduce(t + 1, name), fullgraph=True)
    seed += 1
    x = rank_input(rank, (8, 2048), torch.bfloat16, seed)
    want = reference_sum(world, (8, 2048), torch.bfloat16, seed).float() + world
    check("custom op under torch.compile(fullgraph=True)", compiled(x), want, torch.bfloat16)
    static_in = torch.zeros(8, 2048, device="cuda", dtype=torch.bfloat16)
    torch.ops.nvrar.all_reduce(static_in, name)  # warm-up outside capture
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        static_out = torch.ops.nvrar.all_reduce(static_in, name)
    for replay in range(3):
        seed += 1
        static_in.copy_(rank_input(rank, (8, 2048), torch.bfloat16, seed))
        graph.replay()
        check(f"CUDA graph replay {replay}", static_out, reference_sum(world, (8, 2048), torch.bfloat16, seed),
              torch.bfloat16)
    comm.synchronize()

    verdict = "PASSED" if not failures else "FAILED"
    print(f"torchrun_check: rank {rank} of {world}: {verdict}, {checks - len(failures)}/{checks} checks "
          f"({comm.describe()})", flush=True)
    for failure in failures:
        print(f"torchrun_check: rank {rank}: {failure}", flush=True)
    comm.close()
    dist.destroy_process_group()
    return 0 if not failures else 1


if __name__ == "__main__":
    sys.exit(main())
