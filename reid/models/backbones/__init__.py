"""Image backbones: ``(B, 3, H, W)`` images to ``(B, out_channels, h, w)`` feature maps.

Every entry of :data:`BACKBONE_REGISTRY` is a function ``(last_stride: int = 1) -> nn.Module``
returning a randomly initialised trunk (nothing is downloaded; weights come from
:func:`reid.models.load_pretrained`) with an ``out_channels`` attribute. State-dict keys follow
torchvision's models, so torchvision-format checkpoints load directly.
"""
from reid.models.backbones.mobilenet import MobileNetV2Backbone, mobilenet_v2
from reid.models.backbones.registry import BACKBONE_REGISTRY
from reid.models.backbones.resnet import (
    IBN,
    ResNetBackbone,
    resnet10,
    resnet10_half,
    resnet18,
    resnet34,
    resnet50,
    resnet50_ibn_a,
    resnet101,
    resnet101_ibn_a,
)

__all__ = [
    "BACKBONE_REGISTRY",
    "IBN",
    "MobileNetV2Backbone",
    "ResNetBackbone",
    "mobilenet_v2",
    "resnet10",
    "resnet10_half",
    "resnet18",
    "resnet34",
    "resnet50",
    "resnet50_ibn_a",
    "resnet101",
    "resnet101_ibn_a",
]
