"""Config -> model. Image architectures come from ``BACKBONE_REGISTRY``, video ones from
``reid.models.video.VIDEO_BACKBONE_REGISTRY`` (imported only when needed)."""
from __future__ import annotations

import logging
import os

import torch
from torch import nn

from reid.models.backbones import BACKBONE_REGISTRY
from reid.models.encoder import ReIDEncoder
from reid.models.norm import convert_dsbn, convert_grouped_bn, convert_sync_bn, set_test_domain
from reid.models.pretrained import load_pretrained
from reid.utils.errors import ConfigKeyError

logger = logging.getLogger(__name__)


def configure_bn(
    model: nn.Module,
    *,
    num_domains: int = 1,
    test_domain: int = -1,
    samples_per_bn: int = 0,
    sync_bn: bool = False,
    share_affine: bool = False,
) -> nn.Module:
    """Apply the BatchNorm options to ``model`` (in place; returns it).

    Args:
        num_domains: > 1 converts every BatchNorm1d/2d to domain-specific BN
            (:func:`reid.models.convert_dsbn`).
        test_domain: DSBN branch used in eval mode (-1 = the last domain, the target).
        share_affine: the DSBN branches share their affine parameters (camera-based BN).
        samples_per_bn: > 0 computes BN training statistics over groups of this many samples
            (inside each domain's chunk with DSBN); see :mod:`reid.models.norm`.
        sync_bn: convert plain BNs to ``SyncBatchNorm`` when ``torch.distributed`` runs with
            several processes. DSBN branches are not synchronised (per-rank statistics).

    Raises:
        ValueError: ``sync_bn`` together with ``samples_per_bn > 0`` (contradictory).
    """
    if num_domains > 1:
        convert_dsbn(model, num_domains, test_domain, share_affine=share_affine)
    set_test_domain(model, test_domain)
    if samples_per_bn > 0 and sync_bn:
        raise ValueError("MODEL.BN.SYNC and MODEL.BN.SAMPLES_PER_BN > 0 contradict each other: "
                         "SyncBN enlarges the statistics batch, SAMPLES_PER_BN shrinks it")
    if samples_per_bn > 0:
        convert_grouped_bn(model, samples_per_bn)
    if sync_bn:
        distributed = torch.distributed.is_available() and torch.distributed.is_initialized()
        if distributed and torch.distributed.get_world_size() > 1:
            if num_domains > 1:
                logger.warning("MODEL.BN.SYNC with domain-specific BN: DSBN branches keep "
                               "per-rank statistics; only plain BNs are synchronised")
            convert_sync_bn(model)
        else:
            logger.info("MODEL.BN.SYNC ignored: not running distributed with several processes")
    return model


def build_encoder(
    arch: str,
    pretrained_path: str | os.PathLike | None = None,
    last_stride: int = 1,
    pooling: str = "avg",
    gem_p: float = 3.0,
    embed_dim: int = 0,
    neck: bool = True,
    dropout: float = 0.0,
    num_classes: int = 0,
    num_domains: int = 1,
    test_domain: int = -1,
    samples_per_bn: int = 0,
    sync_bn: bool = False,
    channels_last: bool = False,
    share_affine: bool = False,
    pretrained_partial: bool = False,
) -> ReIDEncoder:
    """An image re-ID encoder (:class:`reid.models.ReIDEncoder`) from plain arguments.

    Args:
        arch: backbone name in ``BACKBONE_REGISTRY`` (resnet18/34/50/101, resnet50_ibn_a,
            resnet101_ibn_a, mobilenet_v2).
        pretrained_path: local torchvision-format (or unreid) checkpoint for the backbone;
            None or "" = random initialisation (logged at debug level: a later
            ``MODEL.WEIGHTS`` or resume may replace it). Nothing is downloaded.
        last_stride: 1 (re-ID default, doubles the final map) or 2.
        pooling, gem_p, embed_dim, neck, dropout, num_classes, channels_last: see
            :class:`reid.models.ReIDEncoder`.
        num_domains, test_domain, samples_per_bn, sync_bn, share_affine: see
            :func:`configure_bn`.
        pretrained_partial: load a ``pretrained_path`` that does not fit the backbone anyway
            (see :func:`reid.models.load_pretrained`, ``partial``).

    Example:
        >>> model = build_encoder("resnet50", "weights/resnet50.pth", num_domains=2)
    """
    backbone = BACKBONE_REGISTRY.get(arch)(last_stride=last_stride)
    if pretrained_path:
        load_pretrained(backbone, pretrained_path, partial=pretrained_partial)
    else:
        logger.debug("no pretrained weights for %s: random initialisation", arch)
    model = ReIDEncoder(backbone, pooling=pooling, gem_p=gem_p, embed_dim=embed_dim, neck=neck,
                        dropout=dropout, num_classes=num_classes, channels_last=channels_last)
    configure_bn(model, num_domains=num_domains, test_domain=test_domain,
                 samples_per_bn=samples_per_bn, sync_bn=sync_bn, share_affine=share_affine)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    return model


