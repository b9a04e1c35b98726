"""Clip sampling for tracklets, clip-consistent transforms and the clip dataset.

Frame-index samplers (pure functions, ``n`` = tracklet length, ``T`` = clip length):

* :func:`segment_indices` - training, TSN segment sampling (Wang et al., ECCV 2016): the
  tracklet is cut into ``T`` equal segments with integer boundaries ``floor(k * n / T)`` and one
  frame is drawn uniformly inside each (the middle frame when ``random=False``). When ``n < T``
  every frame is used in temporal order, frame ``i`` repeated so the clip is
  ``floor(k * n / T), k = 0..T-1`` (e.g. n=3, T=8 -> 0 0 0 1 1 1 2 2).
* :func:`dense_indices` - ``T`` frames ``stride`` apart from a random start; a tracklet shorter
  than the clip span starts at 0 and is padded by repeating its last frame.
* :func:`all_clip_indices` - evaluation: every frame, in consecutive clips of ``T``; the last
  clip is padded by repeating the last frame. The features of the ``K`` clips are averaged
  (:func:`average_clip_features`).
* ``"evenly"`` - evaluation, one clip per tracklet: the middle frame of each of ``T`` equal
  segments (:func:`segment_indices` with ``random=False``; torchreid's "evenly" test sampling).
  About ``n / T`` times cheaper than ``"all"`` on tracklets of ``n`` frames.

Transforms: a clip transform maps a list of ``T`` PIL frames to a ``(C, T, H, W)`` tensor.
:class:`ConsistentClipTransform` turns any per-frame transform (torchvision style) into one that
draws its random parameters once per clip: it snapshots the python / numpy / torch generators
before the first frame and restores them before every other frame, so every frame gets the same
flip, crop offset and erasing box.
"""
from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import Tensor
from torch.utils.data import Dataset

from reid.data.image import read_image

SAMPLERS = ("segment", "dense", "all", "evenly")
TEST_SAMPLERS = ("all", "evenly")


def _check_lengths(num_frames: int, seq_len: int) -> None:
    if num_frames < 1:
        raise ValueError(f"a tracklet needs at least one frame, got {num_frames}")
    if seq_len < 1:
        raise ValueError(f"seq_len must be >= 1, got {seq_len}")


def segment_indices(num_frames: int, seq_len: int, random: bool = True,
                    rng: np.random.Generator | None = None) -> np.ndarray:
    """TSN segment sampling: int64 ``(seq_len,)`` frame indices in ``[0, num_frames)``, sorted.

    Args:
        num_frames: tracklet length n (>= 1).
        seq_len: clip length T.
        random: draw uniformly inside each segment; False takes the middle frame
            ``(start + end - 1) // 2`` of segment ``[start, end)``.
        rng: numpy generator (default: a fresh unseeded one).
    """
    _check_lengths(num_frames, seq_len)
    k = np.arange(seq_len)
    if num_frames < seq_len:
        return (k * num_frames) // seq_len
    start = (k * num_frames) // seq_len
    end = ((k + 1) * num_frames) // seq_len
    if not random:
        return (start + end - 1) // 2
    rng = rng if rng is not None else np.random.default_rng()
    return start + rng.integers(0, end - start)


def dense_indices(num_frames: int, seq_len: int, stride: int = 1, random: bool = True,
                  rng: np.random.Generator | None = None) -> np.ndarray:
    """Strided dense clip: int64 ``(seq_len,)`` indices ``s, s + stride, ...``.

    The start ``s`` is uniform over ``[0, n - (T - 1) * stride - 1]`` (the centred start when
    ``random=False``); shorter tracklets start at 0 and repeat their last frame.
    """
    _check_lengths(num_frames, seq_len)
    if stride < 1:
        raise ValueError(f"stride must be >= 1, got {stride}")
    span = (seq_len - 1) * stride + 1
    last_start = max(num_frames - span, 0)
    if random:
        rng = rng if rng is not None else np.random.default_rng()
        start = int(rng.integers(0, last_start + 1))
    else:
        start = last_start // 2
    return np.minimum(start + stride * np.arange(seq_len), num_frames - 1)


