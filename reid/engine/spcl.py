"""SpCL: self-paced contrastive learning with a hybrid memory (Ge et al., NeurIPS 2020).

Per epoch: cluster each target domain's features (Jaccard distance + DBSCAN + the self-paced
reliability criterion), give the memory the new labels, then train with the unified contrastive
loss over source class centroids, target cluster centroids and target outlier instances.
With no source domain it is the unsupervised (USL) variant.
"""
from __future__ import annotations

import logging
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from reid.cluster.label_step import PseudoLabelStep
from reid.engine.domains import TrainingDomains
from reid.engine.runner import BaseRunner
from reid.utils.distributed import is_main_process

logger = logging.getLogger(__name__)

COLLAPSE_HINT = ("change the clustering: CLUSTER.EPS (lower: fewer images per cluster; higher: "
                 "more clustered), CLUSTER.K1 / CLUSTER.K2 (neighbourhood sizes), "
                 "CLUSTER.MIN_SAMPLES (lower: more clusters), or CLUSTER.CAMERA_CENTRE when "
                 "clusters follow the cameras")


def cluster_collapse(labels: np.ndarray, max_fraction: float = 0.5) -> str | None:
    """Why the (N,) pseudo labels (-1: un-clustered) are degenerate, or None: no cluster at
    all, or one cluster holding more than ``max_fraction`` of the images."""
    labels = np.asarray(labels).reshape(-1)
    clustered = labels[labels >= 0]
    if labels.size == 0:
        return None
    if clustered.size == 0:
        return f"no cluster: all {labels.size} images un-clustered"
    largest = int(np.bincount(clustered).max())
    if largest > max_fraction * labels.size:
        return f"one cluster holds {largest} of {labels.size} images"
    return None


