"""The data of a training run from cfg: the datasets, their training loaders and the camera-BN
branches."""
from __future__ import annotations

import logging

from torch.utils.data import DataLoader

from reid.data.build import build_dataset_from_cfg, build_transform_from_cfg, make_train_loader
from reid.data.datasets.base import ReIDDataset
from reid.engine.adapters import train_loader_kwargs
from reid.utils.distributed import get_rank, get_world_size
from reid.utils.errors import ConfigError

logger = logging.getLogger(__name__)


def load_datasets(cfg) -> tuple[list[ReIDDataset], list[ReIDDataset], dict[str, ReIDDataset]]:
    """Sources, targets and ``{name: test set}`` of ``DATASETS.*``.

    Parse every dataset first, so a missing one fails before any model is built."""
    sources = [build_dataset_from_cfg(cfg, n) for n in cfg.DATASETS.SOURCE]
    targets = [build_dataset_from_cfg(cfg, n) for n in cfg.DATASETS.TARGET]
    named = dict(zip(cfg.DATASETS.SOURCE, sources, strict=True))
    named |= dict(zip(cfg.DATASETS.TARGET, targets, strict=True))
    test_names = list(cfg.DATASETS.TEST) or list(cfg.DATASETS.TARGET) or list(cfg.DATASETS.SOURCE)
    if cfg.TEST.EVAL_SOURCE:
        test_names += [n for n in cfg.DATASETS.SOURCE if n not in test_names]
    tests = {n: named[n] if n in named else build_dataset_from_cfg(cfg, n) for n in test_names}
    for n in [n for n, ds in tests.items() if not (ds.query and ds.gallery)]:
        logger.warning("%s has no query / gallery split: it is not evaluated", n)
        del tests[n]
    if not tests:
        logger.warning("no test set: training runs without evaluation (no best.pth; use "
                       "last.pth)")
    return sources, targets, tests


def drop_corrupt(dataset_list: list[ReIDDataset]) -> None:
    """Drop the unreadable training images of every image dataset (``DATASETS.SKIP_CORRUPT``)."""
    from reid.data.torch_dataset import check_images

    for ds in dataset_list:
        if ds.is_video:
            continue
        bad = set(check_images(ds.train))
        if bad:
            logger.warning("%s: skipping %d unreadable training images", ds.name, len(bad))
            ds.train = [s for s in ds.train if s[0] not in bad]


def train_loader(cfg, samples: list, *, is_video: bool, domain: int, balanced: bool, seed: int,
                 camera_chunks: bool = False, pseudo_balanced: bool = False,
                 drop_unclustered: bool = False) -> DataLoader:
    """The training loader of one domain: ``balanced`` for labelled samples (true ids),
    ``pseudo_balanced`` for a target regrouped by pseudo labels every epoch (SpCLRunner);
    ``drop_unclustered``: the cross-camera sampler leaves un-clustered images out (Cluster
    Contrast) instead of making each an identity of its own (SpCL)."""
    from reid.data import samplers as smp

    batch, num, ranks = cfg.SOLVER.IMS_PER_BATCH, cfg.DATALOADER.NUM_INSTANCES, dict(
        seed=seed, rank=get_rank(), world_size=get_world_size())
    total = cfg.SOLVER.ITERS * batch
    if cfg.DATALOADER.SAMPLER == "cross_camera" and not camera_chunks:
        # SpCL's published sampler; a target starts with every image an identity of its own
        sampler = smp.CrossCameraIdentitySampler(
            [s[1] for s in samples] if balanced else [-1] * len(samples),
            [s[2] for s in samples], num, num_samples=total, ignore_negative=drop_unclustered,
            **ranks)
    elif pseudo_balanced:  # P x K over the pseudo groups of every epoch (SpCLRunner)
        sampler = smp.RandomIdentitySampler(range(len(samples)), batch_size=batch,
                                            num_instances=num, num_samples=total,
                                            ignore_negative=True, **ranks)
    elif camera_chunks:
        sampler = smp.CameraChunkSampler([s[2] for s in samples],
                                         chunk_size=cfg.DATALOADER.CAMERA_CHUNK,
                                         num_samples=total, **ranks)
    elif balanced:
        sampler = smp.RandomIdentitySampler([s[1] for s in samples], batch_size=batch,
                                            num_instances=num, num_samples=total, **ranks)
    else:
        sampler = smp.RandomSampler(len(samples), num_samples=total, **ranks)
    return make_train_loader(
        samples, is_video=is_video, sampler=sampler, domain=domain,
        transform=build_transform_from_cfg(cfg, is_train=True, is_video=is_video),
        **train_loader_kwargs(cfg))


def camera_branches(sources: list[ReIDDataset], targets: list[ReIDDataset]
                     ) -> list[dict[int, int] | None]:
    """``MODEL.CAMERA_BN``: per training domain, None (a source: its own branch, 0..S-1) or a
    target's ``{camid: branch}`` (branches S, S+1, ... over the targets' sorted cameras)."""
    if any(ds.is_video for ds in sources + targets):
        raise ConfigError("MODEL.CAMERA_BN supports image datasets only")
    maps: list[dict[int, int] | None] = [None] * len(sources)
    nxt = len(sources)
    for ds in targets:
        cams = sorted({int(s[2]) for s in ds.train})
        maps.append({c: nxt + k for k, c in enumerate(cams)})
        nxt += len(cams)
    if nxt < 2:
        raise ConfigError("MODEL.CAMERA_BN needs at least two cameras (or a source and a "
                          "target): a single branch is plain BN")
    logger.info("camera BN: %d BN branches (%d sources, target cameras %s)", nxt, len(sources),
                [sorted(m) for m in maps if m is not None])
    return maps
