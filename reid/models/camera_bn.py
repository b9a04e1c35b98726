"""Camera-specific BatchNorm statistics for test-time features (camera-based BN).

Zhuang et al., *Rethinking the Distribution Gap of Person Re-identification with Camera-based
Batch Normalization*, ECCV 2020: normalising each camera's images with BatchNorm statistics
of that camera removes much of the camera-specific appearance (illumination, colour cast,
background) at every layer, which matters when identities must be matched across cameras.

:func:`fit_camera_bn` copies an encoder, gives every BatchNorm one branch per camera (the
domain-specific BN machinery of :mod:`reid.models.norm`; branch 0 keeps the original
statistics for cameras never seen) and re-estimates each camera's running mean / variance on
unlabelled images of that camera. Affine parameters are copies of the trained ones. Features
are then extracted with :func:`reid.models.extract_features` and
``camera_domains=<the returned map>``, which routes every image to its camera's branch.
"""
from __future__ import annotations

import copy
import logging
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import torch
from torch import nn

from reid.models.norm import (
    convert_dsbn,
    convert_dsbn_to_bn,
    dsbn_modules,
    num_bn_domains,
)

logger = logging.getLogger(__name__)

__all__ = ["estimate_bn_statistics", "fit_camera_bn"]


@torch.no_grad()
def fit_camera_bn(
    model: nn.Module,
    loaders: Mapping[int, Iterable[dict[str, Any]]],
    device: torch.device | str | None = None,
    domain: int = -1,
) -> tuple[nn.Module, dict[int, int]]:
    """Copy of ``model`` with BatchNorm statistics re-estimated per camera.

    Every BN of the copy becomes a :class:`~reid.models.norm.DomainSpecificBatchNorm` with
    ``1 + len(loaders)`` branches: branch 0 keeps the model's statistics; branch ``1 + k``
    (``k``: 0-based position of the camera among the keys of ``loaders``) gets the population
    mean / unbiased variance of each layer's input over all of that camera's images, collected
    in one train-mode pass (as in PreciseBN, the layers below normalise with their batch
    statistics during it). Affine parameters are copies of the trained ones.
    The model itself is not modified.

    Args:
        model: an encoder (:class:`reid.models.ReIDEncoder` contract: ``model(x, domains=...)``).
            With domain-specific BN, branch ``domain`` is the one specialised per camera.
        loaders: ``{camid: loader}``; each loader yields dicts with ``img`` ``(B, C, H, W)``
            (images of that camera only; a batch of one image is merged with a neighbour).
        device: where the model runs (default: the model's device).
        domain: DSBN branch of ``model`` to start from (-1: the last, the target's).

    Returns:
        ``(camera_model, camera_domains)``: the copy, in eval mode, and ``{camid: branch}``
        to pass to :func:`reid.models.extract_features` as ``camera_domains`` (cameras missing
        from the map use branch 0).

    Raises:
        ValueError: no camera, or a camera with fewer than 2 images.

    Example:
        >>> cam_model, cam_map = fit_camera_bn(model, {c: loader_c for c, loader_c in ...})
        >>> feats, pids, camids = extract_features(cam_model, test_loader,
        ...                                         camera_domains=cam_map)
    """
    if not loaders:
        raise ValueError("fit_camera_bn: no camera to estimate statistics for")
    cam_model = copy.deepcopy(model)
    if num_bn_domains(cam_model) > 1:
        cam_model = convert_dsbn_to_bn(cam_model, domain)
    cam_model = convert_dsbn(cam_model, 1 + len(loaders), test_domain=0, share_affine=True)
    branches = {int(cam): 1 + k for k, cam in enumerate(loaders)}
    for cam, loader in loaders.items():
        try:
            estimate_bn_statistics(cam_model, {branches[int(cam)]: loader}, device)
        except _TooFewImages:
            raise ValueError(f"fit_camera_bn: camera {cam} has fewer than 2 images") from None
    cam_model.eval()
    return cam_model, branches


