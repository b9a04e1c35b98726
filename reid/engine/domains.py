"""The training domains of a clustering method: what the runner trains on and extracts from."""
from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from reid.data.build import make_test_loader
from reid.data.datasets.base import ReIDDataset
from reid.data.domain_batches import DomainBatches

logger = logging.getLogger(__name__)

TARGET_SAMPLERS = ("random", "pk", "cross_camera")


class TrainingDomains:
    """The training sets (sources, then targets), their BN branches and training batches.

    Built once by the builder and handed to the runner; it extracts the features of a domain's
    training set with that domain's BN (the memory initialisation and the clustering) and
    estimates the statistics of camera-BN branches.

    Args:
        datasets: the training datasets, sources first, then targets.
        num_sources: S, how many of ``datasets`` are labelled sources.
        batches: one loader per dataset (same order); its ``domains`` are the BN branch of
            each dataset and its ``camera_branches`` the ``{camid: branch}`` maps (camera BN)
            or None.
        transforms: the test transform per ``is_video`` value present among ``datasets``.
        batch_size, num_workers, seq_len, skip_corrupt, clip_sampler: the extraction loaders'
            settings (:func:`reid.data.build.make_test_loader`).
        device: where the model runs.
        amp: bf16 autocast during extraction (CUDA).
        target_sampler: what the target loaders' samplers draw, i.e. what every clustering
            regroups (:meth:`DomainBatches.set_labels`): ``"random"`` (uniform images, nothing
            to regroup), ``"pk"`` (a :class:`reid.data.samplers.RandomIdentitySampler` with
            ``ignore_negative``: P groups x K images) or ``"cross_camera"`` (a
            :class:`reid.data.samplers.CrossCameraIdentitySampler`, SpCL's released sampler).
    """

    def __init__(self, datasets: Sequence[ReIDDataset], num_sources: int, batches: DomainBatches,
                 *, transforms: Mapping[bool, Callable], batch_size: int, num_workers: int,
                 seq_len: int = 8, skip_corrupt: bool = False, clip_sampler: str = "all",
                 device: torch.device | str = "cpu", amp: bool = False,
                 target_sampler: str = "random") -> None:
        if len(batches.loaders) != len(datasets):
            raise ValueError("one training loader per dataset is required")
        if not 0 <= num_sources <= len(datasets):
            raise ValueError(f"num_sources must be in [0, {len(datasets)}], got {num_sources}")
        if target_sampler not in TARGET_SAMPLERS:
            raise ValueError(f"target_sampler must be one of {TARGET_SAMPLERS}, got "
                             f"{target_sampler!r}")
        self.target_sampler = target_sampler
        self.datasets = list(datasets)
        self.num_sources = int(num_sources)
        self.batches = batches
        self.transforms = dict(transforms)
        self.loader_kwargs = dict(batch_size=batch_size, num_workers=num_workers,
                                  skip_corrupt=skip_corrupt)
        self.seq_len = seq_len
        self.clip_sampler = clip_sampler
        self.device = torch.device(device)
        self.amp = amp

    @property
    def sources(self) -> list[ReIDDataset]:
        return self.datasets[:self.num_sources]

    @property
    def targets(self) -> list[ReIDDataset]:
        return self.datasets[self.num_sources:]

    @property
    def camera_branches(self) -> list[dict[int, int] | None]:
        """Per dataset, None or its ``{camid: BN branch}`` map (camera BN)."""
        return list(self.batches.camera_branches)

    @property
    def has_camera_bn(self) -> bool:
        return any(m is not None for m in self.camera_branches)

    def source_labels(self, s: int) -> np.ndarray:
        """(N_s,) the training pids of source ``s``."""
        return np.asarray([x[1] for x in self.sources[s].train])

    def _loader(self, samples: list, is_video: bool) -> DataLoader:
        return make_test_loader(samples, is_video=is_video, transform=self.transforms[is_video],
                                seq_len=self.seq_len, clip_sampler=self.clip_sampler,
                                **self.loader_kwargs)

    def extract(self, domain: int, encoder: nn.Module) -> torch.Tensor:
        """(N, D) float32 CPU features of dataset ``domain``'s training set, in order, by
        ``encoder`` in eval mode with the domain's BN branch (or its cameras' branches); the
        encoder's train / eval mode is restored."""
        from reid.models import extract_features

        ds, cams = self.datasets[domain], self.camera_branches[domain]
        samples, order = ds.train, None
        if cams is not None:  # camera order: batches hold few cameras (cheaper BN)
            order = np.argsort([s[2] for s in ds.train], kind="stable")
            samples = [ds.train[i] for i in order]
        loader = self._loader(samples, ds.is_video)
        was_training = encoder.training
        encoder.eval()
        feats, _, _ = extract_features(encoder, loader, device=self.device,
                                       domain=self.batches.domains[domain], amp=self.amp,
                                       camera_domains=cams)
        encoder.train(was_training)
        feats = feats.float().cpu()
        if order is not None:
            feats = torch.empty_like(feats).index_copy_(0, torch.as_tensor(order), feats)
        return feats

    def init_bn(self, model: nn.Module) -> None:
        """Exact per-camera statistics of every camera-BN branch of ``model`` (a no-op without
        camera BN)."""
        from reid.data.datasets.common import by_camera
        from reid.models import estimate_bn_statistics

        if not self.has_camera_bn:
            return
        for ds, cams in zip(self.datasets, self.camera_branches, strict=True):
            if cams is None:
                continue
            loaders = {cams[c]: make_test_loader(items, is_video=False,
                                                 transform=self.transforms[False],
                                                 **self.loader_kwargs)
                       for c, items in by_camera(ds.train).items()}
            estimate_bn_statistics(model, loaders, self.device)
        logger.info("camera BN: statistics of %d camera branches estimated",
                    sum(len(m) for m in self.camera_branches if m))
