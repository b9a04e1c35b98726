"""Convolutional video backbones: per-frame 2-D CNN + temporal pooling, and inflated 3-D ResNet.

* :class:`FramePoolingCNN` - the common re-ID video baseline: a 2-D trunk on every frame, global
  average pooling per frame, then temporal average or temporal attention pooling
  (Gao & Nevatia, "Revisiting Temporal Modeling for Video-based Person ReID", 2018).
* :class:`InflatedResNet` - I3D (Carreira & Zisserman, CVPR 2017): the 2-D ResNet with every
  convolution inflated to 3-D; the first convolution of every other residual block (and the
  stem) gets a temporal extent (3, resp. 5), all other kernels are ``1 x k x k``; temporal stride
  is 1 everywhere, so the clip length is kept until the final global pooling.
"""
from __future__ import annotations

import logging

import torch
import torchvision
from torch import Tensor, nn

from reid.models.video.vit_blocks import inflate_conv_weight

logger = logging.getLogger(__name__)

_RESNETS = {"resnet18": torchvision.models.resnet18, "resnet34": torchvision.models.resnet34,
            "resnet50": torchvision.models.resnet50, "resnet101": torchvision.models.resnet101}


def build_resnet2d(depth_name: str = "resnet50", last_stride: int = 1,
                   pretrained_path: str = "") -> nn.Module:
    """A torchvision ResNet (``weights=None``) with ``fc``/``avgpool`` removed.

    Args:
        depth_name: ``"resnet18"``, ``"resnet34"``, ``"resnet50"`` or ``"resnet101"``.
        last_stride: stride of the last stage (1 keeps a 16x8 map at 256x128 input).
        pretrained_path: local torchvision-format ResNet state dict; ``""`` = random init.
            Unmatched keys are logged (:func:`reid.models.video.checkpoint.load_state_dict_report`).
    """
    if depth_name not in _RESNETS:
        raise ValueError(f"unknown ResNet {depth_name!r}; expected one of {sorted(_RESNETS)}")
    net = _RESNETS[depth_name](weights=None)
    if pretrained_path:
        from reid.models.video.checkpoint import load_state_dict_report, read_state_dict

        load_state_dict_report(net, read_state_dict(pretrained_path), source=pretrained_path)
    block = net.layer4[0]
    strided = block.conv2 if hasattr(block, "conv3") else block.conv1
    strided.stride = (last_stride, last_stride)
    if block.downsample is not None:
        block.downsample[0].stride = (last_stride, last_stride)
    net.fc = nn.Identity()
    net.avgpool = nn.Identity()
    last = net.layer4[-1]
    net.out_dim = (last.conv3 if hasattr(last, "conv3") else last.conv2).out_channels
    return net


def resnet_trunk_forward(net: nn.Module, x: Tensor) -> Tensor:
    """Feature map of a ResNet without its head: ``(N, C, [T,] H, W) -> (N, c, [T,] h, w)``."""
    x = net.maxpool(net.relu(net.bn1(net.conv1(x))))
    return net.layer4(net.layer3(net.layer2(net.layer1(x))))


class TemporalAttentionPool(nn.Module):
    """Softmax-weighted average of frame features ``(B, T, C) -> (B, C)``.

    Scores ``s_t = w2^T relu(W1 f_t)``; ``w2`` starts at zero, so a fresh module is exactly the
    temporal average and learns to re-weight frames (e.g. occluded ones) from there.
    """

    def __init__(self, dim: int, hidden: int = 256) -> None:
        super().__init__()
        self.score = nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(inplace=True),
                                   nn.Linear(hidden, 1))
        nn.init.zeros_(self.score[2].weight)
        nn.init.zeros_(self.score[2].bias)

    def forward(self, feats: Tensor) -> Tensor:
        weights = self.score(feats).softmax(dim=1)
        return (weights * feats).sum(dim=1)