def all_clip_indices(num_frames: int, seq_len: int) -> np.ndarray:
    """All frames in consecutive clips: int64 ``(K, seq_len)``, ``K = ceil(n / T)``.

    The last clip is padded with the last frame, e.g. n=10, T=4 ->
    ``[[0,1,2,3], [4,5,6,7], [8,9,9,9]]``.
    """
    _check_lengths(num_frames, seq_len)
    num_clips = -(-num_frames // seq_len)
    idx = np.arange(num_clips * seq_len)
    return np.minimum(idx, num_frames - 1).reshape(num_clips, seq_len)


def sample_indices(sampler: str, num_frames: int, seq_len: int, stride: int = 1,
                   rng: np.random.Generator | None = None) -> np.ndarray:
    """Dispatch on ``sampler`` (``"segment"``, ``"dense"``, ``"all"``, ``"evenly"``); ``"all"``
    returns ``(K, T)``, the others ``(T,)``."""
    if sampler == "segment":
        return segment_indices(num_frames, seq_len, rng=rng)
    if sampler == "evenly":
        return segment_indices(num_frames, seq_len, random=False)
    if sampler == "dense":
        return dense_indices(num_frames, seq_len, stride, rng=rng)
    if sampler == "all":
        return all_clip_indices(num_frames, seq_len)
    raise ValueError(f"unknown clip sampler {sampler!r}; expected one of {SAMPLERS}")


class ConsistentClipTransform:
    """Apply one per-frame transform to every frame of a clip with the same random parameters.

    Args:
        frame_transform: ``PIL.Image -> (C, H, W) tensor`` (e.g. a torchvision ``Compose``);
            its randomness must come from python ``random``, numpy or the torch CPU generator
            and its number of draws must not depend on pixel values (resize first when frames
            differ in size).

    ``__call__(frames)``: list of ``T`` PIL images -> ``(C, T, H, W)`` float tensor.
    """

    def __init__(self, frame_transform: Callable[[Image.Image], Tensor]) -> None:
        self.frame_transform = frame_transform

    def __call__(self, frames: Sequence[Image.Image]) -> Tensor:
        if len(frames) == 0:
            raise ValueError("a clip needs at least one frame")
        py_state = random.getstate()
        np_state = np.random.get_state()
        torch_state = torch.get_rng_state()
        out = []
        for frame in frames:
            random.setstate(py_state)
            np.random.set_state(np_state)
            torch.set_rng_state(torch_state)
            out.append(self.frame_transform(frame))
        return torch.stack(out, dim=1)

    def __repr__(self) -> str:
        return f"ConsistentClipTransform({self.frame_transform!r})"


def _to_tensor(frames: Sequence[Image.Image]) -> Tensor:
    arrays = [np.asarray(f.convert("RGB"), dtype=np.float32) / 255.0 for f in frames]
    shapes = {a.shape for a in arrays}
    if len(shapes) != 1:
        raise ValueError(f"frames of one clip differ in size {sorted(shapes)}; pass a transform "
                         f"that resizes them")
    return torch.from_numpy(np.stack(arrays)).permute(3, 0, 1, 2).contiguous()


def build_clip_transform(size: tuple[int, int], mean: Sequence[float], std: Sequence[float],
                         is_train: bool, flip_prob: float = 0.5, padding: int = 10,
                         erasing_prob: float = 0.5) -> ConsistentClipTransform:
    """Standard re-ID augmentation (resize, flip, pad + random crop, normalise, random erasing)
    applied consistently to every frame of a clip; test mode only resizes and normalises.

    ``size`` is (height, width) in pixels; ``mean`` / ``std`` per RGB channel for [0, 1] inputs.
    """
    import torchvision.transforms as T

    steps: list[Any] = [T.Resize(tuple(size), interpolation=T.InterpolationMode.BICUBIC)]
    if is_train:
        if flip_prob > 0:
            steps.append(T.RandomHorizontalFlip(flip_prob))
        if padding > 0:
            steps += [T.Pad(padding), T.RandomCrop(tuple(size))]
    steps += [T.ToTensor(), T.Normalize(mean, std)]
    if is_train and erasing_prob > 0:
        steps.append(T.RandomErasing(p=erasing_prob, value=0))
    return ConsistentClipTransform(T.Compose(steps))


def build_clip_transform_from_cfg(cfg, is_train: bool) -> ConsistentClipTransform:
    """:func:`build_clip_transform` from ``INPUT.*`` keys."""
    inp = cfg.INPUT
    if is_train and (inp.COLOR_JITTER_PROB > 0 or inp.GRAYSCALE_PROB > 0):
        raise ValueError("INPUT.COLOR_JITTER_PROB / INPUT.GRAYSCALE_PROB are implemented for "
                         "image datasets only; set them to 0 for video")
    return build_clip_transform(inp.SIZE_TRAIN if is_train else inp.SIZE_TEST, inp.PIXEL_MEAN,
                                inp.PIXEL_STD, is_train, inp.FLIP_PROB, inp.PADDING,
                                inp.ERASING_PROB)


class VideoClipDataset(Dataset):
    """Tracklets -> clip samples.

    Args:
        tracklets: list of ``(frame_paths, pid, camid)``, ``frame_paths`` a non-empty sequence in
            temporal order.
        seq_len: clip length T.
        sampler: ``"segment"`` / ``"dense"`` (training, one random clip per item), ``"evenly"``
            (one deterministic clip per item) or ``"all"`` (every frame).
        transform: clip transform ``list[PIL] -> (C, T, H, W)`` (e.g.
            :func:`build_clip_transform`); None converts frames to [0, 1] tensors unchanged.
            With ``"all"`` the transform sees all ``K * T`` frames at once, so every clip of a
            tracklet gets the same parameters.
        domain: domain id returned with every item.
        stride: frame stride of the ``"dense"`` sampler.
        loader: ``path -> PIL RGB image``; default ``reid.data.image.read_image``.

    Items: ``{"img": (C, T, H, W) float tensor ((K, C, T, H, W) for "all"), "pid": int,
    "camid": int, "index": int, "domain": int}``.
    """

    def __init__(self, tracklets: Sequence[tuple[Sequence[str], int, int]], seq_len: int,
                 sampler: str = "segment", transform: Callable | None = None, domain: int = 0,
                 stride: int = 1, loader: Callable[[str], Image.Image] | None = None) -> None:
        if sampler not in SAMPLERS:
            raise ValueError(f"unknown clip sampler {sampler!r}; expected one of {SAMPLERS}")
        if seq_len < 1:
            raise ValueError(f"seq_len must be >= 1, got {seq_len}")
        for i, (frames, pid, _) in enumerate(tracklets):
            if isinstance(frames, str) or len(frames) == 0:
                raise ValueError(f"tracklet {i} (pid {pid}) has no frame list: {frames!r}")
        self.tracklets = list(tracklets)
        self.seq_len = seq_len
        self.sampler = sampler
        self.transform = transform
        self.domain = domain
        self.stride = stride
        self.loader = loader or read_image

    def __len__(self) -> int:
        return len(self.tracklets)

    def __getitem__(self, index: int) -> dict[str, Any]:
        frames, pid, camid = self.tracklets[index]
        seed = int(torch.randint(0, 2**31 - 1, (1,)).item())
        idx = sample_indices(self.sampler, len(frames), self.seq_len, self.stride,
                             np.random.default_rng(seed))
        flat = idx.reshape(-1).tolist()
        cache: dict[int, Image.Image] = {}
        images = []
        for i in flat:
            if i not in cache:
                cache[i] = self.loader(frames[i])
            images.append(cache[i])
        clip = self.transform(images) if self.transform is not None else _to_tensor(images)
        if clip.ndim != 4 or clip.shape[1] != len(flat):
            raise ValueError(f"clip transform must return (C, {len(flat)}, H, W), got "
                             f"{tuple(clip.shape)}")
        if self.sampler == "all":
            k, t = idx.shape
            clip = clip.reshape(clip.shape[0], k, t, *clip.shape[2:]).transpose(0, 1)
        return {"img": clip, "pid": pid, "camid": camid, "index": index, "domain": self.domain}


def video_collate(batch: Sequence[dict[str, Any]]) -> dict[str, Tensor]:
    """Collate clip items; ``(K_i, C, T, H, W)`` items are concatenated to ``(sum K, ...)``
    and ``"num_clips"`` ``(B,)`` records each tracklet's ``K_i``."""
    out: dict[str, Tensor] = {k: torch.as_tensor([b[k] for b in batch])
                              for k in ("pid", "camid", "index", "domain")}
    imgs = [b["img"] for b in batch]
    if imgs[0].ndim == 5:
        out["img"] = torch.cat(imgs)
        out["num_clips"] = torch.as_tensor([im.shape[0] for im in imgs])
    else:
        out["img"] = torch.stack(imgs)
    return out


def average_clip_features(feats: Tensor, num_clips: Tensor) -> Tensor:
    """Mean clip feature per tracklet: ``(sum K, D)``, ``(B,)`` counts -> ``(B, D)``."""
    num_clips = torch.as_tensor(num_clips, device=feats.device).long()
    if int(num_clips.sum()) != feats.shape[0] or bool((num_clips < 1).any()):
        raise ValueError(f"num_clips {num_clips.tolist()} does not partition {feats.shape[0]} "
                         f"clip features")
    owner = torch.repeat_interleave(torch.arange(len(num_clips), device=feats.device), num_clips)
    total = feats.new_zeros(len(num_clips), feats.shape[1]).index_add_(0, owner, feats)
    return total / num_clips.unsqueeze(1).to(feats.dtype)


@torch.no_grad()
def encode_tracklets(model: torch.nn.Module, clips: Tensor, num_clips: Tensor | None = None,
                     chunk: int = 64) -> Tensor:
    """Embed tracklets with an eval-mode model: clips ``(B, C, T, H, W)`` -> ``(B, D)``, or
    ``(sum K, C, T, H, W)`` with ``num_clips`` -> per-tracklet mean of the clip features."""
    feats = torch.cat([model(clips[i:i + chunk]) for i in range(0, clips.shape[0], chunk)])
    return feats if num_clips is None else average_clip_features(feats, num_clips)