def _video_registry():
    """``(VIDEO_BACKBONE_REGISTRY, build_video_model)``, or None when video models are absent."""
    try:
        from reid.models.video import VIDEO_BACKBONE_REGISTRY, build_video_model
    except ImportError as err:
        logger.debug("video models unavailable: %s", err)
        return None
    return VIDEO_BACKBONE_REGISTRY, build_video_model


def build_model(cfg, num_classes: int = 0, num_domains: int = 1) -> nn.Module:
    """The encoder of ``cfg.MODEL`` (image or video architecture).

    Reads ``MODEL.{ARCH, PRETRAINED_PATH, LAST_STRIDE, POOLING, GEM_P, NECK, EMBED_DIM, DROPOUT,
    CHANNELS_LAST, CAMERA_BN}``, ``MODEL.DSBN.{ENABLED, TEST_DOMAIN}`` and
    ``MODEL.BN.{SAMPLES_PER_BN, SYNC}``. Domain-specific BN is used when ``num_domains > 1`` and
    ``MODEL.DSBN.ENABLED``, or always with ``MODEL.CAMERA_BN`` (branches per camera, affine
    parameters shared; the caller counts the branches).
    Video architectures are built by ``reid.models.video.build_video_model``.

    Args:
        cfg: the config node.
        num_classes: classifier outputs (0: no classifier, e.g. SpCL).
        num_domains: number of domains trained together (BN branches with DSBN).
    """
    m = cfg.MODEL
    if num_domains > 1 and not m.DSBN.ENABLED and not m.CAMERA_BN:
        logger.info("MODEL.DSBN.ENABLED is off: %d domains share one BN", num_domains)
        num_domains = 1
    bn_kwargs = dict(test_domain=m.DSBN.TEST_DOMAIN, samples_per_bn=m.BN.SAMPLES_PER_BN,
                     sync_bn=m.BN.SYNC)
    if m.ARCH in BACKBONE_REGISTRY:
        return build_encoder(
            m.ARCH, pretrained_path=m.PRETRAINED_PATH or None, last_stride=m.LAST_STRIDE,
            pooling=m.POOLING, gem_p=m.GEM_P, embed_dim=m.EMBED_DIM, neck=m.NECK,
            dropout=m.DROPOUT, num_classes=num_classes, num_domains=num_domains,
            channels_last=m.CHANNELS_LAST, share_affine=bool(m.CAMERA_BN),
            pretrained_partial=m.WEIGHTS_PARTIAL, **bn_kwargs,
        )
    video = _video_registry()
    if video is None or m.ARCH not in video[0]:
        names = ", ".join(video[0].names()) if video is not None else "(not installed)"
        raise ConfigKeyError(f"unknown MODEL.ARCH '{m.ARCH}'; image architectures: "
                       f"{', '.join(BACKBONE_REGISTRY.names())}; video architectures: {names}")
    model = video[1](cfg, num_classes=num_classes, num_domains=num_domains)
    return configure_bn(model, num_domains=1, **bn_kwargs)
