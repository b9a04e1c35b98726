"""Cluster memory of Cluster Contrast (Dai et al., "Cluster Contrast for Unsupervised Person
Re-Identification", ACCV 2022, Sec. 3).

The memory holds one L2-normalised row per pseudo-label cluster, ``M`` of shape ``(C, D)``. It
is re-initialised every epoch as the normalised mean of each cluster's extracted features
(:meth:`ClusterMemory.init_centroids`). For a feature ``f`` of cluster ``y`` the loss is the
cross-entropy of the logits ``f M^T / tau`` with target ``y`` (the paper's ClusterNCE, Eq. 2):
un-clustered images have no row and no loss. After the gradient, the memory is momentum-updated
(Eq. 3) in one of two ways:

* ``"mean"`` (the released code's default): for every sample in batch order,
  ``M[y] <- normalise(m M[y] + (1 - m) f)``; a cluster with K samples in the batch is updated K
  times, sequentially, as the released code's per-sample loop does.
* ``"hard"`` (the released code's ``--use-hard``): per cluster present in the batch, a single
  update with the batch member least similar to ``M[y]`` (the hardest positive).

The math is in the pure functions :func:`cluster_contrast_loss` and :func:`update_centroids`;
:class:`ClusterMemory` holds the buffer, gathers batches across DDP ranks before the update
(rank order, so every rank applies the same update) and resizes itself when a checkpoint with
another number of clusters is loaded.
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from reid.memory.hybrid import _occurrence_rounds, class_centroids
from reid.utils.distributed import all_gather_tensor

UPDATE_MODES = ("mean", "hard")


def cluster_contrast_loss(feats: torch.Tensor, centroids: torch.Tensor, labels: torch.Tensor,
                          temperature: float = 0.05) -> torch.Tensor:
    """ClusterNCE (Cluster Contrast Eq. 2): mean over the clustered samples of
    ``-log softmax(f M^T / tau)[y]``.

    Args:
        feats: (B, D) features, normally L2-normalised (not normalised here).
        centroids: (C, D) cluster memory ``M``.
        labels: (B,) int cluster of every sample in ``[0, C)``; -1 = un-clustered (left out).
        temperature: tau (> 0); Cluster Contrast uses 0.05.

    Returns:
        0-dim loss; 0 (still connected to ``feats``) when no sample is clustered.
    """
    if feats.dim() != 2 or centroids.dim() != 2 or feats.shape[1] != centroids.shape[1]:
        raise ValueError(f"feats (B, D) and centroids (C, D) needed, got {tuple(feats.shape)} "
                         f"and {tuple(centroids.shape)}")
    if labels.shape != (feats.shape[0],):
        raise ValueError(f"labels must have shape ({feats.shape[0]},), got {tuple(labels.shape)}")
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    labels = labels.to(feats.device).long()
    if bool(((labels < -1) | (labels >= centroids.shape[0])).any()):
        raise ValueError(f"labels must be in [-1, {centroids.shape[0]}), got "
                         f"{labels.min().item()}..{labels.max().item()}")
    valid = labels >= 0
    if not bool(valid.any()):
        return feats.sum() * 0.0
    logits = feats[valid] @ centroids.to(feats.dtype).t() / temperature
    return F.cross_entropy(logits, labels[valid])


@torch.no_grad()
def update_centroids(centroids: torch.Tensor, feats: torch.Tensor, labels: torch.Tensor,
                     momentum: float = 0.1, mode: str = "mean") -> torch.Tensor:
    """The memory after one batch's momentum update (Cluster Contrast Eq. 3); a new tensor.

    Args:
        centroids: (C, D) cluster memory ``M`` (rows L2-normalised).
        feats: (B, D) features of the batch, in batch order (L2-normalised).
        labels: (B,) int cluster of every sample; -1 = un-clustered (no update).
        momentum: m in ``M[y] <- normalise(m M[y] + (1 - m) f)``, in [0, 1].
        mode: "mean": every sample updates its row, sequentially in batch order (a cluster with
            K samples is updated K times); "hard": per cluster in the batch, one update with the
            sample of lowest ``<f, M[y]>`` (the first one on ties), similarities taken before
            the update.

    Returns:
        (C, D) updated memory, dtype and device of ``centroids``.
    """
    if mode not in UPDATE_MODES:
        raise ValueError(f"update mode must be one of {UPDATE_MODES}, got {mode!r}")
    if not 0.0 <= momentum <= 1.0:
        raise ValueError(f"momentum must be in [0, 1], got {momentum}")
    if feats.dim() != 2 or feats.shape[1] != centroids.shape[1]:
        raise ValueError(f"feats must be (B, {centroids.shape[1]}), got {tuple(feats.shape)}")
    if labels.shape != (feats.shape[0],):
        raise ValueError(f"labels must have shape ({feats.shape[0]},), got {tuple(labels.shape)}")
    labels = labels.to(centroids.device).long()
    if bool((labels >= centroids.shape[0]).any()):
        raise ValueError(f"labels must be < {centroids.shape[0]} clusters, got "
                         f"{labels.max().item()}")
    out = centroids.clone()
    keep = (labels >= 0).nonzero().squeeze(1)
    if keep.numel() == 0:
        return out
    x = feats.detach().to(out.device, out.dtype)[keep]
    y = labels[keep]
    if mode == "hard":
        sims = (x * out[y]).sum(dim=1)
        ids, inverse = torch.unique(y, return_inverse=True)
        lowest = torch.full((ids.numel(),), float("inf"), dtype=sims.dtype, device=sims.device)
        lowest = lowest.scatter_reduce(0, inverse, sims, reduce="amin")
        pos = torch.arange(y.numel(), device=y.device)
        candidates = torch.where(sims == lowest[inverse], pos, y.numel())
        first = torch.full_like(ids, y.numel()).scatter_reduce(0, inverse, candidates,
                                                               reduce="amin")
        out[ids] = F.normalize(momentum * out[ids] + (1.0 - momentum) * x[first], dim=1)
        return out
    for sel in _occurrence_rounds(y):  # rows are unique within a round, rounds in batch order
        r = y[sel]
        out[r] = F.normalize(momentum * out[r] + (1.0 - momentum) * x[sel], dim=1)
    return out


class ClusterMemory(nn.Module):
    """Cluster Contrast's memory: one row per cluster, ClusterNCE loss, momentum update.

    Args:
        num_features: D.
        temperature: tau of the loss (Cluster Contrast: 0.05).
        momentum: m of the update (released code: 0.1).
        mode: "mean" or "hard" (see :func:`update_centroids`).

    Buffer ``features`` (C, D) float32 holds the rows (C = 0 before :meth:`init_centroids`);
    it is in ``state_dict`` and a loaded checkpoint resizes it.

    Use: ``loss = memory(feats, labels)``; ``loss.backward()``; ``memory.update(feats, labels)``
    (the loss sees the memory before the update, as in the released code, where the update
    runs in the backward pass after the input gradient is computed).
    """

    def __init__(self, num_features: int, temperature: float = 0.05, momentum: float = 0.1,
                 mode: str = "mean") -> None:
        super().__init__()
        if num_features < 1:
            raise ValueError(f"num_features must be >= 1, got {num_features}")
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        if not 0.0 <= momentum <= 1.0:
            raise ValueError(f"momentum must be in [0, 1], got {momentum}")
        if mode not in UPDATE_MODES:
            raise ValueError(f"update mode must be one of {UPDATE_MODES}, got {mode!r}")
        self.num_features = int(num_features)
        self.temperature = float(temperature)
        self.momentum = float(momentum)
        self.mode = mode
        self.register_buffer("features", torch.zeros(0, self.num_features))

    @property
    def num_clusters(self) -> int:
        return int(self.features.shape[0])

    @torch.no_grad()
    def init_centroids(self, features: torch.Tensor, labels: torch.Tensor) -> None:
        """Rows = L2-normalised mean of every cluster's L2-normalised features (the start of
        every epoch; the released code averages the normalised extracted features).

        Args:
            features: (N, D) features of the clustered set (L2-normalised here).
            labels: (N,) int clusters in ``[-1, C)``, -1 = un-clustered (ignored); every
                cluster 0..C-1 must have a member.
        """
        labels = torch.as_tensor(labels).to(features.device).long()
        if labels.shape != (features.shape[0],):
            raise ValueError(f"labels must have shape ({features.shape[0]},), got "
                             f"{tuple(labels.shape)}")
        clustered = labels >= 0
        if not bool(clustered.any()):
            raise ValueError("no clustered sample: the cluster memory would be empty")
        feats = F.normalize(features.detach().float()[clustered], dim=1)
        rows = class_centroids(feats, labels[clustered])
        self.features = rows.to(self.features.device)

    def forward(self, feats: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """ClusterNCE loss of a batch (see :func:`cluster_contrast_loss`).

        Args:
            feats: (B, D) features, L2-normalised here (as the released memory does).
            labels: (B,) int clusters, -1 = un-clustered (no loss).

        Returns:
            0-dim loss; the memory is not changed (call :meth:`update` after the backward).
        """
        if self.num_clusters == 0:
            raise RuntimeError("the cluster memory is empty: call init_centroids first")
        x = F.normalize(feats.float(), dim=1)
        return cluster_contrast_loss(x, self.features, labels, self.temperature)

    @torch.no_grad()
    def update(self, feats: torch.Tensor, labels: torch.Tensor) -> None:
        """Momentum-update the rows of a batch (see :func:`update_centroids`).

        Under DDP the features and labels of every rank are gathered first (rank order; every
        rank's batch must have the same size), so every rank applies the same update.

        Args:
            feats: (B, D) features of the batch (L2-normalised here).
            labels: (B,) int clusters, -1 = un-clustered (no update).
        """
        x = all_gather_tensor(F.normalize(feats.detach().float(), dim=1).contiguous())
        y = all_gather_tensor(torch.as_tensor(labels).to(x.device).long().contiguous())
        self.features.copy_(update_centroids(self.features, x, y, self.momentum, self.mode))

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str, *args: Any,
                              **kwargs: Any) -> None:
        saved = state_dict.get(prefix + "features")
        if isinstance(saved, torch.Tensor) and saved.dim() == 2:  # C differs between epochs
            self.features = torch.empty(saved.shape, dtype=self.features.dtype,
                                        device=self.features.device)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def extra_repr(self) -> str:
        return (f"num_features={self.num_features}, clusters={self.num_clusters}, "
                f"temperature={self.temperature}, momentum={self.momentum}, mode={self.mode}")
