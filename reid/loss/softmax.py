"""Label-smoothed cross-entropy (Szegedy et al., "Rethinking the Inception Architecture for
Computer Vision", CVPR 2016, Sec. 7).

The one-hot target ``y`` of ``K`` classes is replaced by ``q = (1 - eps) * y + eps / K`` and the
loss is ``-sum_k q_k log p_k`` averaged over the batch (``eps = 0.1`` as in the re-ID strong
baseline of Luo et al., CVPRW 2019).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def cross_entropy_label_smooth(
    logits: torch.Tensor, targets: torch.Tensor, epsilon: float = 0.1
) -> torch.Tensor:
    """Label-smoothed cross-entropy.

    Args:
        logits: (B, K) float class scores (unnormalised).
        targets: (B,) int64 class ids in ``[0, K)``.
        epsilon: smoothing mass in ``[0, 1]`` spread uniformly over the K classes.

    Returns:
        0-dim tensor: ``mean_b [-(1 - eps) log p_b[y_b] - eps / K sum_k log p_b[k]]`` (nats).
    """
    if logits.dim() != 2 or logits.shape[0] == 0:
        raise ValueError(f"logits must be a non-empty (B, K) tensor, got {tuple(logits.shape)}")
    if targets.shape != (logits.shape[0],):
        raise ValueError(
            f"targets must have shape ({logits.shape[0]},), got {tuple(targets.shape)}"
        )
    if not 0.0 <= epsilon <= 1.0:
        raise ValueError(f"epsilon must be in [0, 1], got {epsilon}")
    num_classes = logits.shape[1]
    targets = targets.long()
    bad = (targets < 0) | (targets >= num_classes)
    if bool(bad.any()):
        raise ValueError(f"targets out of range [0, {num_classes}): {targets[bad][:10].tolist()}")
    log_probs = F.log_softmax(logits, dim=1)
    nll = -log_probs.gather(1, targets[:, None]).squeeze(1)
    uniform = -log_probs.mean(dim=1)
    return ((1.0 - epsilon) * nll + epsilon * uniform).mean()


class CrossEntropyLabelSmooth(nn.Module):
    """Module form of :func:`cross_entropy_label_smooth` that also checks the class count.

    Args:
        num_classes: K, the number of columns the logits must have.
        epsilon: smoothing mass (0.1 by default; 0 gives the plain cross-entropy).
    """

    def __init__(self, num_classes: int, epsilon: float = 0.1) -> None:
        super().__init__()
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        if not 0.0 <= epsilon <= 1.0:
            raise ValueError(f"epsilon must be in [0, 1], got {epsilon}")
        self.num_classes = num_classes
        self.epsilon = epsilon

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        if logits.dim() != 2 or logits.shape[1] != self.num_classes:
            raise ValueError(
                f"expected logits of shape (B, {self.num_classes}), got {tuple(logits.shape)}"
            )
        return cross_entropy_label_smooth(logits, targets, self.epsilon)

    def extra_repr(self) -> str:
        return f"num_classes={self.num_classes}, epsilon={self.epsilon}"
