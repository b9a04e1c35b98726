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

The pseudo labels live in the label step (and the checkpoint); the epoch's extraction is
kept only until the cluster memory is initialised from it. Unsupervised only: one target, no
source domain, no DSBN or camera BN branches.
"""
from __future__ import annotations

import logging
from typing import Any

import torch
import torch.nn.functional as F

from reid.engine.spcl import SpCLRunner
from reid.memory.cluster import ClusterMemory
from reid.utils.distributed import broadcast_tensor

logger = logging.getLogger(__name__)


class ClusterContrastRunner(SpCLRunner):
    """Cluster Contrast: ClusterNCE over a cluster memory rebuilt every epoch (USL).

    Args:
        cluster_memory: the :class:`reid.memory.ClusterMemory` (temperature, momentum, mode).
        **kwargs: the arguments of :class:`SpCLRunner` except ``memory``, ``cluster_on`` and
            ``refresh_memory`` (it clusters a fresh extraction every epoch). One target domain
            and no source; ``domains.target_sampler`` must be "pk" (P x K batches over the
            clusters) or "cross_camera" (the released sampler: per cluster an anchor and K - 1
            images of other cameras), over the clustered images only; the label step should
            ``compact`` the clusters to 0..C-1.
    """

    def __init__(self, *, cluster_memory: ClusterMemory, **kwargs: Any) -> None:
        domains = kwargs["domains"]
        if domains.num_sources:
            raise ValueError("Cluster Contrast is unsupervised: no source domain")
        if len(domains.targets) != 1:
            raise ValueError("Cluster Contrast trains on exactly one target domain")
        if domains.target_sampler not in ("pk", "cross_camera"):
            raise ValueError("Cluster Contrast samples K images per cluster: target_sampler "
                             "must be 'pk' or 'cross_camera'")
        super().__init__(memory=None, cluster_on="extract", refresh_memory=True, **kwargs)
        self.cluster_memory = cluster_memory.to(self.device)
        self._extraction: torch.Tensor | None = None  # this epoch's, until the memory is built
        self._labels: torch.Tensor | None = None  # the epoch's labels on the device
        self._batch: tuple[torch.Tensor, torch.Tensor] | None = None

    def init_memory(self) -> None:
        """Keep the first extraction for the first clustering (there is no instance memory)."""
        feats = F.normalize(self.extract(0), dim=1)
        self.refresh_target(0, feats)
        self._unchanged_extraction[0] = feats

    def refresh_target(self, t: int, feats: torch.Tensor) -> None:
        """Keep the (N, D) extraction (L2-normalised again, as the cluster means are taken)
        until the cluster memory is initialised from it."""
        self._extraction = F.normalize(feats.detach().float(), dim=1)

    def use_labels(self, t: int, labels: torch.Tensor) -> None:
        """The labels stay in the label step."""

    def update_labels(self, epoch: int) -> dict[str, float]:
        """Cluster the fresh extraction, regroup the sampler (SpCL's label step), then
        re-initialise the cluster memory with the clusters' normalised mean features."""
        stats = super().update_labels(epoch)
        labels = self._labels = self.label_step.labels[0].to(self.device)
        if not bool((labels >= 0).any()):
            raise RuntimeError(f"epoch {epoch}: no image was clustered, so Cluster Contrast has "
                               "nothing to train on (raise CLUSTER.EPS or lower "
                               "CLUSTER.MIN_SAMPLES)")
        feats, self._extraction = self._extraction, None
        self.cluster_memory.init_centroids(feats.to(self.device), labels)
        broadcast_tensor(self.cluster_memory.features)  # DDP: rank 0's extraction everywhere
        logger.info("epoch %d: cluster memory of %d clusters", epoch,
                    self.cluster_memory.num_clusters)
        return stats

    def train_step(self, iteration: int) -> dict[str, torch.Tensor]:
        batch, feats = self.encode_batch()
        labels = self._labels[batch["index"]]
        self._batch = (feats.detach(), labels)
        return {"loss_contrast": self.cluster_memory(feats, labels)}

    def after_step(self) -> None:
        """The momentum update with the step's features (the loss used the old rows)."""
        if self._batch is not None:
            feats, labels = self._batch
            self._batch = None
            self.cluster_memory.update(feats, labels)

    def method_state(self) -> dict[str, Any]:
        """``memory`` the cluster memory, the label step's ``labelers`` and ``labels``, and
        ``batches``."""
        return {"memory": self.cluster_memory.state_dict(), **self.label_step.state_dict(),
                "batches": self.batches.state_dict()}

    def load_method_state(self, state: dict[str, Any]) -> None:
        self.cluster_memory.load_state_dict(state["memory"])
        self.label_step.load_state_dict(state)
        self.batches.load_state_dict(state["batches"])
