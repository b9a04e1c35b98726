"""Config -> datasets and data loaders (the only place data code reads the config)."""
from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import torch
from torch.utils.data import DataLoader

from reid.data.datasets import build_dataset
from reid.data.datasets.base import ReIDDataset

logger = logging.getLogger(__name__)


def _synthetic_kwargs(cfg) -> dict[str, Any]:
    syn = cfg.DATASETS.SYNTHETIC
    kwargs: dict[str, Any] = {"seed": syn.SEED}
    if syn.IDS > 0:
        kwargs["ids"] = syn.IDS
    if syn.CAMS > 0:
        kwargs["cams"] = syn.CAMS
    if min(syn.SIZE) > 0:
        kwargs["size"] = tuple(syn.SIZE)
    return kwargs


# Dataset-specific config keys, by registry-name prefix (the longest matching prefix wins).
_DATASET_CFG_KWARGS: dict[str, Callable[[Any], dict[str, Any]]] = {
    "cuhk03_np": lambda cfg: {"labeled": cfg.DATASETS.CUHK03_LABELED},
    "vehicleid": lambda cfg: {"test_size": cfg.DATASETS.VEHICLEID_TEST_SIZE},
    "synthetic_": _synthetic_kwargs,
    "folder:": lambda cfg: {"camera_regex": cfg.DATASETS.FOLDER.CAMERA_REGEX,
                            "verify": cfg.DATASETS.FOLDER.VERIFY},
    "identities:": lambda cfg: {"camera_regex": cfg.DATASETS.FOLDER.CAMERA_REGEX,
                                "verify": cfg.DATASETS.FOLDER.VERIFY,
                                "split_seed": cfg.DATASETS.FOLDER.SPLIT_SEED},
}


def dataset_kwargs(cfg, name: str) -> dict[str, Any]:
    """Keyword arguments the config gives the dataset ``name`` (besides its root)."""
    matches = [p for p in _DATASET_CFG_KWARGS if name.lower().startswith(p)]
    if not matches:
        return {}
    return _DATASET_CFG_KWARGS[max(matches, key=len)](cfg)


def build_dataset_from_cfg(cfg, name: str) -> ReIDDataset:
    """Parse dataset ``name`` under ``DATASETS.ROOT`` and log its summary."""
    dataset = build_dataset(name, cfg.DATASETS.ROOT, **dataset_kwargs(cfg, name))
    logger.info("%s", dataset.summary())
    return dataset


def build_transform_from_cfg(cfg, is_train: bool, is_video: bool = False):
    """The train (augmenting) or test transform of ``INPUT.*``: per image, or (``is_video``)
    one applied with the same random parameters to every frame of a clip."""
    if is_video:
        from reid.data.video_sampling import build_clip_transform_from_cfg

        return build_clip_transform_from_cfg(cfg, is_train=is_train)
    from reid.data.transforms import build_transforms

    return build_transforms(cfg, is_train=is_train)


def make_test_loader(
    samples: list,
    *,
    is_video: bool,
    transform,
    batch_size: int,
    num_workers: int,
    seq_len: int = 8,
    skip_corrupt: bool = False,
    clip_sampler: str = "all",
) -> DataLoader:
    """Sequential loader over ``samples`` with the test transform.

    Video: ``clip_sampler="all"`` gives every frame in clips (one tracklet per batch: the clip
    count varies), ``"evenly"`` one clip of ``seq_len`` evenly spaced frames per tracklet
    (``batch_size`` tracklets per batch)."""
    if is_video:
        from reid.data.video_sampling import TEST_SAMPLERS, VideoClipDataset

        if clip_sampler not in TEST_SAMPLERS:
            raise ValueError(f"unknown test clip sampler {clip_sampler!r}; expected one of "
                             f"{TEST_SAMPLERS}")
        dataset = VideoClipDataset(samples, seq_len=seq_len, sampler=clip_sampler,
                                   transform=transform)
        if clip_sampler == "all":
            batch_size = 1  # tracklets give a variable number of clips
    else:
        from reid.data.torch_dataset import ImageSampleDataset

        dataset = ImageSampleDataset(samples, transform=transform, skip_corrupt=skip_corrupt)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=False,
        num_workers=num_workers,
        pin_memory=torch.cuda.is_available(),
        persistent_workers=False,
    )


def make_train_loader(
    samples: list,
    *,
    is_video: bool,
    transform,
    sampler,
    batch_size: int,
    num_workers: int,
    domain: int,
    seq_len: int = 8,
    clip_sampler: str = "segment",
    skip_corrupt: bool = False,
) -> DataLoader:
    """Training loader drawing ``batch_size`` samples per batch from ``sampler`` (drop last)."""
    if is_video:
        from reid.data.video_sampling import VideoClipDataset

        dataset = VideoClipDataset(
            samples, seq_len=seq_len, sampler=clip_sampler, transform=transform, domain=domain
        )
    else:
        from reid.data.torch_dataset import ImageSampleDataset

        dataset = ImageSampleDataset(
            samples, transform=transform, domain=domain, skip_corrupt=skip_corrupt
        )
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=num_workers,
        drop_last=True,
        pin_memory=torch.cuda.is_available(),
        persistent_workers=False,
    )
