"""Config -> runner: the one place where datasets, model, memory, labels and solver meet."""
from __future__ import annotations

import logging
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch

from reid.cluster.label_step import PseudoLabelStep
from reid.config import save_cfg
from reid.config.validate import validate_cfg
from reid.data.build import build_transform_from_cfg, make_test_loader
from reid.data.datasets.base import ReIDDataset
from reid.data.domain_batches import DomainBatches
from reid.engine.adapters import (
    cap_kwargs,
    cluster_memory_kwargs,
    clustering_kwargs,
    eval_loader_kwargs,
    evaluator_kwargs,
    hybrid_memory_kwargs,
    optimizer_kwargs,
    runner_kwargs,
    scheduler_kwargs,
    supervised_losses,
)
from reid.engine.data import camera_branches, drop_corrupt, load_datasets, train_loader
from reid.engine.domains import TrainingDomains
from reid.engine.runner import BaseRunner
from reid.evaluation.evaluator import DatasetEvaluator
from reid.solver import build_lr_scheduler, build_optimizer
from reid.utils.distributed import is_main_process
from reid.utils.errors import ConfigError
from reid.utils.registry import Registry

logger = logging.getLogger(__name__)

RUNNER_REGISTRY = Registry("training method")


def build_evaluator(cfg, test_sets: dict[str, ReIDDataset], device: torch.device,
                    domain: int | None) -> DatasetEvaluator | None:
    """The evaluator of ``TEST.*`` over ``test_sets`` (None when there is none)."""
    if not test_sets:
        return None
    transforms = {v: build_transform_from_cfg(cfg, is_train=False, is_video=v)
                  for v in {ds.is_video for ds in test_sets.values()}}
    make_loader = partial(_eval_loader, transforms=transforms, **eval_loader_kwargs(cfg))
    return DatasetEvaluator(test_sets, make_loader, device=device, domain=domain,
                            **evaluator_kwargs(cfg))


def _eval_loader(samples: list, is_video: bool, *, transforms: dict[bool, Any], **kwargs: Any):
    return make_test_loader(samples, is_video=is_video, transform=transforms[is_video], **kwargs)


def _init_from_weights(cfg, model) -> None:
    """Start training from the full model of ``MODEL.WEIGHTS`` when set (e.g. a source-trained
    model for two-stage UDA); plain BN entries fill every domain-specific branch. A resumed run
    then overwrites these weights with its own checkpoint. A classifier head whose shape
    differs (another set of identities) stays as initialised, with a warning; any other
    difference is refused unless ``MODEL.WEIGHTS_PARTIAL``."""
    if cfg.MODEL.WEIGHTS:
        from reid.models import load_pretrained

        load_pretrained(model, cfg.MODEL.WEIGHTS, skip_mismatched=True,
                        partial=cfg.MODEL.WEIGHTS_PARTIAL)


def describe_init(cfg) -> str:
    """Where the weights of a new run come from, for the log."""
    if cfg.MODEL.WEIGHTS:
        return f"the full model of MODEL.WEIGHTS {cfg.MODEL.WEIGHTS}"
    if cfg.MODEL.PRETRAINED_PATH:
        return (f"backbone from MODEL.PRETRAINED_PATH {cfg.MODEL.PRETRAINED_PATH}, neck and "
                "head random")
    return "random (MODEL.PRETRAINED_PATH and MODEL.WEIGHTS are empty)"


def _solver(cfg, model) -> tuple[Any, Any]:
    optimizer = build_optimizer(model.parameters(), **optimizer_kwargs(cfg))
    return optimizer, build_lr_scheduler(optimizer, **scheduler_kwargs(cfg))


def _ema(cfg, model) -> Any:
    """The mean teacher of ``MODEL.EMA_MOMENTUM`` (None when 0)."""
    from reid.models import ModelEMA

    return ModelEMA(model, cfg.MODEL.EMA_MOMENTUM) if cfg.MODEL.EMA_MOMENTUM > 0 else None


def _common(cfg, model, evaluator, device, writer, ema: Any = None) -> dict[str, Any]:
    optimizer, scheduler = _solver(cfg, model)
    return dict(model=model, ema=ema, optimizer=optimizer, scheduler=scheduler,
                evaluator=evaluator, device=device, writer=writer, **runner_kwargs(cfg))


