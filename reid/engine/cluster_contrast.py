"""Cluster Contrast (Dai et al., "Cluster Contrast for Unsupervised Person Re-Identification",
ACCV 2022) on top of the SpCL machinery.

Per epoch the target's training features are extracted and clustered by SpCL's labeler
(Jaccard + DBSCAN; the Cluster Contrast configs turn the self-paced criterion off), the target
sampler is regrouped into P clusters x K images (un-clustered images are not sampled), and the
:class:`reid.memory.ClusterMemory` is re-initialised with the normalised mean feature of every
cluster. A step applies the ClusterNCE loss and, after the optimiser step, the momentum update
of the memory rows ("mean" or "hard"). Only the label step (memory initialisation) and the train
step differ from :class:`reid.engine.spcl.SpCLRunner`; extraction, clustering, label statistics,
balanced batches, checkpoints and resume are SpCL's.

SpCL's memory slot (``self.memory``) holds an :class:`EpochTargets`: the epoch's extraction
(until the cluster memory is initialised from it) and its pseudo labels, so the checkpoint
carries the labels and the cluster memory but no per-image features. Unsupervised only: one
target, no source domain, no DSBN or camera BN branches.
"""
from __future__ import annotations

import logging
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from reid.engine.spcl import SpCLRunner
from reid.memory.cluster import ClusterMemory
from reid.utils.distributed import broadcast_tensor

logger = logging.getLogger(__name__)


class EpochTargets(nn.Module):
    """The target's pseudo labels (and, transiently, its extracted features) in the place of
    SpCL's hybrid memory: the subset of its interface that :class:`SpCLRunner` uses with
    ``cluster_on="extract"`` and ``refresh_memory``.

    Args:
        num_instances: N, the target's training images.

    Buffer ``labels`` (N,) int64: the epoch's clusters compacted to 0..C-1 (their order kept),
    -1 for un-clustered images.
    """

    def __init__(self, num_instances: int) -> None:
        super().__init__()
        if num_instances < 1:
            raise ValueError(f"num_instances must be >= 1, got {num_instances}")
        self.register_buffer("labels", torch.full((int(num_instances),), -1, dtype=torch.long))
        self.features: torch.Tensor | None = None

    @staticmethod
    def _check(domain: int) -> None:
        if domain != 0:
            raise IndexError(f"Cluster Contrast has a single target domain, got target {domain}")

    def init_source(self, domain: int, centroids: torch.Tensor) -> None:
        raise ValueError("Cluster Contrast is unsupervised: it has no source domain")

    def init_target(self, domain: int, features: torch.Tensor) -> None:
        """Keep the (N, D) extraction (L2-normalised) until :meth:`take_features`."""
        self._check(domain)
        if features.shape[0] != self.labels.numel():
            raise ValueError(f"expected {self.labels.numel()} target features, got "
                             f"{features.shape[0]}")
        self.features = F.normalize(features.detach().float(), dim=1)

    def take_features(self) -> torch.Tensor:
        """The last extraction, released here (it is not kept in memory or checkpoints)."""
        if self.features is None:
            raise RuntimeError("no extraction to take: init_target was not called this epoch")
        feats, self.features = self.features, None
        return feats

    def target_features(self, domain: int) -> torch.Tensor:
        raise ValueError("Cluster Contrast clusters a fresh extraction (CLUSTER.FEATURES "
                         "extract); it keeps no per-image memory")

    @torch.no_grad()
    def set_target_labels(self, domain: int, labels: torch.Tensor) -> None:
        """(N,) pseudo labels, -1 = un-clustered; cluster ids are compacted to 0..C-1."""
        self._check(domain)
        labels = torch.as_tensor(labels).to(self.labels.device).long()
        if labels.shape != self.labels.shape:
            raise ValueError(f"labels must have shape {tuple(self.labels.shape)}, got "
                             f"{tuple(labels.shape)}")
        dense = torch.full_like(labels, -1)
        clustered = labels >= 0
        dense[clustered] = torch.unique(labels[clustered], return_inverse=True)[1]
        self.labels.copy_(dense)

    def target_labels(self, domain: int) -> torch.Tensor:
        """(N,) the epoch's clusters, -1 = un-clustered."""
        self._check(domain)
        return self.labels

    def extra_repr(self) -> str:
        return (f"instances={self.labels.numel()}, "
                f"clusters={int(self.labels.max()) + 1 if self.labels.numel() else 0}")


