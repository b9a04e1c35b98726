"""Registry of video backbones and the builders of full video re-ID encoders.

Names (``VIDEO_BACKBONE_REGISTRY.names()``):

* ``video_resnet2d_avg`` / ``video_resnet2d_attn``: an image trunk per frame (default ResNet-50,
  ``trunk_name=`` any ``reid.models.backbones`` name) + temporal average / attention pooling
  (``_tiny``: ResNet-18); ``i3d_resnet50`` (``i3d_resnet18``);
* ``timesformer``, ``vivit_m1``, ``vivit_m2``, ``vivit_m3``, ``vivit_m4``, ``videomae_vit``:
  ViT-S-like transformers (embed 384, depth 12, 6 heads, patch 16; ViViT/VideoMAE tubelet 2,
  TimeSformer tubelet 1; ViViT 2 adds a 4-block temporal encoder), each with a ``_tiny``
  variant (embed 64, depth 2, 4 heads) for CPU runs. Size keywords override the defaults.

Every factory has the signature ``factory(num_frames, img_size, **kwargs) -> backbone`` where the
backbone maps ``(B, C, T, H, W)`` to ``(B, out_dim)``.
"""
from __future__ import annotations

import functools
import logging

from torch import nn

from reid.models.video.checkpoint import (
    load_state_dict_report,
    load_video_checkpoint,
    read_state_dict,
)
from reid.models.video.cnn import FramePoolingCNN, InflatedResNet, build_resnet2d
from reid.models.video.cnn import resnet_trunk_forward as _resnet_forward
from reid.models.video.model import VideoReIDModel
from reid.models.video.transformer import FactorisedEncoderViViT, VideoTransformer
from reid.utils.registry import Registry

logger = logging.getLogger(__name__)

VIDEO_BACKBONE_REGISTRY = Registry("video backbone")

SMALL = {"embed_dim": 384, "depth": 12, "num_heads": 6}
TINY = {"embed_dim": 64, "depth": 2, "num_heads": 4}
CNN_ARCHS = {"video_resnet2d_avg", "video_resnet2d_attn", "video_resnet2d_avg_tiny",
             "video_resnet2d_attn_tiny", "i3d_resnet50", "i3d_resnet18"}


def _image_trunk(trunk_name: str, last_stride: int, pretrained_path: str
                 ) -> tuple[nn.Module, int, object]:
    """Per-frame trunk ``(N, 3, H, W) -> (N, c, h, w)``, its width c and its forward function.

    Uses ``reid.models.backbones.BACKBONE_REGISTRY`` (ResNets, IBN-a, MobileNetV2, ...) when
    that package is importable and knows ``trunk_name``, else a torchvision ResNet.
    """
    try:
        from reid.models.backbones import BACKBONE_REGISTRY
    except ImportError:
        BACKBONE_REGISTRY = None
    if BACKBONE_REGISTRY is not None and trunk_name in BACKBONE_REGISTRY:
        trunk = BACKBONE_REGISTRY.get(trunk_name)(last_stride=last_stride)
        if pretrained_path:
            load_state_dict_report(trunk, read_state_dict(pretrained_path),
                                   source=pretrained_path)
        return trunk, int(trunk.out_channels), None
    net = build_resnet2d(trunk_name, last_stride, pretrained_path)
    return net, net.out_dim, _resnet_forward


def _frame_pooling(num_frames: int, img_size: tuple[int, int], temporal_pool: str = "avg",
                   trunk_name: str = "resnet50", last_stride: int = 1,
                   pretrained_path: str = "") -> FramePoolingCNN:
    del num_frames, img_size  # any clip length and size
    trunk, dim, forward = _image_trunk(trunk_name, last_stride, pretrained_path)
    return FramePoolingCNN(trunk, dim, temporal_pool, trunk_forward=forward)


def _i3d(num_frames: int, img_size: tuple[int, int], depth_name: str = "resnet50",
         inflate_init: str = "mean", last_stride: int = 1, pretrained_path: str = "",
         stem_time_kernel: int = 5) -> InflatedResNet:
    del num_frames, img_size
    return InflatedResNet(depth_name, inflate_init, last_stride, pretrained_path,
                          stem_time_kernel)


