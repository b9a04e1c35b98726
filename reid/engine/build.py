"""Config -> runner: the one place where datasets, model, memory, labels and solver meet."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch

from reid.config import save_cfg
from reid.data.build import (
    build_dataset_from_cfg,
    build_transform_from_cfg,
    make_test_loader,
    make_train_loader,
)
from reid.data.datasets.base import ReIDDataset
from reid.engine.evaluator import DatasetEvaluator
from reid.engine.loaders import DomainBatches
from reid.engine.runner import BaseRunner
from reid.solver import build_lr_scheduler, build_optimizer
from reid.utils.distributed import get_rank, get_world_size, is_main_process
from reid.utils.errors import ConfigError
from reid.utils.registry import Registry

logger = logging.getLogger(__name__)

RUNNER_REGISTRY = Registry("training method")


def build_evaluator(cfg, test_sets: dict[str, ReIDDataset], device: torch.device,
                    domain: int | None) -> DatasetEvaluator | None:
    """The evaluator of ``TEST.*`` over ``test_sets`` (None when there is none)."""
    if not test_sets:
        return None
    make_loader = lambda samples, is_video: make_test_loader(  # noqa: E731
        samples, is_video=is_video, batch_size=cfg.TEST.IMS_PER_BATCH,
        transform=build_transform_from_cfg(cfg, is_train=False, is_video=is_video),
        num_workers=cfg.DATALOADER.NUM_WORKERS, seq_len=cfg.INPUT.SEQ_LEN,
        skip_corrupt=cfg.DATASETS.SKIP_CORRUPT,
    )
    rerank = None
    if cfg.TEST.RERANK:
        rerank = {"k1": cfg.TEST.RERANK_K1, "k2": cfg.TEST.RERANK_K2,
                  "lambda_value": cfg.TEST.RERANK_LAMBDA}
    return DatasetEvaluator(
        test_sets, make_loader, device=device, domain=domain, flip=cfg.TEST.FLIP,
        metric=cfg.TEST.METRIC, normalize=cfg.TEST.NORM_FEAT, block_size=cfg.TEST.BLOCK_SIZE,
        max_rank=cfg.TEST.MAX_RANK, rerank=rerank, amp=cfg.SOLVER.AMP,
        camera_bn=cfg.TEST.CAMERA_BN,
    )


def _load_all(cfg) -> tuple[list[ReIDDataset], list[ReIDDataset], dict[str, ReIDDataset]]:
    """Parse every dataset first, so a missing one fails before any model is built."""
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


def _drop_corrupt(dataset_list: list[ReIDDataset]) -> None:
    from reid.data.torch_dataset import check_images

    for ds in dataset_list:
        if ds.is_video:
            continue
        bad = set(check_images(ds.train))
        if bad:
            logger.warning("%s: skipping %d unreadable training images", ds.name, len(bad))
            ds.train = [s for s in ds.train if s[0] not in bad]


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
    optimizer = build_optimizer(
        model.parameters(), name=cfg.SOLVER.OPTIMIZER, lr=cfg.SOLVER.BASE_LR,
        weight_decay=cfg.SOLVER.WEIGHT_DECAY, momentum=cfg.SOLVER.MOMENTUM,
        fused=cfg.SOLVER.FUSED,
    )
    scheduler = build_lr_scheduler(
        optimizer, warmup_epochs=cfg.SOLVER.WARMUP_EPOCHS, warmup_factor=cfg.SOLVER.WARMUP_FACTOR,
        steps=cfg.SOLVER.STEPS, gamma=cfg.SOLVER.GAMMA,
    )
    return optimizer, scheduler


def _ema(cfg, model) -> Any:
    """The mean teacher of ``MODEL.EMA_MOMENTUM`` (None when 0)."""
    from reid.models import ModelEMA

    return ModelEMA(model, cfg.MODEL.EMA_MOMENTUM) if cfg.MODEL.EMA_MOMENTUM > 0 else None


def _common(cfg, model, evaluator, device, writer, ema: Any = None) -> dict[str, Any]:
    optimizer, scheduler = _solver(cfg, model)
    return dict(
        model=model, ema=ema, optimizer=optimizer, scheduler=scheduler, evaluator=evaluator,
        output_dir=cfg.OUTPUT_DIR, max_epochs=cfg.SOLVER.MAX_EPOCHS, iters=cfg.SOLVER.ITERS,
        eval_period=cfg.TEST.EVAL_PERIOD, checkpoint_period=cfg.SOLVER.CHECKPOINT_PERIOD,
        device=device, amp=cfg.SOLVER.AMP, writer=writer,
    )


SAMPLERS = ("random", "pk", "cross_camera")


def _sampler_kind(cfg) -> str:
    """``DATALOADER.SAMPLER``, checked."""
    kind = cfg.DATALOADER.SAMPLER
    if kind not in SAMPLERS:
        raise ConfigError(f"DATALOADER.SAMPLER must be one of {', '.join(SAMPLERS)}, got "
                          f"{kind!r}")
    return kind


def _train_loader(cfg, samples, *, is_video, domain, balanced: bool, seed: int,
                  camera_chunks: bool = False, pseudo_balanced: bool = False):
    """The training loader of one domain: ``balanced`` for labelled samples (true ids),
    ``pseudo_balanced`` for a target regrouped by pseudo labels every epoch (SpCLRunner)."""
    from reid.data.samplers import (
        CameraChunkSampler,
        CrossCameraIdentitySampler,
        RandomIdentitySampler,
        RandomSampler,
    )

    batch = cfg.SOLVER.IMS_PER_BATCH
    total = cfg.SOLVER.ITERS * batch
    if _sampler_kind(cfg) == "cross_camera" and not camera_chunks:
        # SpCL's published sampler; a target starts with every image an identity of its own
        sampler = CrossCameraIdentitySampler(
            [s[1] for s in samples] if balanced else [-1] * len(samples),
            [s[2] for s in samples], cfg.DATALOADER.NUM_INSTANCES, seed=seed, rank=get_rank(),
            world_size=get_world_size(), num_samples=total,
        )
    elif pseudo_balanced:  # P x K over the pseudo groups of every epoch (SpCLRunner)
        sampler = RandomIdentitySampler(
            range(len(samples)), batch_size=batch, num_instances=cfg.DATALOADER.NUM_INSTANCES,
            num_samples=total, seed=seed, rank=get_rank(), world_size=get_world_size(),
            ignore_negative=True,
        )
    elif camera_chunks:
        sampler = CameraChunkSampler(
            [s[2] for s in samples], chunk_size=cfg.DATALOADER.CAMERA_CHUNK, num_samples=total,
            seed=seed, rank=get_rank(), world_size=get_world_size(),
        )
    elif balanced:
        sampler = RandomIdentitySampler(
            [s[1] for s in samples], batch_size=batch, num_instances=cfg.DATALOADER.NUM_INSTANCES,
            num_samples=total, seed=seed, rank=get_rank(), world_size=get_world_size(),
        )
    else:
        sampler = RandomSampler(len(samples), num_samples=total, seed=seed, rank=get_rank(),
                                world_size=get_world_size())
    return make_train_loader(
        samples, is_video=is_video,
        transform=build_transform_from_cfg(cfg, is_train=True, is_video=is_video),
        sampler=sampler, batch_size=batch, num_workers=cfg.DATALOADER.NUM_WORKERS, domain=domain,
        seq_len=cfg.INPUT.SEQ_LEN, clip_sampler=cfg.INPUT.SAMPLER_TRAIN,
        skip_corrupt=cfg.DATASETS.SKIP_CORRUPT,
    )


def _memory_method_parts(cfg, device: torch.device, writer: Any) -> dict[str, Any]:
    """Keyword arguments of :class:`reid.engine.spcl.SpCLRunner` (and its subclasses): data,
    model, hybrid memory, pseudo labelers and solver of a clustering-based method."""
    from reid.memory import HybridMemory
    from reid.models import build_model, extract_features

    sources, targets, tests = _load_all(cfg)
    if not targets:
        raise ConfigError("SpCL needs at least one DATASETS.TARGET (SOURCE may be empty for USL)")
    if cfg.CLUSTER.CAMERA_GROUPS:
        from reid.cluster.groups import check_groups_present

        try:
            check_groups_present(cfg.CLUSTER.CAMERA_GROUPS,
                                 {ds.name: [s[2] for s in ds.train] for ds in targets})
        except ValueError as err:
            raise ConfigError(f"CLUSTER.CAMERA_GROUPS: {err}") from None
    if cfg.DATASETS.SKIP_CORRUPT:
        _drop_corrupt(sources + targets)
    domains = sources + targets
    num_domains = len(domains) if cfg.MODEL.DSBN.ENABLED else 1
    if cfg.MODEL.DSBN.NUM_DOMAINS > 0:
        num_domains = cfg.MODEL.DSBN.NUM_DOMAINS
    # camera-based BN: sources keep one branch each, every target camera gets its own
    cam_maps: list[dict[int, int] | None] = [None] * len(domains)
    if cfg.MODEL.CAMERA_BN:
        cam_maps = _camera_branches(cfg, sources, targets)
        num_domains = 1 + max(max(m.values()) for m in cam_maps if m)
    model = build_model(cfg, num_classes=0, num_domains=num_domains)
    _init_from_weights(cfg, model)
    model = model.to(device)
    test_domain = cfg.MODEL.DSBN.TEST_DOMAIN % num_domains
    evaluator = build_evaluator(cfg, tests, device, domain=test_domain)
    ema = _ema(cfg, model)
    encoder = ema.module if ema is not None else model  # what extracts features

    def branch(d: int) -> int:
        return d if cfg.MODEL.CAMERA_BN else min(d, num_domains - 1)

    def extract(domain: int) -> torch.Tensor:
        ds = domains[domain]
        samples, order = ds.train, None
        if cam_maps[domain] is not None:  # camera order: batches hold few cameras (cheaper BN)
            order = np.argsort([s[2] for s in ds.train], kind="stable")
            samples = [ds.train[i] for i in order]
        loader = make_test_loader(
            samples, is_video=ds.is_video,
            transform=build_transform_from_cfg(cfg, is_train=False, is_video=ds.is_video),
            batch_size=cfg.TEST.IMS_PER_BATCH, num_workers=cfg.DATALOADER.NUM_WORKERS,
            seq_len=cfg.INPUT.SEQ_LEN, skip_corrupt=cfg.DATASETS.SKIP_CORRUPT,
        )
        was_training = encoder.training
        encoder.eval()
        feats, _, _ = extract_features(encoder, loader, device=device, domain=branch(domain),
                                       amp=cfg.SOLVER.AMP, camera_domains=cam_maps[domain])
        encoder.train(was_training)
        feats = feats.float().cpu()
        if order is not None:
            feats = torch.empty_like(feats).index_copy_(0, torch.as_tensor(order), feats)
        return feats

    def init_bn() -> None:
        """Exact per-camera statistics of every camera branch before the memory is filled."""
        from reid.data.datasets.common import by_camera
        from reid.models import estimate_bn_statistics

        for ds, cams in zip(domains, cam_maps, strict=True):
            if cams is None:
                continue
            loaders = {cams[c]: make_test_loader(
                items, is_video=False, transform=build_transform_from_cfg(cfg, is_train=False),
                batch_size=cfg.TEST.IMS_PER_BATCH, num_workers=cfg.DATALOADER.NUM_WORKERS,
                skip_corrupt=cfg.DATASETS.SKIP_CORRUPT) for c, items in by_camera(ds.train).items()}
            estimate_bn_statistics(model, loaders, device)
        if ema is not None:  # the mean teacher starts from the estimated statistics too
            ema.reset(model)
        logger.info("camera BN: statistics of %d camera branches estimated",
                    sum(len(m) for m in cam_maps if m))

    target_sampler = _sampler_kind(cfg)
    if target_sampler != "random" and cfg.MODEL.CAMERA_BN:
        raise ConfigError(f"DATALOADER.SAMPLER {target_sampler} and MODEL.CAMERA_BN both shape "
                          "the target batches (identity groups vs camera-pure chunks); choose one "
                          "(DATALOADER.SAMPLER random with MODEL.CAMERA_BN)")
    loaders, keys = [], []
    for d, ds in enumerate(domains):
        is_source = d < len(sources)
        loaders.append(_train_loader(cfg, ds.train, is_video=ds.is_video, domain=branch(d),
                                     balanced=is_source, seed=cfg.SEED + d,
                                     camera_chunks=cam_maps[d] is not None,
                                     pseudo_balanced=not is_source and target_sampler == "pk"))
        keys.append("pid" if is_source else "index")
    batches = DomainBatches(loaders, keys, domains=[branch(d) for d in range(len(domains))],
                            camera_branches=cam_maps)
    memory = HybridMemory(
        model.feat_dim,
        source_classes=[ds.num_train_pids for ds in sources],
        target_instances=[len(ds.train) for ds in targets],
        temperature=cfg.MEMORY.TEMPERATURE,
        momentum=cfg.MEMORY.MOMENTUM,
        reduction=cfg.MEMORY.LOSS_REDUCTION,
        softmax_eps=cfg.MEMORY.SOFTMAX_EPS,
    )
    labelers = [_labeler(cfg, ds, device) for ds in targets]
    true_ids = [None if ds.extra.get("unlabelled") else np.asarray([s[1] for s in ds.train])
                for ds in targets]
    return dict(
        memory=memory, labelers=labelers, batches=batches, extract=extract,
        source_labels=[np.asarray([s[1] for s in ds.train]) for ds in sources],
        target_true_ids=true_ids, cluster_on=cfg.CLUSTER.FEATURES,
        target_camids=[np.asarray([s[2] for s in ds.train]) for ds in targets],
        camera_centre=cfg.CLUSTER.CAMERA_CENTRE,
        init_bn=init_bn if cfg.MODEL.CAMERA_BN else None,
        target_sampler=target_sampler, refresh_memory=cfg.MEMORY.REFRESH,
        target_paths=[[s[0] if isinstance(s[0], str) else s[0][0] for s in ds.train]
                      for ds in targets],
        **_common(cfg, model, evaluator, device, writer, ema=ema),
    )


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


def _camera_branches(cfg, sources: list[ReIDDataset], targets: list[ReIDDataset]
                     ) -> list[dict[int, int] | None]:
    """``MODEL.CAMERA_BN``: per training domain, None (a source: its own branch, 0..S-1) or a
    target's ``{camid: branch}`` (branches S, S+1, ... over the targets' sorted cameras)."""
    if not cfg.TEST.CAMERA_BN:
        raise ConfigError("MODEL.CAMERA_BN trains one BN branch per target camera, so the test "
                         "features need per-camera statistics too: set TEST.CAMERA_BN True")
    if any(ds.is_video for ds in sources + targets):
        raise ConfigError("MODEL.CAMERA_BN supports image datasets only")
    chunk, batch = cfg.DATALOADER.CAMERA_CHUNK, cfg.SOLVER.IMS_PER_BATCH
    if chunk < 2 or batch % chunk:
        raise ConfigError(f"MODEL.CAMERA_BN needs DATALOADER.CAMERA_CHUNK >= 2 dividing "
                         f"SOLVER.IMS_PER_BATCH ({batch}), got {chunk}")
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


@RUNNER_REGISTRY.register("spcl")
def build_spcl_runner(cfg, device: torch.device, writer: Any = None) -> BaseRunner:
    """SpCL for UDA (SOURCE and TARGET) or USL (TARGET only)."""
    from reid.engine.spcl import SpCLRunner

    return SpCLRunner(**_memory_method_parts(cfg, device, writer))


@RUNNER_REGISTRY.register("cap")
def build_cap_runner(cfg, device: torch.device, writer: Any = None) -> BaseRunner:
    """Camera-aware proxies on SpCL's clustering and instance memory (USL; UDA with
    ``CAP.SPCL_WEIGHT`` > 0, SpCL's loss plus the camera-aware terms on the targets)."""
    from reid.engine.cap import CAPRunner

    if cfg.DATASETS.SOURCE and cfg.CAP.SPCL_WEIGHT <= 0:
        raise ConfigError("SOLVER.METHOD cap with a DATASETS.SOURCE needs CAP.SPCL_WEIGHT > 0: "
                         "the proxy losses only see target samples")
    c = cfg.CAP
    return CAPRunner(spcl_weight=c.SPCL_WEIGHT, intra_weight=c.INTRA_WEIGHT,
                     inter_weight=c.INTER_WEIGHT, proxy_temperature=c.TEMPERATURE,
                     num_hard=c.NUM_HARD, num_unseen_skip=c.UNSEEN_SKIP,
                     camera_groups=cfg.CLUSTER.CAMERA_GROUPS or None,
                     **_memory_method_parts(cfg, device, writer))