class ClusterContrastRunner(SpCLRunner):
    """Cluster Contrast: ClusterNCE over a cluster memory rebuilt every epoch (USL).

    Args:
        cluster_memory: the :class:`reid.memory.ClusterMemory` (temperature, momentum, mode).
        **kwargs: the arguments of :class:`SpCLRunner` except ``memory`` (an
            :class:`EpochTargets` is made here). ``cluster_on`` must be "extract" and
            ``target_sampler`` "pk" (the method's P x K batches over clusters; the target
            loader needs a :class:`reid.data.samplers.RandomIdentitySampler` with
            ``ignore_negative``); ``refresh_memory`` is implied. No source domain, one target.
    """

    def __init__(self, *, cluster_memory: ClusterMemory, **kwargs: Any) -> None:
        if kwargs.get("source_labels"):
            raise ValueError("Cluster Contrast is unsupervised: no source domain")
        if len(kwargs.get("target_true_ids", ())) != 1:
            raise ValueError("Cluster Contrast trains on exactly one target domain")
        if kwargs.get("cluster_on", "extract") != "extract":
            raise ValueError("Cluster Contrast clusters a fresh extraction every epoch: "
                             "cluster_on must be 'extract'")
        if kwargs.get("target_sampler") != "pk":
            raise ValueError("Cluster Contrast samples P clusters x K images: target_sampler "
                             "must be 'pk'")
        kwargs.update(cluster_on="extract", refresh_memory=True)
        num_instances = len(kwargs["target_true_ids"][0])
        super().__init__(memory=EpochTargets(num_instances), **kwargs)
        self.cluster_memory = cluster_memory.to(self.device)
        self._batch: tuple[torch.Tensor, torch.Tensor] | None = None

    def update_labels(self, epoch: int) -> dict[str, float]:
        """Cluster the fresh extraction, regroup the sampler (SpCL's label step), then
        re-initialise the cluster memory with the clusters' normalised mean features."""
        stats = super().update_labels(epoch)
        labels = self.memory.target_labels(0)
        if not bool((labels >= 0).any()):
            raise RuntimeError(f"epoch {epoch}: no image was clustered, so Cluster Contrast has "
                               "nothing to train on (raise CLUSTER.EPS or lower "
                               "CLUSTER.MIN_SAMPLES)")
        self.cluster_memory.init_centroids(self.memory.take_features().to(self.device), labels)
        broadcast_tensor(self.cluster_memory.features)  # DDP: rank 0's extraction everywhere
        logger.info("epoch %d: cluster memory of %d clusters", epoch,
                    self.cluster_memory.num_clusters)
        return stats

    def train_step(self, iteration: int) -> dict[str, torch.Tensor]:
        batch, feats = self.encode_batch()
        labels = self.memory.target_labels(0)[batch["index"]]
        self._batch = (feats.detach(), labels)
        return {"loss_contrast": self.cluster_memory(feats, labels)}

    def after_backward(self) -> None:
        """The momentum update with the step's features (the loss used the old rows)."""
        if self._batch is not None:
            feats, labels = self._batch
            self._batch = None
            self.cluster_memory.update(feats, labels)

    def method_state(self) -> dict[str, Any]:
        """SpCL's state with ``"memory"`` the cluster memory and ``"labels"`` the epoch's
        pseudo labels."""
        state = super().method_state()
        state["labels"] = state.pop("memory")
        state["memory"] = self.cluster_memory.state_dict()
        return state

    def load_method_state(self, state: dict[str, Any]) -> None:
        state = dict(state)
        self.cluster_memory.load_state_dict(state.pop("memory"))
        state["memory"] = state.pop("labels")
        super().load_method_state(state)
