"""Thin helpers over ``torch.distributed`` (launched with ``torchrun``; no home-made launcher).

Every function is a no-op (or the identity) when the process group is not initialised, so the
same code runs on one CPU, one GPU or many GPUs / nodes.
"""
from __future__ import annotations

import hashlib
import logging
import os
from typing import Any

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


def wrap_ddp(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """``model`` inside ``DistributedDataParallel`` when a process group is initialised (so the
    gradients are averaged over ranks and the initial weights are rank 0's), else ``model``.

    Keep the unwrapped module for checkpoints and evaluation; only the training forward goes
    through the wrapper.
    """
    if not is_dist():
        return model
    from torch.nn.parallel import DistributedDataParallel

    ids = [device.index if device.index is not None else 0] if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids)


@torch.no_grad()
def broadcast_buffers(model: torch.nn.Module, src: int = 0) -> None:
    """Give every rank rank ``src``'s buffers (BN running statistics), as DDP does at the start
    of each forward; call it before a checkpoint so the saved statistics are the replicated ones.
    """
    if is_dist():
        for buf in model.buffers():
            dist.broadcast(buf, src)


def _named_tensors(obj: Any, prefix: str = "") -> list[tuple[str, torch.Tensor]]:
    if isinstance(obj, torch.Tensor):
        return [(prefix, obj)]
    if isinstance(obj, dict):
        return [item for key in sorted(obj, key=str)
                for item in _named_tensors(obj[key], f"{prefix}.{key}" if prefix else str(key))]
    if isinstance(obj, (list, tuple)):
        return [item for i, v in enumerate(obj) for item in _named_tensors(v, f"{prefix}[{i}]")]
    return []


def _digest(t: torch.Tensor) -> int:
    """A signed 64-bit BLAKE2 hash of the bytes (and shape) of ``t``."""
    data = t.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes()
    h = hashlib.blake2b(data + str(tuple(t.shape)).encode(), digest_size=8).digest()
    return int.from_bytes(h, "little", signed=True)


def check_same_across_ranks(state: Any, what: str) -> None:
    """Raise ``RuntimeError`` when the tensors of ``state`` (a nested dict / list of tensors)
    differ between ranks; a no-op without a process group.

    Compares a 64-bit hash of each tensor's bytes, gathered from every rank: replicated state
    (weights under DDP, the hybrid memory) must be bit-identical, so any difference means the
    ranks have diverged.
    """
    if not is_dist():
        return
    named = _named_tensors(state)
    if not named:
        return
    tensors = [t for _, t in named]
    # NCCL only moves CUDA tensors (whatever device the state lives on); Gloo takes CPU ones
    nccl = dist.get_backend() == "nccl"
    device = torch.device("cuda", torch.cuda.current_device()) if nccl else torch.device("cpu")
    fp = torch.tensor([_digest(t) for t in tensors], dtype=torch.int64, device=device)
    gathered = all_gather_tensor(fp.unsqueeze(0))
    bad = (gathered != gathered[:1]).any(dim=0)
    if bool(bad.any()):
        names = [named[i][0] for i in bad.nonzero().flatten().tolist()]
        raise RuntimeError(
            f"{what} differs between ranks ({len(names)} of {len(tensors)} tensors: "
            f"{', '.join(names[:5])}{', ...' if len(names) > 5 else ''}): the ranks have diverged "
            "(model not wrapped in DistributedDataParallel, or a rank-local update)"
        )
