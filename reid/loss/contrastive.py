"""Unified contrastive loss of SpCL (Ge et al., "Self-paced Contrastive Learning with Hybrid
Memory for Domain Adaptive Object Re-ID", NeurIPS 2020, Sec. 3.1, Eq. 1).

For an L2-normalised feature ``f`` whose positive prototype is ``z+``::

    L_f = -log( exp(<f, z+> / tau) / sum_k exp(<f, z_k> / tau) )

where the prototypes ``z_k`` are every source class centroid, every target cluster centroid and
every un-clustered target instance feature held by the hybrid memory. As a function of ``f`` it
is a softmax cross-entropy over the logits ``f @ Z^T / tau``, which is what this module computes,
so it can be tested and reused without the memory (:class:`reid.memory.HybridMemory`).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def released_nll(logits: torch.Tensor, targets: torch.Tensor, eps: float) -> torch.Tensor:
    """Per-sample ``-log(p_target + eps)`` with ``p = exp(l) / (sum_k exp(l_k) + eps)``: the
    softmax of SpCL's released code, which adds ``eps`` (1e-6) inside the normaliser and the log.

    Computed stably: with ``m = max_k l_k``, ``p = exp(l - m) / (sum_k exp(l_k - m) + eps e^-m)``.

    Args:
        logits: (B, P) float logits (already divided by the temperature).
        targets: (B,) int64 positive of each row.
        eps: the constant (>= 0; 0 gives the exact negative log-softmax).

    Returns:
        (B,) per-sample losses.
    """
    m = logits.max(dim=1, keepdim=True).values.detach()
    e = torch.exp(logits - m)
    denom = e.sum(dim=1, keepdim=True) + eps * torch.exp(-m)
    p = e.gather(1, targets[:, None]) / denom
    return -torch.log(p + eps).squeeze(1)


def contrastive_logits_loss(
    feats: torch.Tensor,
    prototypes: torch.Tensor,
    targets: torch.Tensor,
    temperature: float,
    *,
    groups: torch.Tensor | None = None,
    eps: float = 0.0,
) -> torch.Tensor:
    """The loss without input validation (used by the memory, which builds valid targets).

    Args:
        feats, prototypes, targets, temperature: as :func:`unified_contrastive_loss`.
        groups: (B,) int group (domain) of every sample, or None. With groups the result is
            the **sum over the groups present of each group's mean loss** (SpCL's UDA objective
            ``L_source + L_target``); without, the mean over the batch. One group present gives
            the plain mean.
        eps: 0 for the exact log-softmax, else the released code's constant (:func:`released_nll`).

    Returns:
        0-dim loss.
    """
    logits = feats @ prototypes.t() / temperature
    present = torch.unique(groups) if groups is not None else None
    if present is None or present.numel() == 1:
        if eps == 0.0:
            return F.cross_entropy(logits, targets)
        return released_nll(logits, targets, eps).mean()
    nll = (released_nll(logits, targets, eps) if eps > 0.0
           else F.cross_entropy(logits, targets, reduction="none"))
    return torch.stack([nll[groups == g].mean() for g in present]).sum()


def unified_contrastive_loss(
    feats: torch.Tensor,
    prototypes: torch.Tensor,
    targets: torch.Tensor,
    temperature: float = 0.05,
) -> torch.Tensor:
    """SpCL unified contrastive loss (Eq. 1), averaged over the batch.

    Args:
        feats: (B, D) float features, normally L2-normalised (the loss does not normalise).
        prototypes: (P, D) prototype matrix of the same dtype (class / cluster centroids and
            outlier instances); gradients flow into it if it requires grad.
        targets: (B,) int64, the row of ``prototypes`` that is each feature's positive.
        temperature: softmax temperature tau (> 0); SpCL uses 0.05.

    Returns:
        A 0-dim tensor: the mean over the batch of ``-log softmax(f @ Z^T / tau)[target]``.
    """
    if feats.dim() != 2 or prototypes.dim() != 2:
        raise ValueError(
            f"feats and prototypes must be 2-D, got shapes {tuple(feats.shape)} and "
            f"{tuple(prototypes.shape)}"
        )
    if feats.shape[1] != prototypes.shape[1]:
        raise ValueError(
            f"feature dimension mismatch: feats {feats.shape[1]} vs prototypes "
            f"{prototypes.shape[1]}"
        )
    if feats.shape[0] == 0 or prototypes.shape[0] == 0:
        raise ValueError("unified_contrastive_loss needs a non-empty batch and prototype set")
    if targets.shape != (feats.shape[0],):
        raise ValueError(
            f"targets must have shape ({feats.shape[0]},), got {tuple(targets.shape)}"
        )
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    targets = targets.long()
    bad = (targets < 0) | (targets >= prototypes.shape[0])
    if bool(bad.any()):
        raise ValueError(
            f"targets out of range [0, {prototypes.shape[0]}): "
            f"{targets[bad][:10].tolist()}"
        )
    return contrastive_logits_loss(feats, prototypes, targets, temperature)
