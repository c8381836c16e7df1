"""Process-group setup for `torchrun` (DDP): one process per device, rank 0 writes.

Without torchrun's environment (`WORLD_SIZE` unset or 1) everything degrades to a
single process and no process group is created.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from ..core.device import resolve_device


@dataclass(frozen=True)
class DistContext:
    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def _resolve_device(requested: str | None, local_rank: int, distributed: bool) -> torch.device:
    device = resolve_device(requested)
    if device.type == "cuda":
        if distributed or device.index is None:  # torchrun: one GPU per local rank
            device = torch.device("cuda", local_rank if distributed else 0)
        torch.cuda.set_device(device)
    return device


def setup(requested_device: str | None) -> DistContext:
    """Join torchrun's process group when launched by it (gloo on CPU, nccl on GPU)."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = _resolve_device(requested_device, local_rank, world_size > 1)
    if world_size > 1 and not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend, device_id=device if device.type == "cuda" else None)
    return DistContext(rank, world_size, local_rank, device)


def cleanup(ctx: DistContext) -> None:
    if ctx.distributed and dist.is_initialized():
        dist.destroy_process_group()


def barrier(ctx: DistContext) -> None:
    if ctx.distributed:
        dist.barrier()


def all_reduce_(tensor: torch.Tensor, ctx: DistContext, op=dist.ReduceOp.SUM) -> torch.Tensor:
    """In-place all-reduce across ranks; a no-op in a single process."""
    if ctx.distributed:
        dist.all_reduce(tensor, op=op)
    return tensor


def gather_objects(obj, ctx: DistContext) -> list:
    """Every rank's `obj` (picklable), in rank order, on every rank."""
    if not ctx.distributed:
        return [obj]
    out: list = [None] * ctx.world_size
    dist.all_gather_object(out, obj)
    return out
