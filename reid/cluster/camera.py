"""Camera-bias removal before clustering.

Features of an untrained (or ImageNet) encoder are dominated by each camera's background and
colour style, so clusters form per camera instead of per identity. Subtracting every camera's
mean feature before clustering removes that shared offset, in the spirit of the per-camera
normalisation of Zhuang et al., "Rethinking the Distribution Gap of Person Re-identification
with Camera-based Batch Normalization", ECCV 2020, applied here to the clustered features only
(the memory and the training loss keep the original features).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def camera_centred(features: torch.Tensor, camids: torch.Tensor) -> torch.Tensor:
    """Subtract each camera's mean feature, then L2-normalise every row.

    Args:
        features: (N, D) float features (any scale).
        camids: (N,) integer camera ids (any values, not necessarily contiguous).

    Returns:
        (N, D) float32 features, unit L2 norm per row (a row equal to its camera's mean becomes
        the zero vector, which ``F.normalize`` keeps at zero).

    Example:
        >>> f = torch.tensor([[1.0, 0.0], [0.0, 1.0], [2.0, 0.0], [1.0, 1.0]])
        >>> camera_centred(f, torch.tensor([0, 0, 1, 1]))
        tensor([[ 0.7071, -0.7071],
                [-0.7071,  0.7071],
                [ 0.7071, -0.7071],
                [-0.7071,  0.7071]])
    """
    if features.ndim != 2 or camids.shape != features.shape[:1]:
        raise ValueError(f"expected (N, D) features and (N,) camids, got {tuple(features.shape)} "
                         f"and {tuple(camids.shape)}")
    x = features.float()
    _, inverse = torch.unique(camids.to(x.device), return_inverse=True)
    num = int(inverse.max()) + 1 if inverse.numel() else 0
    sums = torch.zeros(num, x.shape[1], dtype=x.dtype, device=x.device).index_add_(0, inverse, x)
    counts = torch.bincount(inverse, minlength=num).to(x.dtype).unsqueeze(1)
    return F.normalize(x - (sums / counts)[inverse], dim=1)
