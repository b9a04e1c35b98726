"""ResNet-10/18/34/50/101 and IBN-a ResNet-50/101 trunks built from torchvision's definitions.

The trunk keeps torchvision's module names (``conv1``, ``bn1``, ``layer1`` ... ``layer4``) and
drops ``avgpool``/``fc``, so a torchvision ResNet state dict loads with only ``fc.*`` unexpected.
ResNet-10 (one basic block per stage, as in He et al., CVPR 2016, Table 1 with [1, 1, 1, 1]) and
its half-width variant have no ImageNet weights here; they are the CPU trunks of the tiny
end-to-end tests, the synthetic demos and their learning tests.
ResNet-50/101 are torchvision's "v1.5" (stride on the 3x3 convolution of a bottleneck).
"""
from __future__ import annotations

from collections.abc import Callable
from functools import partial

import torch
import torchvision
from torch import Tensor, nn

from reid.models.backbones.registry import BACKBONE_REGISTRY


class IBN(nn.Module):
    """Instance-Batch Normalisation of IBN-Net-a (Pan et al., ECCV 2018).

    The first ``round(C * ratio)`` channels go through ``InstanceNorm2d`` (affine), the others
    through ``BatchNorm2d``. Submodule names ``IN``/``BN`` follow the authors' code so their
    ImageNet checkpoints load.

    Args:
        planes: number of channels ``C``.
        ratio: fraction of channels normalised by instance normalisation.
    """

    def __init__(self, planes: int, ratio: float = 0.5) -> None:
        super().__init__()
        self.half = int(planes * ratio)
        if not 0 < self.half < planes:
            raise ValueError(f"IBN ratio {ratio} leaves no IN or no BN channel out of {planes}")
        self.IN = nn.InstanceNorm2d(self.half, affine=True)
        self.BN = nn.BatchNorm2d(planes - self.half)

    def forward(self, x: Tensor) -> Tensor:
        """``(B, C, H, W) -> (B, C, H, W)``."""
        first, second = torch.split(x, [self.half, x.shape[1] - self.half], dim=1)
        return torch.cat([self.IN(first.contiguous()), self.BN(second.contiguous())], dim=1)


class ResNetBackbone(nn.Module):
    """A torchvision ResNet without its head: ``(B, 3, H, W) -> (B, C, H/s, W/s)``.

    ``s`` is 32, or 16 with ``last_stride=1``; ``C`` (``out_channels``) is 512 for ResNet-18/34
    and 2048 for ResNet-50/101.

    Args:
        net: a torchvision ``ResNet`` (its ``avgpool`` and ``fc`` are dropped).
        last_stride: stride of ``layer4`` (1 or 2).
    """

    def __init__(self, net: torchvision.models.ResNet, last_stride: int = 1) -> None:
        super().__init__()
        if last_stride not in (1, 2):
            raise ValueError(f"last_stride must be 1 or 2, got {last_stride}")
        self.conv1, self.bn1, self.relu, self.maxpool = net.conv1, net.bn1, net.relu, net.maxpool
        self.layer1, self.layer2, self.layer3, self.layer4 = (
            net.layer1, net.layer2, net.layer3, net.layer4
        )
        block = self.layer4[0]
        strided = block.conv2 if hasattr(block, "conv3") else block.conv1
        strided.stride = (last_stride, last_stride)
        if block.downsample is not None:
            block.downsample[0].stride = (last_stride, last_stride)
        last = self.layer4[-1]
        self.out_channels = (last.conv3 if hasattr(last, "conv3") else last.conv2).out_channels

    def forward(self, x: Tensor) -> Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))


def _resnet(factory: Callable[..., torchvision.models.ResNet], last_stride: int,
            ibn: bool = False) -> ResNetBackbone:
    net = factory(weights=None)
    if ibn:
        for layer in (net.layer1, net.layer2, net.layer3):
            for block in layer:
                block.bn1 = IBN(block.bn1.num_features)
    return ResNetBackbone(net, last_stride=last_stride)


