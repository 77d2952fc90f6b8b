"""torchrun / DistributedDataParallel support for the image-level trainers.

Launch: ``torchrun --nproc_per_node=N -m defectkit finetune classifier ...``. torchrun sets
RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT; when they are present the trainer joins
the process group (NCCL on CUDA, gloo on CPU), wraps the model in DDP, shards batches by rank and
lets rank 0 alone evaluate and write files.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DistInfo:
    """rank / world size / local rank of this process; ``enabled`` when a process group is up."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    enabled: bool = False


def launched_by_torchrun() -> bool:
    return all(k in os.environ for k in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"))


@contextlib.contextmanager
def distributed(device: torch.device) -> Iterator[tuple[DistInfo, torch.device]]:
    """Join the torchrun process group (if launched by torchrun) for the duration of the block.

    Yields (DistInfo, device); under torchrun with CUDA the device becomes ``cuda:LOCAL_RANK``.
    Without torchrun's variables it yields a single-process DistInfo and the device unchanged.
    """
    if not launched_by_torchrun() or dist.is_initialized():
        yield DistInfo(), device
        return
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    info = DistInfo(dist.get_rank(), dist.get_world_size(), local_rank, True)
    log.info("distributed: rank %d of %d on %s", info.rank, info.world, device)
    try:
        yield info, device
    finally:
        dist.destroy_process_group()


def wrap_ddp(
    model: nn.Module, info: DistInfo, device: torch.device, *, find_unused: bool = False
) -> nn.Module:
    """DistributedDataParallel around ``model`` when a process group is up, else ``model``."""
    if not info.enabled:
        return model
    from torch.nn.parallel import DistributedDataParallel

    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids, find_unused_parameters=find_unused)


def unwrap(model: nn.Module) -> nn.Module:
    """The plain module inside a DDP wrapper (state dicts never carry a ``module.`` prefix)."""
    return model.module if hasattr(model, "module") and isinstance(model.module, nn.Module) else model


def all_reduce_sum(t: torch.Tensor) -> torch.Tensor:
    """Sum a CPU tensor over ranks (identity without a process group)."""
    if dist.is_available() and dist.is_initialized():
        t = t.clone()
        if dist.get_backend() == "nccl":
            t = t.cuda()
        dist.all_reduce(t)
        t = t.cpu()
    return t


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """Rank ``src``'s ``obj`` on every rank (identity without a process group)."""
    if dist.is_available() and dist.is_initialized():
        box = [obj]
        dist.broadcast_object_list(box, src=src)
        return box[0]
    return obj


def barrier() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