for _name, _kw in (("video_resnet2d_avg", {"temporal_pool": "avg"}),
                   ("video_resnet2d_attn", {"temporal_pool": "attention"})):
    VIDEO_BACKBONE_REGISTRY.register(_name)(functools.partial(_frame_pooling, **_kw))
    VIDEO_BACKBONE_REGISTRY.register(_name + "_tiny")(
        functools.partial(_frame_pooling, trunk_name="resnet18", **_kw))
VIDEO_BACKBONE_REGISTRY.register("i3d_resnet50")(functools.partial(_i3d, depth_name="resnet50"))
VIDEO_BACKBONE_REGISTRY.register("i3d_resnet18")(functools.partial(_i3d, depth_name="resnet18"))

_TRANSFORMERS = {
    "timesformer": {"attn_mode": "divided", "divided_order": ("temporal", "spatial"),
                    "class_token": True, "pos_type": "separate", "global_pool": "token",
                    "tubelet": 1},
    "vivit_m1": {"attn_mode": "joint", "class_token": True, "pos_type": "joint",
                 "global_pool": "token", "tubelet": 2},
    "vivit_m3": {"attn_mode": "divided", "divided_order": ("spatial", "temporal"),
                 "class_token": False, "pos_type": "joint", "global_pool": "avg", "tubelet": 2},
    "vivit_m4": {"attn_mode": "factorised_dot", "class_token": False, "pos_type": "joint",
                 "global_pool": "avg", "tubelet": 2},
    "videomae_vit": {"attn_mode": "joint", "class_token": False, "pos_type": "sincos",
                     "global_pool": "avg", "tubelet": 2},
}


def _video_transformer(num_frames: int, img_size: tuple[int, int], _preset: dict,
                       _size: dict, **kwargs) -> VideoTransformer:
    args = {**_preset, **_size, **kwargs}
    return VideoTransformer(num_frames=num_frames, img_size=tuple(img_size), **args)