class FramePoolingCNN(nn.Module):
    """2-D CNN per frame + temporal pooling: ``(B, C, T, H, W) -> (B, c)``.

    Args:
        trunk: image trunk mapping ``(N, 3, H, W)`` to a feature map ``(N, c, h, w)`` (called
            through ``trunk_forward``); ``out_dim`` = c.
        out_dim: channel count c of the trunk output.
        temporal_pool: ``"avg"`` or ``"attention"`` (:class:`TemporalAttentionPool`).
        trunk_forward: function ``(trunk, images) -> feature map``; default ``trunk(images)``.
    """

    def __init__(self, trunk: nn.Module, out_dim: int, temporal_pool: str = "avg",
                 trunk_forward=None) -> None:
        super().__init__()
        if temporal_pool not in ("avg", "attention"):
            raise ValueError(f"temporal_pool must be 'avg' or 'attention', got {temporal_pool!r}")
        self.trunk = trunk
        self.out_dim = out_dim
        self._trunk_forward = trunk_forward
        self.temporal_pool = temporal_pool
        self.attention = TemporalAttentionPool(out_dim) if temporal_pool == "attention" else None

    def frame_features(self, x: Tensor) -> Tensor:
        """Per-frame globally pooled features ``(B, T, c)``."""
        if x.ndim != 5:
            raise ValueError(f"expected a clip (B, C, T, H, W), got {tuple(x.shape)}")
        b, c, t, h, w = x.shape
        frames = x.transpose(1, 2).reshape(b * t, c, h, w)
        if self._trunk_forward is not None:
            fmap = self._trunk_forward(self.trunk, frames)
        else:
            fmap = self.trunk(frames)
        if fmap.ndim == 4:
            fmap = fmap.mean(dim=(2, 3))
        return fmap.reshape(b, t, -1)

    def forward(self, x: Tensor) -> Tensor:
        feats = self.frame_features(x)
        return feats.mean(dim=1) if self.attention is None else self.attention(feats)


def _inflate_conv(conv: nn.Conv2d, time_kernel: int, mode: str) -> nn.Conv3d:
    out = nn.Conv3d(conv.in_channels, conv.out_channels, (time_kernel, *conv.kernel_size),
                    stride=(1, *conv.stride), padding=(time_kernel // 2, *conv.padding),
                    dilation=(1, *conv.dilation), groups=conv.groups, bias=conv.bias is not None)
    with torch.no_grad():
        out.weight.copy_(inflate_conv_weight(conv.weight, time_kernel, mode))
        if conv.bias is not None:
            out.bias.copy_(conv.bias)
    return out


def inflate_conv2d(conv: nn.Conv2d, time_kernel: int = 3, mode: str = "mean") -> nn.Conv3d:
    """``Conv2d`` -> ``Conv3d`` with kernel ``(time_kernel, kh, kw)``, temporal stride 1 and
    temporal padding ``time_kernel // 2``; weights by :func:`inflate_conv_weight` (``mode``)."""
    return _inflate_conv(conv, time_kernel, mode)


def _inflate_bn(bn: nn.BatchNorm2d) -> nn.BatchNorm3d:
    out = nn.BatchNorm3d(bn.num_features, bn.eps, bn.momentum, bn.affine,
                         bn.track_running_stats)
    out.load_state_dict(bn.state_dict())
    return out


def _inflate_children(module: nn.Module, time_kernels: dict[str, int], mode: str,
                      prefix: str = "") -> None:
    for name, child in module.named_children():
        full = f"{prefix}{name}"
        if isinstance(child, nn.Conv2d):
            setattr(module, name, _inflate_conv(child, time_kernels.get(full, 1), mode))
        elif isinstance(child, nn.BatchNorm2d):
            setattr(module, name, _inflate_bn(child))
        elif isinstance(child, nn.MaxPool2d):
            k, s, p = (child.kernel_size, child.stride, child.padding)
            setattr(module, name, nn.MaxPool3d((1, k, k), (1, s, s), (0, p, p)))
        else:
            _inflate_children(child, time_kernels, mode, full + ".")


class InflatedResNet(nn.Module):
    """I3D ResNet: ``(B, C, T, H, W) -> (B, c)`` (global average over time and space).

    Args:
        depth_name: 2-D ResNet to inflate (``"resnet50"`` for I3D-R50, ``"resnet18"`` for tests).
        inflate_init: ``"mean"`` (2-D kernel copied over time / t) or ``"center"`` (central
            frame; the network then equals the 2-D ResNet applied to every frame).
        last_stride: stride of the last stage.
        pretrained_path: local torchvision-format 2-D ResNet checkpoint inflated into the model.
        stem_time_kernel: temporal extent of the stem convolution.

    State-dict keys equal the 2-D ResNet's (only the shapes are 3-D).
    """

    def __init__(self, depth_name: str = "resnet50", inflate_init: str = "mean",
                 last_stride: int = 1, pretrained_path: str = "",
                 stem_time_kernel: int = 5) -> None:
        super().__init__()
        net = build_resnet2d(depth_name, last_stride, pretrained_path)
        time_kernels = {"conv1": stem_time_kernel}
        for li in range(1, 5):
            for bi, _ in enumerate(getattr(net, f"layer{li}")):
                if bi % 2 == 0:
                    time_kernels[f"layer{li}.{bi}.conv1"] = 3
        _inflate_children(net, time_kernels, inflate_init)
        self.net = net
        self.out_dim = net.out_dim

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim != 5:
            raise ValueError(f"expected a clip (B, C, T, H, W), got {tuple(x.shape)}")
        return resnet_trunk_forward(self.net, x).mean(dim=(2, 3, 4))