@RUNNER_REGISTRY.register("cluster_contrast")
def build_cluster_contrast_runner(cfg, device: torch.device, writer: Any = None) -> BaseRunner:
    """Cluster Contrast (USL): one DATASETS.TARGET, clusters re-extracted every epoch, P x K
    batches over the clusters, a cluster memory (``MEMORY.*``)."""
    from reid.engine.cluster_contrast import ClusterContrastRunner
    from reid.memory import ClusterMemory
    from reid.memory.cluster import UPDATE_MODES

    problems = []
    if cfg.DATASETS.SOURCE or len(cfg.DATASETS.TARGET) != 1:
        problems.append("exactly one DATASETS.TARGET and no DATASETS.SOURCE (it is unsupervised "
                        "and has one softmax over one domain's clusters; SOLVER.METHOD spcl or "
                        "cap adapt from a source)")
    if cfg.MODEL.DSBN.NUM_DOMAINS > 1 or cfg.MODEL.CAMERA_BN:
        problems.append("a single BN branch (MODEL.DSBN.NUM_DOMAINS <= 1, MODEL.CAMERA_BN False)")
    if cfg.DATALOADER.SAMPLER != "pk":
        problems.append("DATALOADER.SAMPLER pk (P clusters x K images per batch, un-clustered "
                        "images not sampled)")
    if cfg.CLUSTER.FEATURES != "extract":
        problems.append("CLUSTER.FEATURES extract (it keeps no per-image memory to cluster)")
    if cfg.MEMORY.CC_UPDATE not in UPDATE_MODES:
        problems.append(f"MEMORY.CC_UPDATE in {UPDATE_MODES}, got {cfg.MEMORY.CC_UPDATE!r}")
    if problems:
        raise ConfigError("SOLVER.METHOD cluster_contrast needs " + "; ".join(problems))
    if cfg.CLUSTER.SELF_PACED:
        logger.warning("cluster_contrast with CLUSTER.SELF_PACED True: the published method "
                       "uses plain DBSCAN clusters (configs/cluster_contrast set it False)")
    parts = _memory_method_parts(cfg, device, writer)
    del parts["memory"], parts["refresh_memory"]  # SpCL's instance memory is not used
    memory = ClusterMemory(parts["model"].feat_dim, temperature=cfg.MEMORY.TEMPERATURE,
                           momentum=cfg.MEMORY.MOMENTUM, mode=cfg.MEMORY.CC_UPDATE)
    return ClusterContrastRunner(cluster_memory=memory, **parts)


