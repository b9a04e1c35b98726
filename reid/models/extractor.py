"""Feature extraction: :func:`extract_features` (loaders) and :class:`FeatureExtractor` (images)."""
from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor, nn

from reid.models.norm import num_bn_domains
from reid.utils.progress import progress

logger = logging.getLogger(__name__)

ImageInput = str | os.PathLike | Image.Image


def _autocast(device: torch.device, amp: bool) -> contextlib.AbstractContextManager:
    """bf16 (or fp16 where bf16 is unsupported) autocast on CUDA when ``amp``; else nothing."""
    if not amp or device.type != "cuda":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.autocast("cuda", dtype=dtype)


def _resolve_device(device: torch.device | str | None) -> torch.device:
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def _forward(model: nn.Module, x: Tensor, domain: int | None, flip: bool,
             domains: Tensor | None = None) -> Tensor:
    """Normalised float32 features of ``x`` (with the horizontal flip averaged in)."""
    if domains is None and domain is not None and num_bn_domains(model) > 1:
        domains = torch.full((x.shape[0],), domain, dtype=torch.long, device=x.device)
    feats = model(x, domains=domains).float()
    if flip:
        feats = feats + model(x.flip(-1), domains=domains).float()
    return F.normalize(feats, dim=1)


def _average_clips(feats: Tensor, counts: Sequence[int]) -> Tensor:
    """``(sum K, D)`` clip features -> ``(B, D)`` normalised means over each item's clips."""
    if sum(counts) != feats.shape[0] or min(counts) < 1:
        raise ValueError(f"clip counts {list(counts)} do not partition {feats.shape[0]} features")
    means = torch.stack([part.mean(0) for part in feats.split(list(counts))])
    return F.normalize(means, dim=1)


@torch.inference_mode()
def extract_features(
    model: nn.Module,
    loader: Iterable[dict[str, Any]],
    device: torch.device | str | None = None,
    flip: bool = False,
    domain: int | None = None,
    amp: bool = False,
    desc: str = "extract",
    camera_domains: Mapping[int, int] | None = None,
) -> tuple[Tensor, np.ndarray, np.ndarray]:
    """Eval-mode features of every sample of ``loader``, in loader order.

    Args:
        model: an encoder following the contract of :class:`reid.models.ReIDEncoder` (eval
            output = normalised features); put in eval mode for the pass, then restored.
        loader: yields dicts with ``img`` ``(B, C, H, W)`` (images) or ``(B, C, T, H, W)``
            (clips), ``pid`` and ``camid`` ``(B,)``. Several clips per item are accepted either
            as ``img`` ``(B, K, ...)`` or as ``img`` ``(sum K, ...)`` with ``num_clips`` ``(B,)``;
            their features are averaged.
        device: where the model runs (default: CUDA if available, else CPU).
        flip: add the features of the horizontally flipped input before normalising.
        domain: BN branch for models with domain-specific BN (None: the model's test domain).
        amp: bf16 (fp16 where bf16 is unsupported) autocast on CUDA; ignored on CPU.
        desc: label of the progress bar / log lines.
        camera_domains: ``{camid: BN branch}`` from :func:`reid.models.fit_camera_bn`: every
            image is normalised by its camera's branch (cameras not in the map: branch 0);
            overrides ``domain``. Needs ``camid`` in the batches.

    Returns:
        ``(feats, pids, camids)``: ``(N, D)`` float32 L2-normalised features on the CPU and two
        ``(N,)`` int64 arrays.

    Raises:
        ValueError: the loader is empty or a batch has no ``img``.
    """
    device = _resolve_device(device)
    was_training = model.training
    model.eval()
    feats: list[Tensor] = []
    pids: list[np.ndarray] = []
    camids: list[np.ndarray] = []
    try:
        for batch in progress(loader, desc=desc):
            if "img" not in batch:
                raise ValueError(f"loader batch has no 'img' key (keys: {sorted(batch)})")
            x = batch["img"].to(device, non_blocking=True)
            counts: list[int] | None = None
            if "num_clips" in batch:
                counts = torch.as_tensor(batch["num_clips"]).tolist()
            elif x.dim() == 6:
                counts = [x.shape[1]] * x.shape[0]
                x = x.flatten(0, 1)
            domains = None
            if camera_domains is not None:
                if "camid" not in batch:
                    raise ValueError("camera_domains needs 'camid' in the loader's batches")
                domains = torch.as_tensor(
                    [camera_domains.get(int(c), 0) for c in torch.as_tensor(batch["camid"])],
                    dtype=torch.long, device=device)
            with _autocast(device, amp):
                out = _forward(model, x, domain, flip, domains)
            if counts is not None:
                out = _average_clips(out, counts)
            n = out.shape[0]
            feats.append(out.cpu())
            pids.append(np.asarray(batch.get("pid", [-1] * n), dtype=np.int64).reshape(n))
            camids.append(np.asarray(batch.get("camid", [-1] * n), dtype=np.int64).reshape(n))
    finally:
        model.train(was_training)
    if not feats:
        raise ValueError("extract_features: the loader yielded no batch")
    return torch.cat(feats), np.concatenate(pids), np.concatenate(camids)