def _targets_and_model(cfg, device: torch.device) -> dict[str, Any]:
    """The datasets, BN branches, model, mean teacher and evaluator of a clustering method."""
    from reid.models import build_model

    sources, targets, tests = load_datasets(cfg)
    if cfg.CLUSTER.CAMERA_GROUPS:
        from reid.cluster.groups import check_groups_present

        try:
            check_groups_present(cfg.CLUSTER.CAMERA_GROUPS,
                                 {ds.name: [s[2] for s in ds.train] for ds in targets})
        except ValueError as err:
            raise ConfigError(f"CLUSTER.CAMERA_GROUPS: {err}") from None
    if cfg.DATASETS.SKIP_CORRUPT:
        drop_corrupt(sources + targets)
    datasets = sources + targets
    num_domains = len(datasets) if cfg.MODEL.DSBN.ENABLED else 1
    if cfg.MODEL.DSBN.NUM_DOMAINS > 0:
        num_domains = cfg.MODEL.DSBN.NUM_DOMAINS
    # camera-based BN: sources keep one branch each, every target camera gets its own
    cam_maps: list[dict[int, int] | None] = [None] * len(datasets)
    if cfg.MODEL.CAMERA_BN:
        cam_maps = camera_branches(sources, targets)
        num_domains = 1 + max(max(m.values()) for m in cam_maps if m)
    model = build_model(cfg, num_classes=0, num_domains=num_domains)
    _init_from_weights(cfg, model)
    model = model.to(device)
    evaluator = build_evaluator(cfg, tests, device,
                                domain=cfg.MODEL.DSBN.TEST_DOMAIN % num_domains)
    branches = [d if cfg.MODEL.CAMERA_BN else min(d, num_domains - 1)
                for d in range(len(datasets))]
    return dict(sources=sources, targets=targets, cam_maps=cam_maps, branches=branches,
                model=model, evaluator=evaluator, ema=_ema(cfg, model))


def _clustering_parts(cfg, device: torch.device, writer: Any, *, compact: bool = False
                      ) -> dict[str, Any]:
    """Keyword arguments of :class:`reid.engine.spcl.SpCLRunner` (and its subclasses) but the
    memory and the method's switches: training domains, pseudo-label step, model, solver.
    ``compact`` (Cluster Contrast): clusters numbered 0..C-1 and un-clustered target images
    never sampled."""
    p = _targets_and_model(cfg, device)
    sources, targets, cam_maps, branches = (p[k] for k in ("sources", "targets", "cam_maps",
                                                           "branches"))
    datasets = sources + targets
    loaders = [train_loader(cfg, ds.train, is_video=ds.is_video, domain=branches[d],
                             balanced=d < len(sources), seed=cfg.SEED + d,
                             camera_chunks=cam_maps[d] is not None,
                             pseudo_balanced=d >= len(sources) and cfg.DATALOADER.SAMPLER == "pk",
                             drop_unclustered=compact and d >= len(sources))
               for d, ds in enumerate(datasets)]
    keys = ["pid"] * len(sources) + ["index"] * len(targets)
    batches = DomainBatches(loaders, keys, domains=branches, camera_branches=cam_maps)
    transforms = {v: build_transform_from_cfg(cfg, is_train=False, is_video=v)
                  for v in {ds.is_video for ds in datasets}}
    domains = TrainingDomains(datasets, len(sources), batches, transforms=transforms,
                              device=device, amp=cfg.SOLVER.AMP,
                              target_sampler=cfg.DATALOADER.SAMPLER, **eval_loader_kwargs(cfg))
    label_step = PseudoLabelStep(
        [_labeler(cfg, ds, device) for ds in targets],
        camids=[np.asarray([s[2] for s in ds.train]) for ds in targets],
        true_ids=[None if ds.extra.get("unlabelled") else np.asarray([s[1] for s in ds.train])
                  for ds in targets],
        camera_centre=cfg.CLUSTER.CAMERA_CENTRE, compact=compact, device=device,
        paths=[[s[0] if isinstance(s[0], str) else s[0][0] for s in ds.train] for ds in targets])
    return dict(domains=domains, label_step=label_step,
                **_common(cfg, p["model"], p["evaluator"], device, writer, ema=p["ema"]))


def _hybrid_memory(cfg, domains: TrainingDomains, feat_dim: int) -> Any:
    from reid.memory import HybridMemory

    return HybridMemory(feat_dim, source_classes=[ds.num_train_pids for ds in domains.sources],
                        target_instances=[len(ds.train) for ds in domains.targets],
                        **hybrid_memory_kwargs(cfg))