@RUNNER_REGISTRY.register("supervised")
def build_supervised_runner(cfg, device: torch.device, writer: Any = None) -> BaseRunner:
    """Cross-entropy + triplet on the labelled DATASETS.SOURCE sets (combined, one BN)."""
    from reid.data.datasets import combine_datasets
    from reid.engine.supervised import SupervisedRunner
    from reid.loss import CrossEntropyLabelSmooth, TripletLoss
    from reid.models import build_model

    sources, _, tests = _load_all(cfg)
    if not sources:
        raise ConfigError("supervised training needs at least one DATASETS.SOURCE")
    if cfg.MODEL.CAMERA_BN:
        raise ConfigError("MODEL.CAMERA_BN is implemented for the clustering methods (spcl, "
                         "cap); supervised training uses one BN (TEST.CAMERA_BN still works)")
    if cfg.DATASETS.SKIP_CORRUPT:
        _drop_corrupt(sources)
    train = combine_datasets(sources)
    num_classes = len({s[1] for s in train})
    model = build_model(cfg, num_classes=num_classes, num_domains=1)
    _init_from_weights(cfg, model)
    model = model.to(device)
    evaluator = build_evaluator(cfg, tests, device, domain=0)
    loader = _train_loader(cfg, train, is_video=sources[0].is_video, domain=0, balanced=True,
                           seed=cfg.SEED)
    batches = DomainBatches([loader], ["pid"])
    triplet = None
    if cfg.SOLVER.TRIPLET_WEIGHT > 0:
        triplet = TripletLoss(
            margin=cfg.SOLVER.TRIPLET_MARGIN, normalize=cfg.SOLVER.TRIPLET_NORM_FEAT
        )
    return SupervisedRunner(
        batches=batches, ce_loss=CrossEntropyLabelSmooth(num_classes, cfg.SOLVER.LABEL_SMOOTHING),
        triplet_loss=triplet, triplet_weight=cfg.SOLVER.TRIPLET_WEIGHT,
        **_common(cfg, model, evaluator, device, writer, ema=_ema(cfg, model)),
    )


def build_runner(cfg, device: torch.device, writer: Any = None) -> BaseRunner:
    """Build the runner of ``SOLVER.METHOD``; writes ``OUTPUT_DIR/config.yaml`` first."""
    if is_main_process():
        save_cfg(cfg, Path(cfg.OUTPUT_DIR) / "config.yaml")
    runner = RUNNER_REGISTRY.get(cfg.SOLVER.METHOD)(cfg, device=device, writer=writer)
    runner.init_description = describe_init(cfg)
    return runner
