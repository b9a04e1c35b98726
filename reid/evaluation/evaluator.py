"""Evaluate an encoder on one or several test sets (query / gallery protocol)."""
from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch
from torch import nn

from reid.data.datasets.base import ReIDDataset

logger = logging.getLogger(__name__)


class DatasetEvaluator:
    """Extract query+gallery features once per image and rank them with each set's protocol.

    Args:
        test_sets: ``{name: dataset}`` evaluated in order; the first one is the "main" result.
        make_loader: ``(samples, is_video) -> DataLoader`` yielding dicts with ``img``, ``pid``,
            ``camid`` (test transform, fixed order).
        device: where features are computed.
        domain: the BN branch used for test features (domain-specific BN).
        flip: average the features of each image and its horizontal flip.
        metric, normalize, block_size, max_rank, rerank: passed to
            :func:`reid.evaluation.evaluate_features`.
        amp: bf16 autocast on CUDA.
        keep_features: keep each set's query / gallery features in ``saved_features``.
        camera_bn: normalise each query / gallery image with BatchNorm statistics re-estimated
            on the set's own (unlabelled) training images of the same camera
            (:func:`reid.models.fit_camera_bn`; Zhuang et al., ECCV 2020); image sets only.
    """

    def __init__(
        self,
        test_sets: Mapping[str, ReIDDataset],
        make_loader: Callable[[list, bool], Any],
        *,
        device: torch.device | str = "cpu",
        domain: int | None = None,
        flip: bool = False,
        metric: str = "euclidean",
        normalize: bool = True,
        block_size: int = 2048,
        max_rank: int = 50,
        rerank: dict | None = None,
        amp: bool = False,
        keep_features: bool = False,
        camera_bn: bool = False,
    ) -> None:
        if not test_sets:
            raise ValueError("no test set to evaluate")
        self.test_sets = dict(test_sets)
        self.make_loader = make_loader
        self.device = torch.device(device)
        self.domain = domain
        self.flip = flip
        self.metric = metric
        self.normalize = normalize
        self.block_size = block_size
        self.max_rank = max_rank
        self.rerank = rerank
        self.amp = amp
        self.keep_features = keep_features
        self.camera_bn = camera_bn
        self.saved_features: dict[str, dict[str, np.ndarray]] = {}

    def features(self, model: nn.Module, samples: list, is_video: bool,
                 camera_domains: dict[int, int] | None = None) -> torch.Tensor:
        """(N, D) float32 features of ``samples`` in order, on the CPU."""
        from reid.models import extract_features

        loader = self.make_loader(samples, is_video)
        feats, _, _ = extract_features(
            model, loader, device=self.device, flip=self.flip, domain=self.domain, amp=self.amp,
            camera_domains=camera_domains,
        )
        return feats.float().cpu()

    def camera_model(self, model: nn.Module, dataset: ReIDDataset
                     ) -> tuple[nn.Module, dict[int, int]]:
        """``model`` with per-camera BN statistics from ``dataset.train`` (see ``camera_bn``)."""
        from reid.models import fit_camera_bn

        if dataset.is_video:
            raise ValueError(f"TEST.CAMERA_BN supports image sets only; {dataset.name} is video")
        from reid.data.datasets.common import by_camera

        by_cam = by_camera(dataset.train)
        if not by_cam:
            raise ValueError(f"TEST.CAMERA_BN needs the training images of {dataset.name} to "
                             "estimate per-camera statistics, and it has none")
        test_cams = {int(s[2]) for s in list(dataset.query) + list(dataset.gallery)}
        if test_cams - set(by_cam):
            logger.warning("%s: cameras %s have no training image; their test images keep the "
                           "model's BN statistics", dataset.name, sorted(test_cams - set(by_cam)))
        loaders = {cam: self.make_loader(items, False) for cam, items in by_cam.items()}
        return fit_camera_bn(model, loaders, device=self.device,
                             domain=-1 if self.domain is None else self.domain)

    @torch.no_grad()
    def evaluate_one(self, model: nn.Module, dataset: ReIDDataset) -> dict[str, Any]:
        """Evaluate one dataset; returns the dict of :func:`reid.evaluation.evaluate_features`."""
        from reid.evaluation import evaluate_features

        # Images shared by query and gallery (e.g. the VehicleID pool) are extracted once; with
        # camera BN in camera order, so that batches hold few cameras (cheaper BN routing).
        unique: dict[Any, int] = {}
        cams: dict[Any, int] = {}
        items = list(dataset.query) + list(dataset.gallery)
        if self.camera_bn:
            items.sort(key=lambda item: int(item[2]))
        for item in items:
            unique.setdefault(item[0], len(unique))
            cams.setdefault(item[0], int(item[2]))
        samples = [(path, -1, cams[path]) for path in unique]
        if self.camera_bn:
            cam_model, cam_map = self.camera_model(model, dataset)
            feats = self.features(cam_model, samples, dataset.is_video, camera_domains=cam_map)
        else:
            feats = self.features(model, samples, dataset.is_video)
        q_idx = torch.as_tensor([unique[s[0]] for s in dataset.query])
        g_idx = torch.as_tensor([unique[s[0]] for s in dataset.gallery])
        arrays = {
            "q_pids": np.asarray([s[1] for s in dataset.query], dtype=np.int64),
            "g_pids": np.asarray([s[1] for s in dataset.gallery], dtype=np.int64),
            "q_camids": np.asarray([s[2] for s in dataset.query], dtype=np.int64),
            "g_camids": np.asarray([s[2] for s in dataset.gallery], dtype=np.int64),
        }
        if self.keep_features:
            self.saved_features[dataset.name] = {
                "query": feats[q_idx].numpy(), "gallery": feats[g_idx].numpy()
            }
        protocol = dataset.extra.get("protocol", "standard")
        if protocol == "vehicleid":
            from reid.evaluation import evaluate_vehicleid

            return evaluate_vehicleid(feats[q_idx], arrays["q_pids"], max_rank=self.max_rank)
        return evaluate_features(
            feats[q_idx], feats[g_idx], **arrays, metric=self.metric, normalize=self.normalize,
            block_size=self.block_size, max_rank=self.max_rank, rerank=self.rerank,
            device=self.device,
        )

    def evaluate(self, model: nn.Module) -> dict[str, dict[str, Any]]:
        """``{dataset name: results}`` for every test set."""
        was_training = model.training
        model.eval()
        try:
            out = {name: self.evaluate_one(model, ds) for name, ds in self.test_sets.items()}
        finally:
            model.train(was_training)
        return out
