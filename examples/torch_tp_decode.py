"""Tensor-parallel Llama decode in PyTorch with NVRAR or NCCL for the all-reduces: what the NVRAR paper did inside
YALIS, written for this example. Dummy weights (seeded, generated on the GPU) with the real Llama-3.x shapes.

    torchrun --nproc-per-node 4 examples/torch_tp_decode.py --model llama3.1-70b --num-layers 20 --allreduce nvrar

Per layer (Megatron-style tensor parallelism, two all-reduces): RMSNorm -> QKV (column-parallel: this rank's heads)
-> RoPE -> attention over a static KV cache -> o_proj (row-parallel) -> all-reduce -> + residual -> RMSNorm -> gate/up
(column-parallel) -> SiLU * up -> down (row-parallel) -> all-reduce -> + residual. The LM head is split over the
vocabulary; the greedy token is the best of every rank's best (a tiny all-gather), so every rank feeds the same token.

--allreduce nccl: torch.distributed's functional all-reduce (NCCL), then residual add and RMSNorm in PyTorch (fused by
torch.compile). --allreduce nvrar: torch.ops.nvrar.allreduce_add_rmsnorm, NVRAR's all-reduce fused with the residual
add and the next RMSNorm (--no-fused-norm: torch.ops.nvrar.all_reduce, then the same PyTorch epilogue as NCCL).

One decode step (all layers, the LM head, the greedy pick, the next position) is compiled with
torch.compile(fullgraph=True) and captured in one CUDA graph; the timed loop replays it (--eager: neither). Prints
the milliseconds per decode step on rank 0. --check first compares one step's logits under both all-reduces.
"""

import argparse
import json
import math
import os
import sys
import time

import torch
import torch.distributed as dist
import torch.distributed._functional_collectives as funcol
import torch.nn.functional as F

# name: (hidden, layers, heads, kv_heads, intermediate, vocab) from the models' config.json (head size hidden / heads).
MODELS = {
    "llama3.2-1b": (2048, 16, 32, 8, 8192, 128256),
    "llama3.1-8b": (4096, 32, 32, 8, 14336, 128256),
    "llama3.1-70b": (8192, 80, 64, 8, 28672, 128256),
    "llama3.1-405b": (16384, 126, 128, 8, 53248, 128256),
}
ROPE_THETA = 500000.0
EPS = 1e-5


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", choices=sorted(MODELS), default="llama3.1-8b")
    p.add_argument("--num-layers", type=int, default=0, help="layers to build (0: the model's all)")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--context-len", type=int, default=512, help="tokens already in the KV cache when timing starts")
    p.add_argument("--steps", type=int, default=128, help="decode steps timed")
    p.add_argument("--warmup", type=int, default=16, help="decode steps replayed before timing")
    p.add_argument("--allreduce", choices=["nccl", "nvrar"], default="nvrar")
    p.add_argument("--no-fused-norm", action="store_true", help="nvrar: plain all-reduce, norm in PyTorch")
    p.add_argument("--eager", action="store_true", help="no torch.compile and no CUDA graph")
    p.add_argument("--check", action="store_true", help="compare one step's logits under nccl and nvrar first")
    p.add_argument("--json", help="write the result here (rank 0)")
    return p.parse_args()


class Shapes:
    def __init__(self, model, tp, num_layers):
        self.hidden, layers, heads, kv_heads, self.intermediate, self.vocab = MODELS[model]
        self.layers = num_layers or layers
        self.head_dim = self.hidden // heads
        for what, n in (("attention heads", heads), ("KV heads", kv_heads), ("intermediate size", self.intermediate),
                        ("vocabulary", self.vocab)):
            if n % tp:
                sys.exit(f"torch_tp_decode: {model}'s {what} ({n}) do not split over TP {tp}")
        self.heads, self.kv_heads = heads // tp, kv_heads // tp  # this rank's
        self.inter, self.vocab_part = self.intermediate // tp, self.vocab // tp


