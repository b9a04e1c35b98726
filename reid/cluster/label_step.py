"""One object from features to pseudo labels (OpenUnReID's label generator): per target, camera
centring, the labeler, the broadcast to every rank, the label-quality statistics, and the
current labels themselves (the runner reads them here; they are part of the checkpoint)."""
from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from reid.cluster.camera import camera_centred
from reid.cluster.quality import label_quality
from reid.utils.distributed import broadcast_tensor, is_main_process

logger = logging.getLogger(__name__)


def compact_labels(labels: torch.Tensor) -> torch.Tensor:
    """(N,) labels with the clusters renumbered 0..C-1 in their order; -1 stays -1."""
    dense = torch.full_like(labels, -1)
    clustered = labels >= 0
    dense[clustered] = torch.unique(labels[clustered], return_inverse=True)[1]
    return dense


class PseudoLabelStep:
    """Pseudo labels of every target domain from its (N_t, D) features.

    Args:
        labelers: one per target, ``labeler(features, camids=...) -> (labels, stats)`` with
            ``state_dict`` / ``load_state_dict`` (-1 marks un-clustered samples), e.g. a
            :class:`reid.cluster.SelfPacedLabeler`.
        camids: per target, the (N_t,) camera ids of its training set (passed to the labeler;
            needed by ``camera_centre``), or None.
        true_ids: per target, the (N_t,) true ids (NMI / ARI / precision / recall of the
            labels, :func:`reid.cluster.quality.label_quality`) or None (unlabelled).
        camera_centre: subtract each camera's mean feature before labelling
            (:func:`reid.cluster.camera.camera_centred`).
        paths: per target, the (N_t,) image paths, for :meth:`save`; None: nothing saved.
        compact: renumber the clusters 0..C-1 (labelers already do; a guard for memories that
            index one row per cluster).
        device: where the labels are broadcast from rank 0 (the process group's device).

    Only rank 0 runs the labeler; the labels are broadcast to every rank. ``labels[t]`` holds
    target ``t``'s current (N_t,) int64 CPU labels, all -1 before the first call.
    """

    def __init__(self, labelers: Sequence[Any], *, camids: Sequence[np.ndarray] | None = None,
                 true_ids: Sequence[np.ndarray | None] | None = None, camera_centre: bool = False,
                 paths: Sequence[Sequence[str]] | None = None, compact: bool = False,
                 device: torch.device | str = "cpu") -> None:
        self.labelers = list(labelers)
        num = len(self.labelers)
        self.camids = [np.asarray(c) for c in camids] if camids is not None else None
        self.true_ids = list(true_ids) if true_ids is not None else [None] * num
        self.paths = [list(p) for p in paths] if paths is not None else None
        for name, seq in (("camids", self.camids), ("true_ids", self.true_ids),
                          ("paths", self.paths)):
            if seq is not None and len(seq) != num:
                raise ValueError(f"{name} needs one entry per labeler ({num}), got {len(seq)}")
        if camera_centre and self.camids is None:
            raise ValueError("camera_centre needs the camera ids of every target domain")
        self.camera_centre = bool(camera_centre)
        self.compact = bool(compact)
        self.device = torch.device(device)
        sizes = [len(c) for c in self.camids] if self.camids is not None else None
        self.labels: list[torch.Tensor] = [
            torch.full((sizes[t] if sizes else 0,), -1, dtype=torch.long) for t in range(num)]

    def __len__(self) -> int:
        return len(self.labelers)

    def __call__(self, t: int, feats: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        """Label target ``t`` from its (N_t, D) CPU features.

        Returns:
            the (N_t,) int64 CPU labels (also kept in ``labels[t]``) and the statistics of the
            log (keys prefixed ``t{t}_`` when there are several targets; rank 0 only, empty on
            the other ranks).
        """
        if self.camera_centre:
            feats = camera_centred(feats, torch.as_tensor(self.camids[t]))
        stats: dict[str, float] = {}
        labels = torch.empty(feats.shape[0], dtype=torch.long)
        if is_main_process():
            cams = self.camids[t] if self.camids is not None else None
            pred, st = self.labelers[t](feats, camids=cams)
            labels = torch.as_tensor(np.asarray(pred), dtype=torch.long)
            prefix = f"t{t}_" if len(self.labelers) > 1 else ""
            for key, value in st.items():
                if isinstance(value, (int, float, np.integer, np.floating)):
                    stats[prefix + key] = float(value)
            if self.true_ids[t] is not None:
                quality = label_quality(pred, self.true_ids[t], cams)
                stats.update({prefix + k: v for k, v in quality.items()})
        labels = broadcast_tensor(labels.to(self.device)).cpu()
        if self.compact:
            labels = compact_labels(labels)
        self.labels[t] = labels
        return labels, stats

    def save(self, path: str | Path, epoch: int) -> None:
        """Write the current labels to the ``.npz`` file ``path`` (skipped without ``paths``).

        Arrays, per target ``t``: ``labels_t`` (N,) int64 (-1: un-clustered), ``paths_t`` (N,)
        image paths (a tracklet's first frame), ``camids_t`` and, when known, ``true_ids_t``;
        plus ``epoch`` (scalar). ``tools/visualize.py`` draws its contact sheets from it.
        """
        if self.paths is None:
            return
        arrays: dict[str, np.ndarray] = {"epoch": np.asarray(epoch)}
        for t in range(len(self.labelers)):
            arrays[f"labels_{t}"] = np.asarray(self.labels[t].numpy(), dtype=np.int64)
            arrays[f"paths_{t}"] = np.asarray(self.paths[t], dtype=str)
            if self.camids is not None:
                arrays[f"camids_{t}"] = np.asarray(self.camids[t], dtype=np.int64)
            if self.true_ids[t] is not None:
                arrays[f"true_ids_{t}"] = np.asarray(self.true_ids[t], dtype=np.int64)
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.stem + ".tmp.npz")
        np.savez(tmp, **arrays)
        tmp.replace(path)

    def state_dict(self) -> dict[str, Any]:
        """``labelers`` (their states) and ``labels`` (the current labels per target)."""
        return {"labelers": [lab.state_dict() for lab in self.labelers],
                "labels": [lab.clone() for lab in self.labels]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for lab, st in zip(self.labelers, state["labelers"], strict=True):
            lab.load_state_dict(st)
        self.labels = [torch.as_tensor(x, dtype=torch.long).cpu() for x in state["labels"]]
