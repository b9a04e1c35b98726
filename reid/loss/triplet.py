"""Batch-hard triplet loss (Hermans, Beyer and Leibe, "In Defense of the Triplet Loss for
Person Re-Identification", arXiv:1703.07737, 2017, Eq. 5 and the soft margin of Sec. 3.1).

For every anchor ``a`` of the batch: ``d+ = max_{p: y_p = y_a, p != a} d(a, p)`` (hardest
positive) and ``d- = min_{n: y_n != y_a} d(a, n)`` (hardest negative), with the Euclidean
(not squared) distance ``d``. The loss per anchor is ``max(0, margin + d+ - d-)`` or, with
``margin = 0``, the soft margin ``log(1 + exp(d+ - d-))``.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def euclidean_dist(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """(M, D), (N, D) -> (M, N) Euclidean distances; squares clamped at 1e-12 before the root
    so that identical vectors give a finite (zero) gradient."""
    d2 = (x * x).sum(1, keepdim=True) + (y * y).sum(1)[None, :] - 2.0 * (x @ y.t())
    return d2.clamp_min(1e-12).sqrt()


def batch_hard_triplet_loss(
    feats: torch.Tensor,
    labels: torch.Tensor,
    margin: float = 0.3,
    normalize: bool = False,
) -> torch.Tensor:
    """Batch-hard triplet loss (Hermans et al. 2017).

    Args:
        feats: (B, D) float embeddings.
        labels: (B,) int identity labels.
        margin: hinge margin (in distance units); 0 selects the soft margin
            ``softplus(d+ - d-)``.
        normalize: L2-normalise ``feats`` first (distances then lie in [0, 2]).

    Returns:
        0-dim tensor: mean over the anchors that have at least one other sample of their
        identity (anchors without a positive are skipped; duplicates of the same image count as
        positives). Raises ``ValueError`` when no anchor has both a positive and a negative.
    """
    if feats.dim() != 2 or feats.shape[0] == 0:
        raise ValueError(f"feats must be a non-empty (B, D) tensor, got {tuple(feats.shape)}")
    if labels.shape != (feats.shape[0],):
        raise ValueError(f"labels must have shape ({feats.shape[0]},), got {tuple(labels.shape)}")
    if margin < 0:
        raise ValueError(f"margin must be >= 0 (0 = soft margin), got {margin}")
    if normalize:
        feats = F.normalize(feats, dim=1)
    dist = euclidean_dist(feats, feats)
    same = labels[:, None] == labels[None, :]
    eye = torch.eye(len(labels), dtype=torch.bool, device=labels.device)
    pos_mask = same & ~eye
    neg_mask = ~same
    valid = pos_mask.any(1) & neg_mask.any(1)
    if not bool(valid.any()):
        raise ValueError(
            "batch-hard triplet loss needs an anchor with both a positive and a negative in the "
            f"batch; got labels {labels[:20].tolist()}{'...' if len(labels) > 20 else ''} "
            "(use an identity-balanced sampler with num_instances >= 2 and >= 2 identities)"
        )
    inf = torch.finfo(dist.dtype).max
    d_ap = dist.masked_fill(~pos_mask, -inf).max(1).values[valid]
    d_an = dist.masked_fill(~neg_mask, inf).min(1).values[valid]
    if margin > 0:
        loss = F.relu(d_ap - d_an + margin)
    else:
        loss = F.softplus(d_ap - d_an)
    return loss.mean()


class TripletLoss(nn.Module):
    """Module form of :func:`batch_hard_triplet_loss`: ``loss = TripletLoss(0.3)(feats, pids)``."""

    def __init__(self, margin: float = 0.3, normalize: bool = False) -> None:
        super().__init__()
        if margin < 0:
            raise ValueError(f"margin must be >= 0 (0 = soft margin), got {margin}")
        self.margin = margin
        self.normalize = normalize

    def forward(self, feats: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return batch_hard_triplet_loss(feats, labels, margin=self.margin, normalize=self.normalize)

    def extra_repr(self) -> str:
        return f"margin={self.margin}, normalize={self.normalize}"