class Decoder(torch.nn.Module):
    """This rank's shard of the model, a static KV cache, and one decode step as forward()."""

    def __init__(self, s, batch, max_len, rank, allreduce, comm_name, fused_norm):
        super().__init__()
        self.s, self.allreduce, self.comm_name, self.fused_norm = s, allreduce, comm_name, fused_norm
        dev, dt = torch.device("cuda"), torch.bfloat16
        gen = torch.Generator(device=dev).manual_seed(1234 + rank)

        def weight(*shape):
            return torch.randn(shape, generator=gen, device=dev, dtype=torch.float32).mul_(0.02).to(dt)

        def norm():
            return 1.0 + 0.1 * torch.rand(s.hidden, generator=gen, device=dev).to(dt)

        qkv_rows = (s.heads + 2 * s.kv_heads) * s.head_dim
        self.embed = torch.randn(s.vocab, s.hidden, generator=torch.Generator(device=dev).manual_seed(1),
                                 device=dev, dtype=torch.float32).mul_(0.02).to(dt)  # the same on every rank
        self.layers = [dict(ln1=norm(), qkv=weight(qkv_rows, s.hidden), o=weight(s.hidden, s.heads * s.head_dim),
                            ln2=norm(), gate_up=weight(2 * s.inter, s.hidden), down=weight(s.hidden, s.inter))
                       for _ in range(s.layers)]
        self.final_norm = norm()
        self.lm_head = weight(s.vocab_part, s.hidden)
        cache_shape = (batch, s.kv_heads, max_len, s.head_dim)  # one per layer, so writes touch no views
        self.k_cache = [torch.randn(cache_shape, generator=gen, device=dev).to(dt) for _ in range(s.layers)]
        self.v_cache = [torch.randn(cache_shape, generator=gen, device=dev).to(dt) for _ in range(s.layers)]
        inv_freq = 1.0 / ROPE_THETA ** (torch.arange(0, s.head_dim, 2, device=dev).float() / s.head_dim)
        angles = torch.outer(torch.arange(max_len, device=dev).float(), inv_freq)
        self.cos, self.sin = angles.cos(), angles.sin()
        self.positions = torch.arange(max_len, device=dev)
        self.vocab_offset = rank * s.vocab_part

    # ---- the two all-reduce epilogues: residual += allreduce(x); return rmsnorm(residual) * w ----
    def reduce_add_norm(self, x, residual, w):
        if self.allreduce == "nvrar" and self.fused_norm:
            return torch.ops.nvrar.allreduce_add_rmsnorm(x, residual, w, EPS, self.comm_name)
        if self.allreduce == "nvrar":
            summed = torch.ops.nvrar.all_reduce(x, self.comm_name)
        else:
            summed = funcol.all_reduce(x, "sum", dist.group.WORLD)
        residual.add_(summed)
        h = residual.float()
        return w * (h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + EPS)).to(x.dtype)

    def rope(self, x, pos):
        cos, sin = self.cos[pos].view(1, 1, -1), self.sin[pos].view(1, 1, -1)
        x1, x2 = x.float().chunk(2, dim=-1)
        return torch.cat((x1 * cos - x2 * sin, x2 * cos + x1 * sin), dim=-1).to(x.dtype)

    def forward(self, tokens, pos):
        """One decode step for tokens [batch] at position pos (a 1-element tensor); returns the logits of this
        rank's vocabulary part and writes the greedy next tokens into `tokens` and pos + 1 into `pos`."""
        s, b = self.s, tokens.shape[0]
        residual = self.embed[tokens]
        h = residual.float()
        x = self.layers[0]["ln1"] * (h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + EPS)).to(residual.dtype)
        visible = (self.positions <= pos).view(1, 1, 1, -1)
        for i, layer in enumerate(self.layers):
            qkv = x @ layer["qkv"].t()
            q, k, v = qkv.split([s.heads * s.head_dim, s.kv_heads * s.head_dim, s.kv_heads * s.head_dim], dim=-1)
            q = self.rope(q.view(b, s.heads, s.head_dim), pos)
            k = self.rope(k.view(b, s.kv_heads, s.head_dim), pos)
            self.k_cache[i].index_copy_(2, pos, k.unsqueeze(2))
            self.v_cache[i].index_copy_(2, pos, v.view(b, s.kv_heads, 1, s.head_dim))
            attn = F.scaled_dot_product_attention(q.unsqueeze(2), self.k_cache[i], self.v_cache[i], attn_mask=visible,
                                                  enable_gqa=True)
            o = attn.reshape(b, s.heads * s.head_dim) @ layer["o"].t()
            x = self.reduce_add_norm(o, residual, layer["ln2"])
            gate, up = (x @ layer["gate_up"].t()).chunk(2, dim=-1)
            down = (F.silu(gate) * up) @ layer["down"].t()
            next_norm = self.layers[i + 1]["ln1"] if i + 1 < len(self.layers) else self.final_norm
            x = self.reduce_add_norm(down, residual, next_norm)
        logits = x @ self.lm_head.t()
        best, where = logits.float().max(dim=-1)
        candidates = funcol.all_gather_tensor(torch.stack([best, (where + self.vocab_offset).float()], dim=1), 0,
                                              dist.group.WORLD).view(-1, b, 2)
        winner = candidates[:, :, 0].argmax(dim=0)
        tokens.copy_(candidates.gather(0, winner.view(1, b, 1).expand(1, b, 2))[0, :, 1].long())
        pos.add_(1)
        return logits