def _basic_resnet(layers: list[int], width: int, weights: None = None) -> torchvision.models.ResNet:
    """A torchvision ``ResNet`` of basic blocks with ``layers`` blocks per stage and stage widths
    ``width x (1, 2, 4, 8)`` (torchvision: 64), initialised as torchvision initialises it
    (Kaiming-normal convolutions, BN weight 1 and bias 0). Width 64 is torchvision's network
    as constructed; other widths rebuild the stem and stages with torchvision's ``_make_layer``.
    ``weights`` is the torchvision factories' argument (none exist for these depths)."""
    del weights
    net = torchvision.models.ResNet(torchvision.models.resnet.BasicBlock, layers)
    if width == 64:
        return net
    net.inplanes = width
    net.conv1 = nn.Conv2d(3, width, kernel_size=7, stride=2, padding=3, bias=False)
    net.bn1 = nn.BatchNorm2d(width)
    for stage, blocks in enumerate(layers):
        setattr(net, f"layer{stage + 1}", net._make_layer(
            torchvision.models.resnet.BasicBlock, width * 2 ** stage, blocks,
            stride=1 if stage == 0 else 2))
    for m in net.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.constant_(m.weight, 1)
            nn.init.constant_(m.bias, 0)
    return net


@BACKBONE_REGISTRY.register()
def resnet10(last_stride: int = 1) -> ResNetBackbone:
    """ResNet-10 trunk (512 channels): ResNet-18 with one basic block per stage instead of two,
    about 2.6x cheaper per training step at 64x32 on a CPU."""
    return _resnet(partial(_basic_resnet, [1, 1, 1, 1], 64), last_stride)


@BACKBONE_REGISTRY.register()
def resnet10_half(last_stride: int = 1) -> ResNetBackbone:
    """ResNet-10 at half width (stages of 32, 64, 128 and 256 channels; 256 out): about 3.3x
    cheaper per training step than ResNet-10 at 64x32 on a CPU, where the 512-channel 3x3
    convolutions of ResNet-10's last stage take about 40% of a step."""
    return _resnet(partial(_basic_resnet, [1, 1, 1, 1], 32), last_stride)


@BACKBONE_REGISTRY.register()
def resnet18(last_stride: int = 1) -> ResNetBackbone:
    """ResNet-18 trunk (512 channels)."""
    return _resnet(torchvision.models.resnet18, last_stride)


@BACKBONE_REGISTRY.register()
def resnet34(last_stride: int = 1) -> ResNetBackbone:
    """ResNet-34 trunk (512 channels)."""
    return _resnet(torchvision.models.resnet34, last_stride)


@BACKBONE_REGISTRY.register()
def resnet50(last_stride: int = 1) -> ResNetBackbone:
    """ResNet-50 trunk (2048 channels)."""
    return _resnet(torchvision.models.resnet50, last_stride)


@BACKBONE_REGISTRY.register()
def resnet101(last_stride: int = 1) -> ResNetBackbone:
    """ResNet-101 trunk (2048 channels)."""
    return _resnet(torchvision.models.resnet101, last_stride)


@BACKBONE_REGISTRY.register()
def resnet50_ibn_a(last_stride: int = 1) -> ResNetBackbone:
    """IBN-a ResNet-50 trunk: ``bn1`` of every bottleneck in layer1-3 is an :class:`IBN`."""
    return _resnet(torchvision.models.resnet50, last_stride, ibn=True)


@BACKBONE_REGISTRY.register()
def resnet101_ibn_a(last_stride: int = 1) -> ResNetBackbone:
    """IBN-a ResNet-101 trunk: ``bn1`` of every bottleneck in layer1-3 is an :class:`IBN`."""
    return _resnet(torchvision.models.resnet101, last_stride, ibn=True)
