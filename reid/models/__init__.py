"""Models: image backbones, the re-ID encoder, domain-specific BN, weights and feature extraction.

Video architectures live in :mod:`reid.models.video` (imported on demand by
:func:`build_model`).
"""
from reid.models.backbones import BACKBONE_REGISTRY
from reid.models.build import build_encoder, build_model, configure_bn
from reid.models.camera_bn import estimate_bn_statistics, fit_camera_bn
from reid.models.ema import ModelEMA
from reid.models.encoder import ReIDEncoder
from reid.models.extractor import FeatureExtractor, extract_features
from reid.models.norm import (
    DomainRouting,
    DomainSpecificBatchNorm,
    GroupedBatchNorm1d,
    GroupedBatchNorm2d,
    convert_dsbn,
    convert_dsbn_to_bn,
    convert_grouped_bn,
    convert_sync_bn,
    num_bn_domains,
    set_test_domain,
    use_domains,
)
from reid.models.pooling import GeMPool, build_pooling, gem
from reid.models.pretrained import LoadReport, load_pretrained, read_state_dict

__all__ = [
    "ModelEMA",
    "BACKBONE_REGISTRY",
    "DomainRouting",
    "DomainSpecificBatchNorm",
    "FeatureExtractor",
    "GeMPool",
    "GroupedBatchNorm1d",
    "GroupedBatchNorm2d",
    "LoadReport",
    "ReIDEncoder",
    "build_encoder",
    "build_model",
    "build_pooling",
    "configure_bn",
    "convert_dsbn",
    "convert_dsbn_to_bn",
    "convert_grouped_bn",
    "convert_sync_bn",
    "extract_features",
    "estimate_bn_statistics",
    "fit_camera_bn",
    "gem",
    "load_pretrained",
    "num_bn_domains",
    "read_state_dict",
    "set_test_domain",
    "use_domains",
]
