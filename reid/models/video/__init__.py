"""Video re-ID backbones: 2-D CNN + temporal pooling, I3D, TimeSformer, ViViT 1-4, VideoMAE.

``build_video_encoder(arch, num_classes, num_frames, img_size, **kwargs)`` returns a model that
maps a clip batch ``(B, C, T, H, W)`` to one embedding per clip with the image encoder contract
(see :mod:`reid.models.video.model`); ``build_video_model(cfg, num_classes, num_domains)`` reads
the config.
"""
from reid.models.video.build import (
    VIDEO_BACKBONE_REGISTRY,
    build_video_backbone,
    build_video_encoder,
    build_video_model,
    video_backbone_kwargs,
)
from reid.models.video.checkpoint import (
    LoadReport,
    load_2d_vit,
    load_video_checkpoint,
    load_videomae,
    read_state_dict,
)
from reid.models.video.model import VideoReIDModel
from reid.models.video.transformer import FactorisedEncoderViViT, VideoTransformer
from reid.models.video.videomae import VideoMAEPretrainer, cube_targets, tube_mask
from reid.models.video.vit2d import VisionTransformer2D

__all__ = [
    "VIDEO_BACKBONE_REGISTRY",
    "FactorisedEncoderViViT",
    "LoadReport",
    "VideoMAEPretrainer",
    "VideoReIDModel",
    "VideoTransformer",
    "VisionTransformer2D",
    "build_video_backbone",
    "build_video_encoder",
    "build_video_model",
    "cube_targets",
    "load_2d_vit",
    "load_video_checkpoint",
    "load_videomae",
    "read_state_dict",
    "tube_mask",
    "video_backbone_kwargs",
]
