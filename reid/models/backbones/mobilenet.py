"""MobileNetV2 (width 1.0) trunk from torchvision's definition: ``features`` only, 1280 channels."""
from __future__ import annotations

import torchvision
from torch import Tensor, nn

from reid.models.backbones.registry import BACKBONE_REGISTRY

# features[14] is the first block of the 160-channel stage, the last stride-2 block.
_LAST_STRIDED_BLOCK = 14


class MobileNetV2Backbone(nn.Module):
    """``torchvision.models.mobilenet_v2().features``: ``(B, 3, H, W) -> (B, 1280, H/s, W/s)``.

    ``s`` is 32, or 16 with ``last_stride=1`` (the depthwise 3x3 convolution of ``features[14]``
    gets stride 1). Keys are ``features.*`` exactly as in torchvision.

    Args:
        last_stride: stride of the depthwise convolution of ``features[14]`` (1 or 2).
    """

    def __init__(self, last_stride: int = 1) -> None:
        super().__init__()
        if last_stride not in (1, 2):
            raise ValueError(f"last_stride must be 1 or 2, got {last_stride}")
        self.features = torchvision.models.mobilenet_v2(weights=None).features
        block = self.features[_LAST_STRIDED_BLOCK]
        depthwise = block.conv[1][0]
        if depthwise.stride != (2, 2) or depthwise.groups != depthwise.in_channels:
            raise RuntimeError("unexpected torchvision MobileNetV2 layout at features[14]")
        depthwise.stride = (last_stride, last_stride)
        block.stride = last_stride
        self.out_channels = self.features[-1][0].out_channels

    def forward(self, x: Tensor) -> Tensor:
        return self.features(x)


@BACKBONE_REGISTRY.register()
def mobilenet_v2(last_stride: int = 1) -> MobileNetV2Backbone:
    """MobileNetV2 trunk (width 1.0, 1280 channels)."""
    return MobileNetV2Backbone(last_stride=last_stride)