def main():
    args = parse_args()
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    torch.cuda.set_device(local_rank)
    dist.init_process_group("nccl", device_id=torch.device("cuda", local_rank))
    rank, tp = dist.get_rank(), dist.get_world_size()
    shapes = Shapes(args.model, tp, args.num_layers)
    comm = None
    if args.allreduce == "nvrar" or args.check:
        import nvrar
        comm = nvrar.Communicator()
        if rank == 0:
            print(f"torch_tp_decode: NVRAR {nvrar.version()}: {comm.describe()}", flush=True)
    max_len = args.context_len + args.warmup + args.steps + 8
    model = Decoder(shapes, args.batch_size, max_len, rank, args.allreduce, comm.name if comm else "",
                    not args.no_fused_norm)
    tokens = torch.randint(0, shapes.vocab, (args.batch_size,), device="cuda",
                           generator=torch.Generator(device="cuda").manual_seed(7))
    pos = torch.tensor([args.context_len], device="cuda")

    if args.check:
        check(model, tokens, pos, rank)

    step = model.forward
    if not args.eager:
        step = torch.compile(model.forward, fullgraph=True)
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(3):  # compile and warm up outside capture
                step(tokens, pos)
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            step(tokens, pos)
        step = lambda *_: graph.replay()  # noqa: E731  (tokens and pos advance inside the graph)
    pos.fill_(args.context_len)
    for _ in range(args.warmup):
        step(tokens, pos)
    torch.cuda.synchronize()
    dist.barrier()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(args.steps):
        step(tokens, pos)
    end.record()
    end.synchronize()
    if comm is not None:
        comm.check()
    ms = start.elapsed_time(end) / args.steps
    slowest = torch.tensor([ms], device="cuda")
    dist.all_reduce(slowest, op=dist.ReduceOp.MAX)
    if rank == 0:
        mode = "eager" if args.eager else "torch.compile + CUDA graph"
        ar = args.allreduce + (" (unfused norm)" if args.allreduce == "nvrar" and args.no_fused_norm else "")
        print(f"torch_tp_decode: {args.model} layers {shapes.layers} TP {tp} batch {args.batch_size} context "
              f"{args.context_len} all-reduce {ar}, {mode}: {slowest.item():.3f} ms per decode step "
              f"({args.steps} steps)", flush=True)
        if args.json:
            with open(args.json, "w") as f:
                json.dump({"model": args.model, "layers": shapes.layers, "tp": tp, "batch": args.batch_size,
                           "context_len": args.context_len, "allreduce": args.allreduce,
                           "fused_norm": not args.no_fused_norm, "compiled": not args.eager, "steps": args.steps,
                           "ms_per_step": slowest.item(), "time": time.strftime("%Y-%m-%dT%H:%M:%S")}, f, indent=1)
    if comm is not None:
        comm.close()
    dist.destroy_process_group()


def check(model, tokens, pos, rank):
    """One eager step's logits with NCCL, then with NVRAR, from the same KV cache and tokens."""
    saved = (model.allreduce, tokens.clone(), pos.clone())
    results = {}
    for backend in ("nccl", "nvrar"):
        model.allreduce = backend
        tokens.copy_(saved[1])
        pos.copy_(saved[2])
        results[backend] = model.forward(tokens, pos).float()
    model.allreduce = saved[0]
    tokens.copy_(saved[1])
    pos.copy_(saved[2])
    a, b = results["nccl"], results["nvrar"]
    error = ((a - b).abs().max() / a.abs().max().clamp_min(1e-6)).item()
    worst = torch.tensor([error], device="cuda")
    dist.all_reduce(worst, op=dist.ReduceOp.MAX)
    ok = worst.item() < 5e-2 and math.isfinite(worst.item())
    if rank == 0:
        print(f"torch_tp_decode: check: logits under nvrar vs nccl differ by {worst.item():.2e} of their largest "
              f"magnitude: {'PASSED' if ok else 'FAILED'}", flush=True)
    if not ok:
        sys.exit(1)


if __name__ == "__main__":
    main()