def _labeler(cfg, target: ReIDDataset, device: torch.device) -> Any:
    """The pseudo labeler of one target: ``CLUSTER.METHOD``, run per camera group when
    ``CLUSTER.CAMERA_GROUPS`` is set."""
    from reid.cluster import build_pseudo_labeler
    from reid.cluster.groups import CameraGroupLabeler

    if not cfg.CLUSTER.CAMERA_GROUPS:
        return build_pseudo_labeler(cfg, device=device)
    try:
        return CameraGroupLabeler(lambda: build_pseudo_labeler(cfg, device=device),
                                  [s[2] for s in target.train], cfg.CLUSTER.CAMERA_GROUPS)
    except ValueError as err:
        raise ConfigError(f"CLUSTER.CAMERA_GROUPS for {target.name}: {err}") from None


@RUNNER_REGISTRY.register("spcl")
def build_spcl_runner(cfg, device: torch.device, writer: Any = None) -> BaseRunner:
    """SpCL for UDA (SOURCE and TARGET) or USL (TARGET only)."""
    from reid.engine.spcl import SpCLRunner

    parts = _clustering_parts(cfg, device, writer)
    memory = _hybrid_memory(cfg, parts["domains"], parts["model"].feat_dim)
    return SpCLRunner(memory=memory, **clustering_kwargs(cfg), **parts)


@RUNNER_REGISTRY.register("cap")
def build_cap_runner(cfg, device: torch.device, writer: Any = None) -> BaseRunner:
    """Camera-aware proxies on SpCL's clustering and instance memory (USL; UDA with
    ``CAP.SPCL_WEIGHT`` > 0, SpCL's loss plus the camera-aware terms on the targets)."""
    from reid.engine.cap import CAPRunner

    parts = _clustering_parts(cfg, device, writer)
    memory = _hybrid_memory(cfg, parts["domains"], parts["model"].feat_dim)
    return CAPRunner(memory=memory, **cap_kwargs(cfg), **clustering_kwargs(cfg), **parts)


@RUNNER_REGISTRY.register("cluster_contrast")
def build_cluster_contrast_runner(cfg, device: torch.device, writer: Any = None) -> BaseRunner:
    """Cluster Contrast (USL): one DATASETS.TARGET, clusters re-extracted every epoch, P x K
    batches over the clusters, a cluster memory (``MEMORY.*``)."""
    from reid.engine.cluster_contrast import ClusterContrastRunner
    from reid.memory import ClusterMemory

    if cfg.CLUSTER.SELF_PACED:
        logger.warning("cluster_contrast with CLUSTER.SELF_PACED True: the published method "
                       "uses plain DBSCAN clusters (configs/cluster_contrast set it False)")
    parts = _clustering_parts(cfg, device, writer, compact=True)
    memory = ClusterMemory(parts["model"].feat_dim, **cluster_memory_kwargs(cfg))
    return ClusterContrastRunner(cluster_memory=memory, **parts)


@RUNNER_REGISTRY.register("supervised")
def build_supervised_runner(cfg, device: torch.device, writer: Any = None) -> BaseRunner:
    """Cross-entropy + triplet on the labelled DATASETS.SOURCE sets (combined, one BN)."""
    from reid.data.datasets import combine_datasets
    from reid.engine.supervised import SupervisedRunner
    from reid.models import build_model

    sources, _, tests = load_datasets(cfg)
    if cfg.DATASETS.SKIP_CORRUPT:
        drop_corrupt(sources)
    train = combine_datasets(sources)
    num_classes = len({s[1] for s in train})
    model = build_model(cfg, num_classes=num_classes, num_domains=1)
    _init_from_weights(cfg, model)
    model = model.to(device)
    evaluator = build_evaluator(cfg, tests, device, domain=0)
    loader = train_loader(cfg, train, is_video=sources[0].is_video, domain=0, balanced=True,
                           seed=cfg.SEED)
    ce, triplet = supervised_losses(cfg, num_classes)
    return SupervisedRunner(
        batches=DomainBatches([loader], ["pid"]), ce_loss=ce, triplet_loss=triplet,
        triplet_weight=cfg.SOLVER.TRIPLET_WEIGHT,
        **_common(cfg, model, evaluator, device, writer, ema=_ema(cfg, model)),
    )


def build_runner(cfg, device: torch.device, writer: Any = None) -> BaseRunner:
    """Build the runner of ``SOLVER.METHOD`` (the config checked by
    :func:`reid.config.validate.validate_cfg` first); writes ``OUTPUT_DIR/config.yaml``."""
    validate_cfg(cfg)
    if is_main_process():
        save_cfg(cfg, Path(cfg.OUTPUT_DIR) / "config.yaml")
    runner = RUNNER_REGISTRY.get(cfg.SOLVER.METHOD)(cfg, device=device, writer=writer)
    runner.init_description = describe_init(cfg)
    return runner
