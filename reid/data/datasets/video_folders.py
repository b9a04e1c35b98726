"""Helpers for video sets stored as one folder of frames per tracklet."""
from __future__ import annotations

from pathlib import Path

from reid.data.datasets.base import DatasetLayoutError
from reid.data.datasets.common import list_images


def tracklet_frames(folder: Path, dataset: str) -> tuple[str, ...]:
    """Sorted frame paths of one tracklet folder; an empty folder raises, naming it."""
    frames = tuple(str(p) for p in list_images(folder))
    if not frames:
        raise DatasetLayoutError(f"{dataset}: tracklet folder without frames: {folder}")
    return frames


def subfolders(folder: Path) -> list[Path]:
    """Sorted sub-folders of ``folder`` (hidden ones ignored)."""
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
