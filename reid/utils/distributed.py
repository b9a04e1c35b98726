"""Thin helpers over ``torch.distributed`` (launched with ``torchrun``; no home-made launcher).

Every function is a no-op (or the identity) when the process group is not initialised, so the
same code runs on one CPU, one GPU or many GPUs / nodes.
"""
from __future__ import annotations

import logging
import os

import torch
import torch.distributed as dist

logger = logging.getLogger(__name__)


def is_dist() -> bool:
    return dist.is_available() and dist.is_initialized()


def get_rank() -> int:
    return dist.get_rank() if is_dist() else 0


def get_world_size() -> int:
    return dist.get_world_size() if is_dist() else 1


def is_main_process() -> bool:
    return get_rank() == 0


def init_distributed(device_name: str = "auto") -> torch.device:
    """Initialise the process group when started by ``torchrun`` (``WORLD_SIZE`` set).

    Returns the device of this rank: ``cuda:LOCAL_RANK`` with NCCL when CUDA is available and not
    disabled by ``device_name == "cpu"``, else CPU with Gloo.
    """
    from reid.utils.env import resolve_device

    if "WORLD_SIZE" not in os.environ or is_dist():
        device = resolve_device(device_name)
        if is_dist() and device.type == "cuda":
            device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        return device
    use_cuda = device_name != "cpu" and torch.cuda.is_available()
    if use_cuda:
        local_rank = int(os.environ.get("LOCAL_RANK", 0))
        torch.cuda.set_device(local_rank)
        device = torch.device("cuda", local_rank)
    else:
        device = torch.device("cpu")
    dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    logger.info("distributed: rank %d of %d on %s", get_rank(), get_world_size(), device)
    return device


@torch.no_grad()
def all_gather_tensor(tensor: torch.Tensor) -> torch.Tensor:
    """Concatenate (along dim 0) the equally shaped tensors of every rank, in rank order."""
    if not is_dist():
        return tensor
    parts = [torch.empty_like(tensor) for _ in range(get_world_size())]
    dist.all_gather(parts, tensor.contiguous())
    return torch.cat(parts, dim=0)


def broadcast_tensor(tensor: torch.Tensor, src: int = 0) -> torch.Tensor:
    """Broadcast ``tensor`` (in place) from rank ``src``; returns it."""
    if is_dist():
        dist.broadcast(tensor, src)
    return tensor


def barrier() -> None:
    if is_dist():
        dist.barrier()
