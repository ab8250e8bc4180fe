"""NVRAR as PyTorch operators, so torch.compile(fullgraph=True) and CUDA graphs see each call as one opaque op:

    torch.ops.nvrar.all_reduce(x, comm.name) -> Tensor
        functional: a new tensor holding the sum of x over comm's ranks (x is not changed).
    torch.ops.nvrar.allreduce_add_rmsnorm(x, residual, weight, eps, comm.name) -> Tensor
        residual += all_reduce(x) in place; returns rmsnorm(residual, eps) * weight.

The communicator travels by name (Communicator.name): operators take tensors, numbers and strings, not Python
objects. Each runs on the current CUDA stream, which is what stream capture records, so a CUDA graph captured around
it (torch.cuda.graph, or torch.compile's "reduce-overhead" mode) replays NVRAR's kernel. The fake (meta)
implementations give the output's shape, dtype and device for tracing.

Imported by nvrar.Communicator (needs PyTorch 2.4 or later: torch.library.custom_op).
"""

import torch

from .communicator import lookup


@torch.library.custom_op("nvrar::all_reduce", mutates_args=())
def all_reduce(tensor: torch.Tensor, comm: str) -> torch.Tensor:
    return lookup(comm).all_reduce(tensor.contiguous())


@all_reduce.register_fake
def _all_reduce_fake(tensor, comm):
    return torch.empty(tensor.shape, dtype=tensor.dtype, device=tensor.device)


@torch.library.custom_op("nvrar::allreduce_add_rmsnorm", mutates_args=("residual",))
def allreduce_add_rmsnorm(x: torch.Tensor, residual: torch.Tensor, weight: torch.Tensor, eps: float,
                          comm: str) -> torch.Tensor:
    return lookup(comm).allreduce_add_rmsnorm(x.contiguous(), residual, weight.contiguous(), eps)


@allreduce_add_rmsnorm.register_fake
def _allreduce_add_rmsnorm_fake(x, residual, weight, eps, comm):
    return torch.empty(x.shape, dtype=x.dtype, device=x.device)
