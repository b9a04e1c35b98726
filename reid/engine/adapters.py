"""Config -> keyword arguments: the one place where the ``cfg`` keys become the plain arguments
of the library classes (torchreid's ``imagedata_kwargs`` style); the classes never see cfg."""
from __future__ import annotations

from typing import Any

from reid.loss import CrossEntropyLabelSmooth, TripletLoss


def runner_kwargs(cfg: Any) -> dict[str, Any]:
    """``OUTPUT_DIR``, ``SOLVER.*`` and ``TEST.EVAL_PERIOD`` -> the loop arguments of
    :class:`reid.engine.runner.BaseRunner` (model, solver, evaluator and device aside)."""
    return dict(output_dir=cfg.OUTPUT_DIR, max_epochs=cfg.SOLVER.MAX_EPOCHS,
                iters=cfg.SOLVER.ITERS, eval_period=cfg.TEST.EVAL_PERIOD,
                checkpoint_period=cfg.SOLVER.CHECKPOINT_PERIOD, amp=cfg.SOLVER.AMP)


def optimizer_kwargs(cfg: Any) -> dict[str, Any]:
    """``SOLVER.*`` -> :func:`reid.solver.build_optimizer` keywords."""
    s = cfg.SOLVER
    return dict(name=s.OPTIMIZER, lr=s.BASE_LR, weight_decay=s.WEIGHT_DECAY,
                momentum=s.MOMENTUM, fused=s.FUSED)


def scheduler_kwargs(cfg: Any) -> dict[str, Any]:
    """``SOLVER.*`` -> :func:`reid.solver.build_lr_scheduler` keywords."""
    s = cfg.SOLVER
    return dict(warmup_epochs=s.WARMUP_EPOCHS, warmup_factor=s.WARMUP_FACTOR, steps=s.STEPS,
                gamma=s.GAMMA)


def eval_loader_kwargs(cfg: Any) -> dict[str, Any]:
    """Keywords of :func:`reid.data.build.make_test_loader` (transform aside)."""
    return dict(batch_size=cfg.TEST.IMS_PER_BATCH, num_workers=cfg.DATALOADER.NUM_WORKERS,
                seq_len=cfg.INPUT.SEQ_LEN, skip_corrupt=cfg.DATASETS.SKIP_CORRUPT,
                clip_sampler=cfg.INPUT.SAMPLER_TEST)


def train_loader_kwargs(cfg: Any) -> dict[str, Any]:
    """Keywords of :func:`reid.data.build.make_train_loader` (samples, transform, sampler and
    domain aside)."""
    return dict(batch_size=cfg.SOLVER.IMS_PER_BATCH, num_workers=cfg.DATALOADER.NUM_WORKERS,
                seq_len=cfg.INPUT.SEQ_LEN, clip_sampler=cfg.INPUT.SAMPLER_TRAIN,
                skip_corrupt=cfg.DATASETS.SKIP_CORRUPT)


def evaluator_kwargs(cfg: Any) -> dict[str, Any]:
    """``TEST.*`` -> the keywords of :class:`reid.evaluation.evaluator.DatasetEvaluator`
    (test sets, loader factory, device and BN branch aside)."""
    t = cfg.TEST
    rerank = ({"k1": t.RERANK_K1, "k2": t.RERANK_K2, "lambda_value": t.RERANK_LAMBDA}
              if t.RERANK else None)
    return dict(flip=t.FLIP, metric=t.METRIC, normalize=t.NORM_FEAT, block_size=t.BLOCK_SIZE,
                max_rank=t.MAX_RANK, rerank=rerank, amp=cfg.SOLVER.AMP, camera_bn=t.CAMERA_BN)


def hybrid_memory_kwargs(cfg: Any) -> dict[str, Any]:
    """``MEMORY.*`` -> :class:`reid.memory.HybridMemory` keywords (sizes aside)."""
    m = cfg.MEMORY
    return dict(temperature=m.TEMPERATURE, momentum=m.MOMENTUM, reduction=m.LOSS_REDUCTION,
                softmax_eps=m.SOFTMAX_EPS)


def cluster_memory_kwargs(cfg: Any) -> dict[str, Any]:
    """``MEMORY.*`` -> :class:`reid.memory.ClusterMemory` keywords (feature size aside)."""
    return dict(temperature=cfg.MEMORY.TEMPERATURE, momentum=cfg.MEMORY.MOMENTUM,
                mode=cfg.MEMORY.CC_UPDATE)


def clustering_kwargs(cfg: Any) -> dict[str, Any]:
    """``CLUSTER.FEATURES`` / ``MEMORY.REFRESH`` -> :class:`reid.engine.spcl.SpCLRunner`'s
    ``cluster_on`` and ``refresh_memory``."""
    return dict(cluster_on=cfg.CLUSTER.FEATURES, refresh_memory=cfg.MEMORY.REFRESH)


def cap_kwargs(cfg: Any) -> dict[str, Any]:
    """``CAP.*`` and ``CLUSTER.CAMERA_GROUPS`` -> :class:`reid.engine.cap.CAPRunner`'s own
    keywords."""
    c = cfg.CAP
    return dict(spcl_weight=c.SPCL_WEIGHT, intra_weight=c.INTRA_WEIGHT,
                inter_weight=c.INTER_WEIGHT, proxy_temperature=c.TEMPERATURE,
                num_hard=c.NUM_HARD, num_unseen_skip=c.UNSEEN_SKIP,
                camera_groups=cfg.CLUSTER.CAMERA_GROUPS or None)


def supervised_losses(cfg: Any, num_classes: int) -> tuple[CrossEntropyLabelSmooth,
                                                            TripletLoss | None]:
    """``SOLVER.LABEL_SMOOTHING`` / ``SOLVER.TRIPLET_*`` -> (cross-entropy over
    ``num_classes``, triplet or None when ``SOLVER.TRIPLET_WEIGHT`` is 0; the weight itself is
    applied by the runner)."""
    ce = CrossEntropyLabelSmooth(num_classes, cfg.SOLVER.LABEL_SMOOTHING)
    triplet = None
    if cfg.SOLVER.TRIPLET_WEIGHT > 0:
        triplet = TripletLoss(margin=cfg.SOLVER.TRIPLET_MARGIN,
                              normalize=cfg.SOLVER.TRIPLET_NORM_FEAT)
    return ce, triplet
