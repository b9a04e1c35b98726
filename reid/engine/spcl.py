"""SpCL: self-paced contrastive learning with a hybrid memory (Ge et al., NeurIPS 2020).

Per epoch: cluster each target domain's features (Jaccard distance + DBSCAN + the self-paced
reliability criterion), give the memory the new labels, then train with the unified contrastive
loss over source class centroids, target cluster centroids and target outlier instances.
With no source domain it is the unsupervised (USL) variant.
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from reid.cluster.camera import camera_centred
from reid.cluster.quality import label_quality
from reid.engine.loaders import DomainBatches
from reid.engine.runner import BaseRunner
from reid.utils.distributed import broadcast_tensor, is_main_process

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
        memory: a :class:`reid.memory.HybridMemory` whose domains are the sources then targets.
        labelers: one pseudo-labeler per target (``labeler(features, camids=...) -> (labels,
            stats)`` with ``state_dict``/``load_state_dict``; -1 marks un-clustered samples;
            ``camids`` are the target's camera ids, None when ``target_camids`` is not given).
        batches: draws one batch per domain per iteration (sources then targets).
        extract: ``(domain_index) -> (N, D) features`` of that domain's training set, in order,
            extracted with the domain's BN (used to initialise the memory and, with
            ``cluster_on="extract"``, to cluster).
        source_labels: per source, the (N,) training pids used for the class centroids.
        target_true_ids: per target, the true ids of its training set (for NMI / ARI only),
            or None.
        cluster_on: "memory" (cluster the memory's instance features, as the published code)
            or "extract" (a fresh extraction every epoch).
        target_camids: per target, the (N,) camera ids of its training set; needed by
            ``camera_centre``.
        camera_centre: subtract each camera's mean feature before clustering
            (:func:`reid.cluster.camera.camera_centred`); off in the published method.
        init_bn: called once before the memory is initialised (e.g. estimating the statistics
            of per-camera BN branches), or None.
        target_sampler: how the target loaders draw batches, i.e. what every clustering
            regroups (``batches.set_labels``):

            * ``"random"``: uniform random images, nothing to regroup;
            * ``"pk"``: P groups x K images over :meth:`sampler_groups` (SpCL: the clusters;
              CAP: the camera proxies), un-clustered images not sampled (CAP's proxy-balanced
              sampling); the target loaders use a
              :class:`reid.data.samplers.RandomIdentitySampler` with ``ignore_negative``;
            * ``"cross_camera"``: SpCL's published sampler over the clusters, every
              un-clustered image an identity of its own; the target loaders use a
              :class:`reid.data.samplers.CrossCameraIdentitySampler`.
        refresh_memory: with ``cluster_on="extract"``, replace every target's instance rows by
            the fresh extraction each epoch (the rows of images that are not sampled, e.g.
            outliers with ``target_sampler="pk"``, would otherwise never change).
        **kwargs: the arguments of :class:`BaseRunner`.
    """

    def __init__(
        self,
        *,
        memory: Any,
        labelers: Sequence[Any],
        batches: DomainBatches,
        extract: Callable[[int], torch.Tensor],
        source_labels: Sequence[np.ndarray],
        target_true_ids: Sequence[np.ndarray | None],
        cluster_on: str = "memory",
        target_camids: Sequence[np.ndarray] | None = None,
        camera_centre: bool = False,
        init_bn: Callable[[], None] | None = None,
        target_sampler: str = "random",
        refresh_memory: bool = False,
        target_paths: Sequence[Sequence[str]] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if cluster_on not in ("memory", "extract"):
            raise ValueError(f"cluster_on must be 'memory' or 'extract', got {cluster_on!r}")
        self.memory = memory.to(self.device)
        self.labelers = list(labelers)
        self.batches = batches
        self.extract = extract
        self.source_labels = list(source_labels)
        self.target_true_ids = list(target_true_ids)
        self.cluster_on = cluster_on
        self.camera_centre = camera_centre
        self.init_bn = init_bn
        if target_sampler not in ("random", "pk", "cross_camera"):
            raise ValueError("target_sampler must be 'random', 'pk' or 'cross_camera', got "
                             f"{target_sampler!r}")
        self.target_sampler = target_sampler
        self._unchanged_extraction: dict[int, torch.Tensor] = {}  # before_train -> epoch 0
        self.refresh_memory = bool(refresh_memory)
        self.target_paths = [list(p) for p in target_paths] if target_paths is not None else None
        if refresh_memory and cluster_on != "extract":
            raise ValueError("refresh_memory needs cluster_on='extract' (the memory itself is "
                             "what is clustered otherwise)")
        if target_sampler == "pk" and cluster_on == "memory":
            logger.warning("balanced target batches with clustering on the memory: the rows of "
                           "un-clustered images are never sampled, so they never change and "
                           "those images stay un-clustered; CLUSTER.FEATURES extract with "
                           "MEMORY.REFRESH avoids this")
        self.target_camids = list(target_camids) if target_camids is not None else None
        if camera_centre and (self.target_camids is None
                              or len(self.target_camids) != len(self.target_true_ids)):
            raise ValueError("camera_centre needs the camera ids of every target domain")
        self.num_sources = len(self.source_labels)
        if len(self.labelers) != len(self.target_true_ids):
            raise ValueError("one labeler per target domain is required")

    def before_train(self) -> None:
        """Initialise the memory from a full extraction (class centroids / instance features)."""
        from reid.memory import class_centroids

        if self.init_bn is not None:
            self.init_bn()
        for s, labels in enumerate(self.source_labels):
            feats = F.normalize(self.extract(s), dim=1)
            centroids = class_centroids(feats, torch.as_tensor(labels, dtype=torch.long))
            self.memory.init_source(s, centroids.to(self.device))
        for t in range(len(self.labelers)):
            feats = F.normalize(self.extract(self.num_sources + t), dim=1)
            self.memory.init_target(t, feats.to(self.device))
            if self.cluster_on == "extract":  # the first clustering needs this very extraction
                self._unchanged_extraction[t] = feats
        logger.info("memory initialised: %s", self.memory)

    def set_epoch(self, epoch: int) -> None:
        self.batches.set_epoch(epoch)

    def update_labels(self, epoch: int) -> dict[str, float]:
        """Cluster every target domain, hand the labels to the memory and regroup the target
        samplers by them (``target_sampler`` "pk" or "cross_camera")."""
        stats = self.assign_labels(epoch)
        if self.target_sampler != "random":
            for t in range(len(self.labelers)):
                groups = (self.sampler_groups(t) if self.target_sampler == "pk"
                          else self.memory.target_labels(t).cpu())
                self.batches.set_labels(self.num_sources + t, groups.tolist())
        return stats

    def sampler_groups(self, t: int) -> torch.Tensor:
        """(N_t,) group of every image of target ``t`` for P x K target batches (-1: not
        sampled): SpCL's clusters."""
        return self.memory.target_labels(t).cpu()

    def assign_labels(self, epoch: int) -> dict[str, float]:
        """Cluster every target domain and hand the labels to the memory; returns the label
        statistics of the log."""
        stats: dict[str, float] = {}
        pseudo: dict[str, np.ndarray] = {}
        for t, labeler in enumerate(self.labelers):
            if self.cluster_on == "memory":
                feats = self.memory.target_features(t).detach().float().cpu()
            else:
                feats = self._unchanged_extraction.pop(t, None)
                if feats is None:
                    feats = F.normalize(self.extract(self.num_sources + t), dim=1)
                if self.refresh_memory:
                    self.memory.init_target(t, feats.to(self.device))
            if self.camera_centre:
                feats = camera_centred(feats, torch.as_tensor(self.target_camids[t]))
            labels = torch.empty(feats.shape[0], dtype=torch.long)
            if is_main_process():
                pred, st = labeler(feats, camids=None if self.target_camids is None
                                   else np.asarray(self.target_camids[t]))
                labels = torch.as_tensor(np.asarray(pred), dtype=torch.long)
                prefix = f"t{t}_" if len(self.labelers) > 1 else ""
                for key, value in st.items():
                    if isinstance(value, (int, float, np.integer, np.floating)):
                        stats[prefix + key] = float(value)
                true = self.target_true_ids[t]
                if true is not None:
                    cams = self.target_camids[t] if self.target_camids is not None else None
                    quality = label_quality(pred, true, cams)
                    stats.update({prefix + k: v for k, v in quality.items()})
            labels = broadcast_tensor(labels.to(self.device)).cpu()
            self.note_collapse(f"target {t}", cluster_collapse(labels.numpy()), epoch,
                               COLLAPSE_HINT)
            self.memory.set_target_labels(t, labels.to(self.device))
            pseudo[f"labels_{t}"] = labels.numpy()
        self.save_pseudo_labels(epoch, pseudo)
        logger.info("epoch %d pseudo labels: %s", epoch,
                    ", ".join(f"{k} {v:.4g}" for k, v in stats.items()))
        return stats

    def save_pseudo_labels(self, epoch: int, labels: dict[str, np.ndarray]) -> None:
        """Write the clustering of ``epoch`` to ``output_dir/pseudo_labels.npz`` (main process).

        Arrays, per target ``t``: ``labels_t`` (N,) int64 (-1: un-clustered), ``paths_t`` (N,)
        image paths (a tracklet's first frame), ``camids_t`` and, when known, ``true_ids_t``;
        plus ``epoch`` (scalar). Overwritten after every clustering (``tools/visualize.py``
        draws its contact sheets).
        """
        if not is_main_process() or self.target_paths is None:
            return
        arrays: dict[str, np.ndarray] = {"epoch": np.asarray(epoch)}
        for t in range(len(self.labelers)):
            arrays[f"labels_{t}"] = np.asarray(labels[f"labels_{t}"], dtype=np.int64)
            arrays[f"paths_{t}"] = np.asarray(self.target_paths[t], dtype=str)
            if self.target_camids is not None:
                arrays[f"camids_{t}"] = np.asarray(self.target_camids[t], dtype=np.int64)
            if self.target_true_ids[t] is not None:
                arrays[f"true_ids_{t}"] = np.asarray(self.target_true_ids[t], dtype=np.int64)
        self.output_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.output_dir / "pseudo_labels.tmp.npz"
        np.savez(tmp, **arrays)
        tmp.replace(self.output_dir / "pseudo_labels.npz")

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
        return {
            "memory": self.memory.state_dict(),
            "labelers": [lab.state_dict() for lab in self.labelers],
            "batches": self.batches.state_dict(),
        }

    def load_method_state(self, state: dict[str, Any]) -> None:
        self.memory.load_state_dict(state["memory"])
        for lab, st in zip(self.labelers, state["labelers"], strict=True):
            lab.load_state_dict(st)
        self.batches.load_state_dict(state["batches"])