def _load_image(item: ImageInput) -> Image.Image:
    if isinstance(item, Image.Image):
        return item.convert("RGB")
    path = Path(item)
    if not path.is_file():
        raise FileNotFoundError(f"image not found: {path}")
    try:
        with Image.open(path) as img:
            return img.convert("RGB")
    except OSError as err:
        raise OSError(f"cannot read image {path}: {err}") from err


class FeatureExtractor:
    """Turn images (paths or PIL images) into L2-normalised re-ID features.

    Args:
        model: an encoder (:func:`reid.models.build_encoder`, ...) or a config node; with a
            config the model is built by :func:`reid.models.build_model` with
            ``MODEL.DSBN.NUM_DOMAINS`` branches and ``MODEL.WEIGHTS`` is loaded when set, and
            image size / mean / std default to ``INPUT.SIZE_TEST``/``PIXEL_MEAN``/``PIXEL_STD``.
        device: where the model runs (default: CUDA if available, else CPU).
        image_size: (height, width) the images are resized to, pixels.
        mean, std: RGB normalisation of [0, 1] inputs.
        batch_size: images per forward pass.
        domain: DSBN branch (None: the model's test domain).
        flip: average in the features of the horizontally flipped images.

    Example:
        >>> from reid.models import FeatureExtractor, build_encoder
        >>> extractor = FeatureExtractor(build_encoder("resnet50"), image_size=(256, 128))
        >>> feats = extractor(["a.jpg", "b.jpg"])        # (2, 2048) float32, rows of norm 1
        >>> similarity = feats @ feats.T                 # cosine similarities
    """

    def __init__(
        self,
        model: nn.Module | Any,
        device: torch.device | str | None = None,
        image_size: tuple[int, int] | None = None,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        batch_size: int = 64,
        domain: int | None = None,
        flip: bool = False,
    ) -> None:
        from reid.data.transforms import IMAGENET_MEAN, IMAGENET_STD, build_test_transform

        if not isinstance(model, nn.Module):
            cfg = model
            model = self._model_from_cfg(cfg)
            image_size = image_size or tuple(cfg.INPUT.SIZE_TEST)
            mean = mean or tuple(cfg.INPUT.PIXEL_MEAN)
            std = std or tuple(cfg.INPUT.PIXEL_STD)
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        self.device = _resolve_device(device)
        self.model = model.to(self.device).eval()
        self.transform = build_test_transform(size=tuple(image_size or (256, 128)),
                                              mean=mean or IMAGENET_MEAN, std=std or IMAGENET_STD)
        self.batch_size = batch_size
        self.domain = domain
        self.flip = flip

    @staticmethod
    def _model_from_cfg(cfg) -> nn.Module:
        from reid.models.build import build_model
        from reid.models.pretrained import load_pretrained

        model = build_model(cfg, num_classes=0, num_domains=max(1, cfg.MODEL.DSBN.NUM_DOMAINS))
        if cfg.MODEL.WEIGHTS:
            load_pretrained(model, cfg.MODEL.WEIGHTS, dsbn_domain=cfg.MODEL.DSBN.TEST_DOMAIN,
                            partial=cfg.MODEL.WEIGHTS_PARTIAL)
        else:
            logger.warning("MODEL.WEIGHTS is empty: features of an untrained re-ID model")
        return model

    @torch.inference_mode()
    def __call__(self, images: ImageInput | Sequence[ImageInput]) -> Tensor:
        """``(N, D)`` float32 L2-normalised features (CPU) of one image or a list of images."""
        if isinstance(images, (str, os.PathLike, Image.Image)):
            images = [images]
        images = list(images)
        if not images:
            raise ValueError("FeatureExtractor got no image")
        self.model.eval()
        out = []
        for start in range(0, len(images), self.batch_size):
            chunk = images[start:start + self.batch_size]
            x = torch.stack([self.transform(_load_image(item)) for item in chunk])
            out.append(_forward(self.model, x.to(self.device), self.domain, self.flip).cpu())
        return torch.cat(out)