def _vivit_m2(num_frames: int, img_size: tuple[int, int], _size: dict,
              **kwargs) -> FactorisedEncoderViViT:
    args = {"tubelet": 2, "temporal_depth": max(1, _size["depth"] // 3), **_size, **kwargs}
    return FactorisedEncoderViViT(num_frames=num_frames, img_size=tuple(img_size), **args)


for _name, _preset in _TRANSFORMERS.items():
    for _suffix, _size in (("", SMALL), ("_tiny", TINY)):
        VIDEO_BACKBONE_REGISTRY.register(_name + _suffix)(
            functools.partial(_video_transformer, _preset=_preset, _size=_size))
for _suffix, _size in (("", SMALL), ("_tiny", TINY)):
    VIDEO_BACKBONE_REGISTRY.register("vivit_m2" + _suffix)(
        functools.partial(_vivit_m2, _size=_size))


def build_video_backbone(arch: str, num_frames: int = 8, img_size: tuple[int, int] = (256, 128),
                         pretrained_path: str = "", pretrained_format: str = "auto",
                         inflate_init: str = "mean", **kwargs) -> nn.Module:
    """Backbone ``arch`` mapping ``(B, C, num_frames, H, W)`` to ``(B, out_dim)``.

    ``pretrained_path``: local checkpoint. CNN backbones take a torchvision 2-D ResNet state
    dict (inflated for I3D); transformers take a 2-D ViT, a VideoMAE-format or a native video
    checkpoint (``pretrained_format`` "auto" detects which). Unmatched keys are logged.
    """
    factory = VIDEO_BACKBONE_REGISTRY.get(arch)
    if arch.lower() in CNN_ARCHS:
        if arch.lower().startswith("i3d"):
            kwargs["inflate_init"] = inflate_init
        return factory(num_frames, tuple(img_size), pretrained_path=pretrained_path, **kwargs)
    backbone = factory(num_frames, tuple(img_size), **kwargs)
    if pretrained_path:
        load_video_checkpoint(backbone, pretrained_path, pretrained_format, inflate_init)
    return backbone


def build_video_encoder(arch: str, num_classes: int = 0, num_frames: int = 8,
                        img_size: tuple[int, int] = (256, 128), num_domains: int = 1,
                        test_domain: int = -1, **kwargs) -> VideoReIDModel:
    """Video re-ID encoder: backbone ``arch`` + BN neck(s) + optional classifier.

    Args:
        arch: a ``VIDEO_BACKBONE_REGISTRY`` name.
        num_classes: classifier outputs (0: none).
        num_frames: clip length T the model is built for (transformers need exactly T frames).
        img_size: (height, width) of the frames, pixels.
        num_domains, test_domain: domain-specific BN necks (see ``VideoReIDModel``).
        **kwargs: backbone keywords (sizes, ``pretrained_path``, ``inflate_init``, ...).

    Returns:
        ``VideoReIDModel`` following the image encoder contract (module docstring of
        ``reid.models.video.model``).
    """
    backbone = build_video_backbone(arch, num_frames, img_size, **kwargs)
    return VideoReIDModel(backbone, num_classes, num_domains, test_domain)


def video_backbone_kwargs(cfg) -> dict:
    """Keyword arguments of :func:`build_video_backbone` for ``cfg.MODEL.ARCH`` (besides
    ``arch``, ``num_frames`` and ``img_size``): the cfg -> kwargs adapter shared by the re-ID
    model and ``tools/pretrain_videomae.py``, so a pretrained encoder fits the model.

    Uses ``MODEL.LAST_STRIDE``, ``MODEL.PRETRAINED_PATH`` and ``MODEL.VIDEO.{PATCH_SIZE,
    TUBELET, EMBED_DIM, DEPTH, NUM_HEADS, MLP_RATIO, DROP_PATH, FRAME_TRUNK, INFLATE_INIT,
    CHECKPOINT_2D}``. ``_tiny`` archs keep their fixed size (EMBED_DIM / DEPTH / NUM_HEADS are
    not applied). ``MODEL.VIDEO.CHECKPOINT_2D`` (or else ``MODEL.PRETRAINED_PATH``) is the local
    checkpoint.
    """
    arch = cfg.MODEL.ARCH.lower()
    v = cfg.MODEL.VIDEO
    kwargs: dict = {"pretrained_path": v.CHECKPOINT_2D or cfg.MODEL.PRETRAINED_PATH,
                    "inflate_init": v.INFLATE_INIT}
    if arch in CNN_ARCHS:
        kwargs["last_stride"] = cfg.MODEL.LAST_STRIDE
        if arch in ("video_resnet2d_avg", "video_resnet2d_attn"):
            kwargs["trunk_name"] = v.FRAME_TRUNK
    else:
        kwargs.update(patch_size=v.PATCH_SIZE, mlp_ratio=v.MLP_RATIO, drop_path=v.DROP_PATH)
        if arch != "timesformer" and not arch.startswith("timesformer_"):
            kwargs["tubelet"] = v.TUBELET
        if not arch.endswith("_tiny"):
            kwargs.update(embed_dim=v.EMBED_DIM, depth=v.DEPTH, num_heads=v.NUM_HEADS)
    return kwargs


def build_video_model(cfg, num_classes: int = 0, num_domains: int = 1) -> VideoReIDModel:
    """Build the video encoder of ``cfg.MODEL.ARCH`` from config keys.

    Uses ``INPUT.SEQ_LEN``, ``INPUT.SIZE_TRAIN``, the keys of :func:`video_backbone_kwargs`,
    ``MODEL.VIDEO.TEMPORAL_POOL`` and ``MODEL.DSBN.TEST_DOMAIN``.
    """
    arch = cfg.MODEL.ARCH.lower()
    if arch.startswith("video_resnet2d"):
        pool = "attention" if arch.startswith("video_resnet2d_attn") else "avg"
        if cfg.MODEL.VIDEO.TEMPORAL_POOL != pool:
            logger.info("MODEL.ARCH %s fixes the temporal pooling to %s", arch, pool)
    return build_video_encoder(arch, num_classes=num_classes, num_frames=cfg.INPUT.SEQ_LEN,
                               img_size=tuple(cfg.INPUT.SIZE_TRAIN), num_domains=num_domains,
                               test_domain=cfg.MODEL.DSBN.TEST_DOMAIN,
                               **video_backbone_kwargs(cfg))
