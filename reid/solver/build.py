"""Optimizer and scheduler factories with plain keyword arguments."""
from __future__ import annotations

import bisect
from collections.abc import Iterable, Sequence
from functools import partial

import torch

from reid.utils.registry import Registry

OPTIMIZER_REGISTRY = Registry("optimizer")


@OPTIMIZER_REGISTRY.register("adam")
def _adam(params, lr: float, weight_decay: float, momentum: float) -> torch.optim.Optimizer:
    return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)


@OPTIMIZER_REGISTRY.register("adamw")
def _adamw(params, lr: float, weight_decay: float, momentum: float) -> torch.optim.Optimizer:
    return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)


@OPTIMIZER_REGISTRY.register("sgd")
def _sgd(params, lr: float, weight_decay: float, momentum: float) -> torch.optim.Optimizer:
    return torch.optim.SGD(
        params, lr=lr, weight_decay=weight_decay, momentum=momentum, nesterov=True
    )


def build_optimizer(
    params: Iterable[torch.nn.Parameter],
    name: str = "adam",
    lr: float = 3.5e-4,
    weight_decay: float = 5e-4,
    momentum: float = 0.9,
) -> torch.optim.Optimizer:
    """Build an optimizer over the trainable ``params`` ("adam", "adamw" or "sgd")."""
    params = [p for p in params if p.requires_grad]
    return OPTIMIZER_REGISTRY.get(name)(params, lr=lr, weight_decay=weight_decay, momentum=momentum)


def warmup_multistep_factor(
    epoch: int, warmup_epochs: int, warmup_factor: float, steps: Sequence[int], gamma: float
) -> float:
    """Learning-rate multiplier at ``epoch`` (0-based).

    Linear warm-up from ``warmup_factor`` to 1 over ``warmup_epochs`` epochs, then multiplied by
    ``gamma`` at each milestone of ``steps`` already reached (the schedule of SpCL, Ge et al. 2020).
    """
    warm = 1.0
    if epoch < warmup_epochs:
        alpha = epoch / warmup_epochs
        warm = warmup_factor * (1 - alpha) + alpha
    return warm * gamma ** bisect.bisect_right(sorted(steps), epoch)


def build_lr_scheduler(
    optimizer: torch.optim.Optimizer,
    warmup_epochs: int = 10,
    warmup_factor: float = 0.01,
    steps: Sequence[int] = (20, 40),
    gamma: float = 0.1,
) -> torch.optim.lr_scheduler.LambdaLR:
    """Epoch-based scheduler: call ``scheduler.step()`` once at the end of every epoch."""
    factor = partial(
        warmup_multistep_factor,
        warmup_epochs=warmup_epochs,
        warmup_factor=warmup_factor,
        steps=tuple(steps),
        gamma=gamma,
    )
    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
