"""Atomic checkpoint files: write to a temporary file, fsync, then rename.

A run killed while saving never leaves a truncated ``last.pth``: the previous file stays intact
until the new one is complete.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import torch

from reid.utils.errors import CheckpointNotFoundError, CheckpointReadError

logger = logging.getLogger(__name__)


def save_checkpoint(state: dict[str, Any], path: str | os.PathLike) -> Path:
    """Save ``state`` with ``torch.save`` atomically (temporary file + ``os.replace``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(tmp, "wb") as f:
        torch.save(state, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return path


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict:
    """Load a checkpoint written by :func:`save_checkpoint` with ``weights_only=True``.

    Raises:
        FileNotFoundError: naming the path.
        RuntimeError: the file is not a loadable checkpoint (message names it).
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointNotFoundError(f"checkpoint not found: {path}")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # noqa: BLE001 - re-raised with the file name
        raise CheckpointReadError(f"cannot load checkpoint {path}: {err}") from err