class SpCLRunner(BaseRunner):
    """SpCL for UDA (one or more sources, one or more targets) and USL (targets only).

    Args:
        memory: a :class:`reid.memory.HybridMemory` whose domains are the sources then targets;
            it gets every clustering's labels (its prototypes follow them).
        domains: the training sets, their BN branches and batches (sources then targets);
            ``domains.target_sampler`` says what every clustering regroups: nothing
            (``"random"``), P groups x K images over :meth:`sampler_groups` (``"pk"``,
            un-clustered images not sampled) or SpCL's released sampler over the clusters
            (``"cross_camera"``, every un-clustered image an identity of its own).
        label_step: features -> pseudo labels of every target; it keeps the current labels.
        cluster_on: "memory" (cluster the memory's instance features, as the published code)
            or "extract" (a fresh extraction every epoch).
        refresh_memory: with ``cluster_on="extract"``, replace every target's instance rows by
            the fresh extraction each epoch (the rows of images that are not sampled, e.g.
            outliers with P x K batches, would otherwise never change).
        **kwargs: the arguments of :class:`BaseRunner`.
    """

    def __init__(self, *, memory: Any, domains: TrainingDomains, label_step: PseudoLabelStep,
                 cluster_on: str = "memory", refresh_memory: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if cluster_on not in ("memory", "extract"):
            raise ValueError(f"cluster_on must be 'memory' or 'extract', got {cluster_on!r}")
        if refresh_memory and cluster_on != "extract":
            raise ValueError("refresh_memory needs cluster_on='extract' (the memory itself is "
                             "what is clustered otherwise)")
        if len(label_step) != len(domains.targets):
            raise ValueError("one labeler per target domain is required")
        self.memory = memory.to(self.device) if memory is not None else None
        self.domains = domains
        self.batches = domains.batches
        self.label_step = label_step
        self.cluster_on = cluster_on
        self.refresh_memory = bool(refresh_memory)
        self.num_sources = domains.num_sources
        self._unchanged_extraction: dict[int, torch.Tensor] = {}  # before_train -> epoch 0
        if self.domains.target_sampler == "pk" and cluster_on == "memory":
            logger.warning("balanced target batches with clustering on the memory: the rows of "
                           "un-clustered images are never sampled, so they never change and "
                           "those images stay un-clustered; CLUSTER.FEATURES extract with "
                           "MEMORY.REFRESH avoids this")

    def extract(self, domain: int) -> torch.Tensor:
        """(N, D) features of training set ``domain`` by the model that clusters (the mean
        teacher when there is one)."""
        return self.domains.extract(domain, self.eval_model)

    def before_train(self) -> None:
        """Estimate the camera-BN statistics, then initialise the memory."""
        if self.domains.has_camera_bn:
            self.domains.init_bn(self.model)
            if self.ema is not None:  # the mean teacher starts from the estimated statistics
                self.ema.reset(self.model)
        self.init_memory()

    def init_memory(self) -> None:
        """Fill the memory from a full extraction (class centroids / instance features)."""
        from reid.memory import class_centroids

        for s in range(self.num_sources):
            feats = F.normalize(self.extract(s), dim=1)
            labels = torch.as_tensor(self.domains.source_labels(s), dtype=torch.long)
            self.memory.init_source(s, class_centroids(feats, labels).to(self.device))
        for t in range(len(self.label_step)):
            feats = F.normalize(self.extract(self.num_sources + t), dim=1)
            self.memory.init_target(t, feats.to(self.device))
            if self.cluster_on == "extract":  # the first clustering needs this very extraction
                self._unchanged_extraction[t] = feats
        logger.info("memory initialised: %s", self.memory)

    def set_epoch(self, epoch: int) -> None:
        self.batches.set_epoch(epoch)

    def cluster_features(self, t: int) -> torch.Tensor:
        """(N_t, D) CPU features that target ``t`` is clustered on this epoch."""
        if self.cluster_on == "memory":
            return self.memory.target_features(t).detach().float().cpu()
        feats = self._unchanged_extraction.pop(t, None)
        if feats is None:
            feats = F.normalize(self.extract(self.num_sources + t), dim=1)
        if self.refresh_memory:
            self.refresh_target(t, feats)
        return feats

    def refresh_target(self, t: int, feats: torch.Tensor) -> None:
        """``refresh_memory``: target ``t``'s instance rows become the (N_t, D) extraction."""
        self.memory.init_target(t, feats.to(self.device))

    def use_labels(self, t: int, labels: torch.Tensor) -> None:
        """Give the method target ``t``'s new (N_t,) labels (SpCL: the memory's prototypes)."""
        self.memory.set_target_labels(t, labels.to(self.device))

    def update_labels(self, epoch: int) -> dict[str, float]:
        """Cluster every target domain, hand the labels to the method and regroup the target
        samplers by them; returns the label statistics of the log."""
        stats: dict[str, float] = {}
        for t in range(len(self.label_step)):
            labels, st = self.label_step(t, self.cluster_features(t))
            stats.update(st)
            self.note_collapse(f"target {t}", cluster_collapse(labels.numpy()), epoch,
                               COLLAPSE_HINT)
            self.use_labels(t, labels)
        if is_main_process():
            self.label_step.save(self.output_dir / "pseudo_labels.npz", epoch)
        logger.info("epoch %d pseudo labels: %s", epoch,
                    ", ".join(f"{k} {v:.4g}" for k, v in stats.items()))
        stats.update(self.after_labels())
        sampler = self.domains.target_sampler
        if sampler != "random":
            for t in range(len(self.label_step)):
                groups = self.sampler_groups(t) if sampler == "pk" else self.label_step.labels[t]
                self.batches.set_labels(self.num_sources + t, groups.tolist())
        return stats

    def after_labels(self) -> dict[str, float]:
        """Called once the labels of every target are set; returns more statistics."""
        return {}

    def sampler_groups(self, t: int) -> torch.Tensor:
        """(N_t,) group of every image of target ``t`` for P x K target batches (-1: not
        sampled): SpCL's clusters."""
        return self.label_step.labels[t]

    def encode_batch(self) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """The next batch (every domain) and its (B, D) L2-normalised float32 features."""
        batch = self.batches.next(self.device)
        with self.autocast():
            out = self.train_model(batch["img"], domains=batch["domain"])
        self.check_features(out["feat"])
        return batch, F.normalize(out["feat"].float(), dim=1)

    def train_step(self, iteration: int) -> dict[str, torch.Tensor]:
        batch, feats = self.encode_batch()
        loss = self.memory(feats, batch["dataset"], batch["index"])
        return {"loss_contrast": loss}

    def method_state(self) -> dict[str, Any]:
        """``memory``, the label step's ``labelers`` and ``labels``, and ``batches``."""
        return {"memory": self.memory.state_dict(), **self.label_step.state_dict(),
                "batches": self.batches.state_dict()}

    def load_method_state(self, state: dict[str, Any]) -> None:
        self.memory.load_state_dict(state["memory"])
        self.label_step.load_state_dict(state)
        self.batches.load_state_dict(state["batches"])
