"""Every rule that ties config keys of different sections together, checked in one place.

:func:`validate_cfg` runs once when the tools load a config and again at the start of
:func:`reid.engine.build.build_runner` (for library users). Rules that need the datasets
themselves (camera ids, video or image) stay with the builder that loads them.
"""
from __future__ import annotations

from typing import Any

from reid.utils.errors import ConfigError

__all__ = ["CLUSTERING_METHODS", "SAMPLERS", "validate_cfg"]

SAMPLERS = ("random", "pk", "cross_camera")
CLUSTERING_METHODS = ("spcl", "cap", "cluster_contrast")


def validate_cfg(cfg: Any) -> None:
    """Check the cross-key rules of ``cfg``.

    Args:
        cfg: a config of :mod:`reid.config.defaults` (merged with a YAML file and overrides).

    Raises:
        ConfigError: the first rule broken, its message naming the keys and the fix.
    """
    method = cfg.SOLVER.METHOD
    sampler = cfg.DATALOADER.SAMPLER
    if sampler not in SAMPLERS:
        raise ConfigError(f"DATALOADER.SAMPLER must be one of {', '.join(SAMPLERS)}, got "
                          f"{sampler!r}")
    from reid.data.video_sampling import TEST_SAMPLERS  # the data layer owns the names

    if cfg.INPUT.SAMPLER_TEST not in TEST_SAMPLERS:
        raise ConfigError(f"INPUT.SAMPLER_TEST must be one of {', '.join(TEST_SAMPLERS)}, "
                          f"got {cfg.INPUT.SAMPLER_TEST!r}")
    if method == "supervised":
        _check_supervised(cfg)
        return
    if method not in CLUSTERING_METHODS:
        return  # an unknown method is reported by the runner registry
    if method == "cluster_contrast":
        _check_cluster_contrast(cfg)
    if not cfg.DATASETS.TARGET:
        raise ConfigError("SpCL needs at least one DATASETS.TARGET (SOURCE may be empty for USL)")
    if method == "cap" and cfg.DATASETS.SOURCE and cfg.CAP.SPCL_WEIGHT <= 0:
        raise ConfigError("SOLVER.METHOD cap with a DATASETS.SOURCE needs CAP.SPCL_WEIGHT > 0: "
                          "the proxy losses only see target samples")
    if cfg.MEMORY.REFRESH and cfg.CLUSTER.FEATURES != "extract" and method != "cluster_contrast":
        raise ConfigError("MEMORY.REFRESH needs CLUSTER.FEATURES extract (refresh_memory needs "
                          "cluster_on='extract': the memory itself is what is clustered "
                          "otherwise)")
    if cfg.MODEL.CAMERA_BN:
        _check_camera_bn(cfg)


def _check_supervised(cfg: Any) -> None:
    if not cfg.DATASETS.SOURCE:
        raise ConfigError("supervised training needs at least one DATASETS.SOURCE")
    if cfg.MODEL.CAMERA_BN:
        raise ConfigError("MODEL.CAMERA_BN is implemented for the clustering methods (spcl, "
                          "cap); supervised training uses one BN (TEST.CAMERA_BN still works)")


def _check_camera_bn(cfg: Any) -> None:
    if not cfg.TEST.CAMERA_BN:
        raise ConfigError("MODEL.CAMERA_BN trains one BN branch per target camera, so the test "
                          "features need per-camera statistics too: set TEST.CAMERA_BN True")
    chunk, batch = cfg.DATALOADER.CAMERA_CHUNK, cfg.SOLVER.IMS_PER_BATCH
    if chunk < 2 or batch % chunk:
        raise ConfigError(f"MODEL.CAMERA_BN needs DATALOADER.CAMERA_CHUNK >= 2 dividing "
                          f"SOLVER.IMS_PER_BATCH ({batch}), got {chunk}")
    sampler = cfg.DATALOADER.SAMPLER
    if sampler != "random":
        raise ConfigError(f"DATALOADER.SAMPLER {sampler} and MODEL.CAMERA_BN both shape the "
                          "target batches (identity groups vs camera-pure chunks); choose one "
                          "(DATALOADER.SAMPLER random with MODEL.CAMERA_BN)")


def _check_cluster_contrast(cfg: Any) -> None:
    from reid.memory.cluster import UPDATE_MODES

    problems = []
    if cfg.DATASETS.SOURCE or len(cfg.DATASETS.TARGET) != 1:
        problems.append("exactly one DATASETS.TARGET and no DATASETS.SOURCE (it is unsupervised "
                        "and has one softmax over one domain's clusters; SOLVER.METHOD spcl or "
                        "cap adapt from a source)")
    if cfg.MODEL.DSBN.NUM_DOMAINS > 1 or cfg.MODEL.CAMERA_BN:
        problems.append("a single BN branch (MODEL.DSBN.NUM_DOMAINS <= 1, MODEL.CAMERA_BN False)")
    if cfg.DATALOADER.SAMPLER not in ("pk", "cross_camera"):
        problems.append("DATALOADER.SAMPLER pk or cross_camera (P clusters x K images per "
                        "batch, or the released cross-camera sampler over the clusters; "
                        "un-clustered images are not sampled)")
    if cfg.CLUSTER.FEATURES != "extract":
        problems.append("CLUSTER.FEATURES extract (it keeps no per-image memory to cluster)")
    if cfg.MEMORY.CC_UPDATE not in UPDATE_MODES:
        problems.append(f"MEMORY.CC_UPDATE in {UPDATE_MODES}, got {cfg.MEMORY.CC_UPDATE!r}")
    if problems:
        raise ConfigError("SOLVER.METHOD cluster_contrast needs " + "; ".join(problems))
