"""Features of a folder or a list of images, saved to ``.npz`` (``tools/extract.py``)."""
from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from reid.utils.errors import DatasetError

logger = logging.getLogger(__name__)


def collect_images(inputs: Sequence[str | os.PathLike]) -> list[str]:
    """Image paths from folders (searched recursively), list files and image files.

    Args:
        inputs: each a folder (every ``.jpg/.jpeg/.png/.bmp/.webp`` under it, sorted), a text
            file (``.txt``/``.lst``: one path per line, relative to the list file's folder;
            blank and ``#`` lines skipped) or an image file.

    Returns:
        The paths in input order, without duplicates.

    Raises:
        FileNotFoundError: an input does not exist, or a listed image does not.
        ValueError: nothing found.
    """
    from reid.data.datasets.folder import find_images

    out: list[str] = []
    for item in inputs:
        path = Path(item).expanduser()
        if path.is_dir():
            out += [str(p) for p in find_images(path)]
        elif path.suffix.lower() in (".txt", ".lst") and path.is_file():
            for line in path.read_text(encoding="utf-8").splitlines():
                line = line.strip()
                if not line or line.startswith("#"):
                    continue
                img = Path(line).expanduser()
                img = img if img.is_absolute() else path.parent / img
                if not img.is_file():
                    raise DatasetError(f"{path} lists {img}, which does not exist")
                out.append(str(img))
        elif path.is_file():
            out.append(str(path))
        else:
            raise DatasetError(f"no such file or folder: {path}")
    out = list(dict.fromkeys(out))
    if not out:
        raise DatasetError(f"no image found in {', '.join(map(str, inputs))}")
    return out


def extract_paths(cfg, model: nn.Module, paths: Sequence[str], *, batch_size: int = 128,
                  device: torch.device | str = "cpu", flip: bool = False,
                  num_workers: int = 0) -> tuple[np.ndarray, list[str]]:
    """L2-normalised features of the images ``paths`` (unreadable files skipped, with a warning).

    Args:
        cfg: config (``INPUT.SIZE_TEST``, ``PIXEL_MEAN``/``STD`` of the test transform).
        model: eval-mode encoder (see :func:`reid.apps.model.load_encoder`).
        paths: image files.
        batch_size: images per forward pass.
        device: where the model runs.
        flip: average with the horizontally flipped image.
        num_workers: data loading processes.

    Returns:
        ``(features, kept_paths)``: (N, D) float32 rows of unit norm and the N paths they
        belong to (``paths`` minus the unreadable ones).
    """
    from reid.data.build import build_transform_from_cfg, make_test_loader
    from reid.data.datasets.folder import drop_unreadable
    from reid.models import extract_features

    kept = [str(p) for p in drop_unreadable([Path(p) for p in paths], "extract")]
    if not kept:
        raise DatasetError("every image is unreadable")
    loader = make_test_loader([(p, -1, -1) for p in kept], is_video=False,
                              transform=build_transform_from_cfg(cfg, is_train=False),
                              batch_size=batch_size, num_workers=num_workers)
    feats, _, _ = extract_features(model, loader, device=device, flip=flip, desc="extract")
    return feats.float().numpy(), kept


def save_features(path: str | os.PathLike, features: np.ndarray, paths: Sequence[str],
                  **extra: np.ndarray) -> Path:
    """Write ``features`` (N, D) float32 and ``paths`` (N,) str to the ``.npz`` ``path``."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez(out, features=np.asarray(features, dtype=np.float32),
             paths=np.asarray(list(paths), dtype=str), **extra)
    return out
