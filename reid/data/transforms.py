"""Image transforms of re-ID training and testing (PIL image -> normalised ``(3, H, W)`` tensor).

Training: resize, horizontal flip, zero padding + random crop back to the size, to tensor,
normalise, random erasing (Zhong et al., "Random Erasing Data Augmentation", AAAI 2020). All
randomness comes from ``torch``'s generator, so seeding torch (and DataLoader workers) makes it
reproducible.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torchvision.transforms as T
from torch import Tensor
from torchvision.transforms import InterpolationMode

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class RandomErasing:
    """Erase a random rectangle of a ``(C, H, W)`` tensor (Zhong et al., AAAI 2020, Alg. 1).

    With probability ``p``, up to ``attempts`` times: draw an area fraction ``s ~ U(sl, sh)``
    and an aspect ratio ``r ~ U(r1, 1/r1)``, take ``h = round(sqrt(s*H*W*r))``,
    ``w = round(sqrt(s*H*W/r))``; if the rectangle fits, place it uniformly at random and fill
    it with ``value`` (per channel); stop after the first success.

    Args:
        p: erasing probability.
        sl, sh: range of the erased area as a fraction of the image.
        r1: minimum aspect ratio (the maximum is ``1 / r1``).
        value: fill value(s) in the tensor's (normalised) space; 0 is the dataset mean
            after normalisation.
        attempts: tries to find a rectangle that fits.
    """

    def __init__(self, p: float = 0.5, sl: float = 0.02, sh: float = 0.4, r1: float = 0.3,
                 value: float | Sequence[float] = 0.0, attempts: int = 100) -> None:
        if not 0.0 <= p <= 1.0 or not 0.0 < sl <= sh <= 1.0 or not 0.0 < r1 <= 1.0:
            raise ValueError(f"invalid random erasing parameters p={p}, sl={sl}, sh={sh}, r1={r1}")
        self.p, self.sl, self.sh, self.r1 = p, sl, sh, r1
        self.value = value
        self.attempts = attempts

    def _uniform(self, low: float, high: float) -> float:
        return low + (high - low) * float(torch.rand(()))

    def __call__(self, img: Tensor) -> Tensor:
        if self.p <= 0 or float(torch.rand(())) >= self.p:
            return img
        channels, height, width = img.shape[-3:]
        area = height * width
        for _ in range(self.attempts):
            target = self._uniform(self.sl, self.sh) * area
            ratio = self._uniform(self.r1, 1.0 / self.r1)
            h = int(round(math.sqrt(target * ratio)))
            w = int(round(math.sqrt(target / ratio)))
            if 0 < h < height and 0 < w < width:
                top = int(torch.randint(0, height - h + 1, ()))
                left = int(torch.randint(0, width - w + 1, ()))
                fill = torch.as_tensor(self.value, dtype=img.dtype).reshape(-1, 1, 1)
                img = img.clone()
                img[..., top:top + h, left:left + w] = fill.expand(channels, h, w)
                return img
        return img

    def __repr__(self) -> str:
        return (f"RandomErasing(p={self.p}, sl={self.sl}, sh={self.sh}, r1={self.r1}, "
                f"value={self.value})")


def _size(size: Sequence[int]) -> tuple[int, int]:
    if len(size) != 2 or min(size) <= 0:
        raise ValueError(f"image size must be (height, width) > 0, got {tuple(size)}")
    return int(size[0]), int(size[1])


def build_train_transform(
    size: Sequence[int] = (256, 128),
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
    flip_prob: float = 0.5,
    padding: int = 10,
    erasing_prob: float = 0.5,
    color_jitter_prob: float = 0.0,
    color_jitter: Sequence[float] = (0.4, 0.4, 0.4, 0.1),
    grayscale_prob: float = 0.0,
) -> T.Compose:
    """PIL image -> augmented normalised float32 ``(3, H, W)`` tensor.

    Order: resize, flip, pad + crop, colour jitter, grayscale, to tensor, normalise, erasing.

    Args:
        size: output (height, width), pixels; images are resized (bicubic) to it.
        mean, std: RGB normalisation of [0, 1] values.
        flip_prob: probability of a horizontal flip.
        padding: zero padding on every side before a random crop back to ``size``; 0 disables.
        erasing_prob: probability of :class:`RandomErasing` (fills with the mean, i.e. 0).
        color_jitter_prob: probability of a ``ColorJitter`` with strengths ``color_jitter``
            = (brightness, contrast, saturation, hue); 0 disables.
        grayscale_prob: probability of converting the image to (3-channel) grayscale.

    Example:
        >>> tf = build_train_transform((128, 64), color_jitter_prob=0.8, grayscale_prob=0.2)
        >>> tf(Image.new("RGB", (64, 128))).shape
        torch.Size([3, 128, 64])
    """
    size = _size(size)
    steps = [T.Resize(size, interpolation=InterpolationMode.BICUBIC)]
    if flip_prob > 0:
        steps.append(T.RandomHorizontalFlip(p=flip_prob))
    if padding > 0:
        steps += [T.Pad(padding, fill=0), T.RandomCrop(size)]
    if color_jitter_prob > 0:
        if len(color_jitter) != 4:
            raise ValueError(f"color_jitter must be (brightness, contrast, saturation, hue), "
                             f"got {tuple(color_jitter)}")
        steps.append(T.RandomApply([T.ColorJitter(*color_jitter)], p=color_jitter_prob))
    if grayscale_prob > 0:
        steps.append(T.RandomGrayscale(p=grayscale_prob))
    steps += [T.ToTensor(), T.Normalize(mean=list(mean), std=list(std))]
    if erasing_prob > 0:
        steps.append(RandomErasing(p=erasing_prob))
    return T.Compose(steps)


def build_test_transform(
    size: Sequence[int] = (256, 128),
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
) -> T.Compose:
    """PIL image -> resized (bicubic) normalised float32 ``(3, H, W)`` tensor."""
    return T.Compose([
        T.Resize(_size(size), interpolation=InterpolationMode.BICUBIC),
        T.ToTensor(),
        T.Normalize(mean=list(mean), std=list(std)),
    ])


def build_transforms(cfg, is_train: bool) -> T.Compose:
    """The train or test transform of ``INPUT.*``."""
    inp = cfg.INPUT
    if is_train:
        return build_train_transform(size=inp.SIZE_TRAIN, mean=inp.PIXEL_MEAN, std=inp.PIXEL_STD,
                                     flip_prob=inp.FLIP_PROB, padding=inp.PADDING,
                                     erasing_prob=inp.ERASING_PROB,
                                     color_jitter_prob=inp.COLOR_JITTER_PROB,
                                     color_jitter=inp.COLOR_JITTER,
                                     grayscale_prob=inp.GRAYSCALE_PROB)
    return build_test_transform(size=inp.SIZE_TEST, mean=inp.PIXEL_MEAN, std=inp.PIXEL_STD)
