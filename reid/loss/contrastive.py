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


def contrastive_logits_loss(
    feats: torch.Tensor, prototypes: torch.Tensor, targets: torch.Tensor, temperature: float
) -> torch.Tensor:
    """The loss without input validation (used by the memory, which builds valid targets)."""
    logits = feats @ prototypes.t() / temperature
    return F.cross_entropy(logits, targets)


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
