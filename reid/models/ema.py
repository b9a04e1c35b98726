"""Mean teacher: an exponential moving average of a model's weights.

Tarvainen & Valpola, *Mean teachers are better role models*, NeurIPS 2017; used for re-ID
pseudo labels by MMT (Ge et al., *Mutual Mean-Teaching*, ICLR 2020): the temporal average of
the trained network gives steadier features than the network of any single step, so clustering
its features yields steadier pseudo labels, and it is usually the better model to evaluate.
After every optimiser step, each floating-point entry of the state dict (weights and BN running
statistics) follows ``e <- m e + (1 - m) w``; integer entries (BN batch counters) are copied.
"""
from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

__all__ = ["ModelEMA"]


class ModelEMA:
    """Exponential moving average (momentum ``m``) of ``model``'s state.

    Args:
        model: the trained model; the average starts as an exact copy of it.
        momentum: ``m`` in [0, 1): share of the old average kept at each update (0.999 in MMT;
            the time constant is ``1 / (1 - m)`` steps).

    The average lives in :attr:`module`, a copy of ``model`` in eval mode without gradients.

    Example:
        >>> ema = ModelEMA(model, momentum=0.99)
        >>> loss.backward(); optimizer.step(); ema.update(model)
        >>> feats = ema.module(images)  # extract / evaluate with the mean teacher
    """

    def __init__(self, model: nn.Module, momentum: float) -> None:
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"EMA momentum must be in [0, 1), got {momentum}")
        self.momentum = float(momentum)
        self.module = copy.deepcopy(model).eval()
        for p in self.module.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """One step of the average towards ``model`` (same architecture)."""
        src = model.state_dict()
        for key, avg in self.module.state_dict().items():
            new = src[key].detach()
            if avg.dtype.is_floating_point:
                avg.mul_(self.momentum).add_(new.to(avg.dtype), alpha=1.0 - self.momentum)
            else:
                avg.copy_(new)

    @torch.no_grad()
    def reset(self, model: nn.Module) -> None:
        """Make the average an exact copy of ``model`` (e.g. after its BN statistics were
        re-estimated before training)."""
        self.module.load_state_dict(model.state_dict())

    def state_dict(self) -> dict[str, Any]:
        return self.module.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.module.load_state_dict(state)
