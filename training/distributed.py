"""Data-parallel training under torchrun: process group from the environment, explicit gradient means.

We do not wrap the nets in DistributedDataParallel: the bi-level hypergradient is built with
`torch.autograd.grad`, which never fires DDP's backward hooks, so DDP would silently skip the
gradient sync. Instead every rank starts from rank 0's parameters and bilevel_step calls
`all_reduce_mean` on each gradient before any optimiser step, which keeps the replicas identical.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn


class DistributedError(RuntimeError):
    """The torchrun environment is inconsistent; the message names the variable and the fix."""


@dataclass(frozen=True)
class DistContext:
    """This process's place in the job (rank 0 of 1 when not launched by torchrun)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Only the main rank logs, evaluates and writes checkpoints."""
        return self.rank == 0


def init_distributed(device_type: str) -> DistContext:
    """Join the process group described by torchrun's RANK / WORLD_SIZE / LOCAL_RANK, if any.

    Backend: nccl on CUDA (and this rank's GPU becomes the current device), gloo on CPU.

    Raises:
        DistributedError: WORLD_SIZE > 1 without RANK, or a rank outside 0..WORLD_SIZE-1.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return DistContext()
    if "RANK" not in os.environ:
        raise DistributedError("WORLD_SIZE > 1 but RANK is unset; launch with torchrun")
    ctx = DistContext(int(os.environ["RANK"]), world_size, int(os.environ.get("LOCAL_RANK", "0")))
    if not 0 <= ctx.rank < world_size:
        raise DistributedError(f"RANK={ctx.rank} is outside 0..{world_size - 1}; check the launcher")
    if device_type == "cuda":
        torch.cuda.set_device(ctx.local_rank)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device_type == "cuda" else "gloo")
    return ctx


def broadcast_parameters(modules: Iterable[nn.Module | None], ctx: DistContext) -> None:
    """Copy rank 0's parameters and buffers to every rank (different seeds give different inits)."""
    if not ctx.enabled:
        return
    for module in modules:
        if module is None:
            continue
        for tensor in [*module.parameters(), *module.buffers()]:
            dist.broadcast(tensor.data, src=0)


def all_reduce_mean(tensors: Sequence[torch.Tensor | None]) -> None:
    """Average tensors (gradients) in place across ranks, in one flat all-reduce.

    Every rank must pass the same list of shapes; None entries (no gradient) are skipped.
    """
    present = [t for t in tensors if t is not None]
    if not present:
        return
    flat = torch.cat([t.reshape(-1) for t in present])
    dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    flat /= dist.get_world_size()
    for t, chunk in zip(present, flat.split([t.numel() for t in present]), strict=True):
        t.copy_(chunk.view_as(t))


def gradient_sync(ctx: DistContext) -> Callable[[Sequence[torch.Tensor | None]], None] | None:
    """The `all_reduce` hook for bilevel_step: all_reduce_mean under DDP, None on one process."""
    return all_reduce_mean if ctx.enabled else None


def cleanup(ctx: DistContext) -> None:
    """Leave the process group (end of training or error)."""
    if ctx.enabled and dist.is_initialized():
        dist.destroy_process_group()
