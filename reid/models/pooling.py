"""Global pooling of feature maps: average, max and GeM (learnable exponent)."""
from __future__ import annotations

import torch
from torch import Tensor, nn

from reid.utils.registry import Registry

POOLING_REGISTRY = Registry("pooling")


def gem(x: Tensor, p: Tensor | float, eps: float = 1e-6) -> Tensor:
    """Generalised-mean pooling (Radenovic, Tolias & Chum, TPAMI 2018, eq. 2).

    ``f_c = (mean_{h,w} max(x_chw, eps)^p)^(1/p)``: p = 1 is average pooling, p -> inf max pooling.

    Args:
        x: ``(B, C, *spatial)`` feature map (any floating dtype; computed in float32).
        p: exponent, a float or a (1,) tensor (learnable).
        eps: lower clamp keeping the power defined for non-positive activations.

    Returns:
        ``(B, C)`` pooled features, dtype of ``x``.
    """
    dims = tuple(range(2, x.dim()))
    out = x.float().clamp(min=eps).pow(p).mean(dim=dims).pow(1.0 / p)
    return out.to(x.dtype)


@POOLING_REGISTRY.register("avg")
class AvgPool(nn.Module):
    """Global average pooling ``(B, C, *spatial) -> (B, C)``."""

    def forward(self, x: Tensor) -> Tensor:
        return x.mean(dim=tuple(range(2, x.dim())))


@POOLING_REGISTRY.register("max")
class MaxPool(nn.Module):
    """Global max pooling ``(B, C, *spatial) -> (B, C)``."""

    def forward(self, x: Tensor) -> Tensor:
        return x.flatten(2).amax(dim=2)


@POOLING_REGISTRY.register("gem")
class GeMPool(nn.Module):
    """GeM pooling ``(B, C, *spatial) -> (B, C)`` with a learnable exponent (see :func:`gem`).

    Args:
        p: initial exponent (> 0).
        eps: lower clamp of activations.
    """

    def __init__(self, p: float = 3.0, eps: float = 1e-6) -> None:
        super().__init__()
        if p <= 0:
            raise ValueError(f"GeM exponent must be positive, got {p}")
        self.p = nn.Parameter(torch.tensor([float(p)]))
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        return gem(x, self.p, self.eps)

    def extra_repr(self) -> str:
        return f"p={self.p.item():.4g}, eps={self.eps}"


def build_pooling(name: str, gem_p: float = 3.0) -> nn.Module:
    """Pooling module ``name`` ("avg", "max" or "gem"; ``gem_p`` is GeM's initial exponent)."""
    cls = POOLING_REGISTRY.get(name)
    return cls(p=gem_p) if cls is GeMPool else cls()


__all__ = ["AvgPool", "GeMPool", "MaxPool", "POOLING_REGISTRY", "build_pooling", "gem"]