@torch.no_grad()
def estimate_bn_statistics(
    model: nn.Module,
    loaders: Mapping[int, Iterable[dict[str, Any]]],
    device: torch.device | str | None = None,
) -> None:
    """Set DSBN branches' running statistics to the exact moments of their inputs, in place.

    For every ``branch: loader`` pair, all images of ``loader`` are routed to DSBN branch
    ``branch`` in one train-mode pass (the layers below normalise with their batch statistics,
    as in PreciseBN) and that branch of every :class:`~reid.models.norm.DomainSpecificBatchNorm`
    gets the population mean / unbiased variance of its input over all of them (float64 sums).
    Parameters and the other branches are untouched; the model's train / eval mode is restored.

    Args:
        model: an encoder with domain-specific BN (``model(x, domains=...)``).
        loaders: ``{branch: loader}``; loaders yield dicts with ``img`` ``(B, C, H, W)``; a
            batch of one image is merged with a neighbour.
        device: where the model runs (default: the model's device).

    Raises:
        ValueError: the model has no DSBN layer, a branch is out of range, or a loader yields
            fewer than 2 images.

    Example:
        >>> estimate_bn_statistics(model, {1: loader_cam1, 2: loader_cam2})
    """
    dsbns = dsbn_modules(model)
    if not dsbns:
        raise ValueError("estimate_bn_statistics needs a model with domain-specific BN")
    if device is None:
        param = next(model.parameters(), None)
        device = param.device if param is not None else torch.device("cpu")
    device = torch.device(device)
    was_training = model.training
    model.to(device).train()
    try:
        for branch, loader in loaders.items():
            branch = int(branch)
            if not 0 <= branch < min(m.num_domains for m in dsbns):
                raise ValueError(f"BN branch {branch} out of range")
            bns = [m.dsbn[branch] for m in dsbns]
            saved = [{k: v.clone() for k, v in bn.state_dict().items()} for bn in bns]
            moments = [_Moments() for _ in bns]
            hooks = [bn.register_forward_pre_hook(mom.hook)
                     for bn, mom in zip(bns, moments, strict=True)]
            try:
                seen = 0
                for x in _batches_of_two_or_more(loader):
                    x = x.to(device)
                    model(x, domains=torch.full((x.shape[0],), branch, dtype=torch.long,
                                                device=device))
                    seen += x.shape[0]
            finally:
                for h in hooks:
                    h.remove()
            if seen == 0:
                raise _TooFewImages(f"branch {branch}: fewer than 2 images to estimate from")
            for bn, mom, state in zip(bns, moments, saved, strict=True):
                bn.load_state_dict(state)  # the pass's momentum updates are discarded
                mom.store(bn)
            logger.debug("BN branch %d: statistics from %d images", branch, seen)
    finally:
        model.train(was_training)


class _TooFewImages(ValueError):
    """A loader of :func:`estimate_bn_statistics` yielded fewer than 2 images."""


def _batches_of_two_or_more(loader: Iterable[dict[str, Any]]) -> Iterator[torch.Tensor]:
    """The loader's ``img`` tensors, a batch of one image merged with its neighbour
    (BatchNorm1d cannot normalise a single sample in train mode)."""
    prev: torch.Tensor | None = None
    for batch in loader:
        x = batch["img"]
        if prev is None or x.shape[0] < 2 or prev.shape[0] < 2:
            prev = x if prev is None else torch.cat([prev, x])
            continue
        yield prev
        prev = x
    if prev is not None and prev.shape[0] >= 2:
        yield prev


class _Moments:
    """Per-channel sums of a BatchNorm's inputs (float64), turned into its running statistics."""

    def __init__(self) -> None:
        self.count = 0
        self.sum: torch.Tensor | None = None
        self.sumsq: torch.Tensor | None = None

    def hook(self, module: nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
        x = inputs[0].detach().double()
        dims = [0, *range(2, x.dim())]
        s, sq = x.sum(dims), (x * x).sum(dims)
        self.sum = s if self.sum is None else self.sum + s
        self.sumsq = sq if self.sumsq is None else self.sumsq + sq
        self.count += x.numel() // x.shape[1]

    def store(self, bn: nn.Module) -> None:
        """Population mean and unbiased variance (as BatchNorm keeps) into ``bn``'s buffers."""
        mean = self.sum / self.count
        var = (self.sumsq / self.count - mean * mean).clamp_(min=0.0)
        if self.count > 1:
            var = var * (self.count / (self.count - 1))
        bn.running_mean.copy_(mean.to(bn.running_mean.dtype))
        bn.running_var.copy_(var.to(bn.running_var.dtype))
