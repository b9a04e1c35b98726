"""Datasets read from plain folders of crops: ``folder:PATH`` and ``identities:PATH``.

``folder:PATH`` is an unlabelled tree of crops (a USL / UDA target). Every image under ``PATH``
(recursively; ``.jpg``, ``.jpeg``, ``.png``, ``.bmp``, ``.webp`` in any case; hidden files and
folders ignored) is a training sample with pid -1; there is no query / gallery split.

``identities:PATH`` holds one sub-folder per identity (a labelled source or evaluation set).
Every image is a training sample (pids: the sorted identity folder names, relabelled
``0..P-1``); query and gallery are drawn from the same images by the seeded rule of
:func:`split_query_gallery`: one query per (identity, camera) pair, the rest gallery.

The camera rule (both layouts):

* default: the first folder level that is not the identity, i.e. ``PATH/CAMERA/...`` for
  ``folder:`` and ``PATH/IDENTITY/CAMERA/...`` for ``identities:``;
* ``camera_regex`` (``DATASETS.FOLDER.CAMERA_REGEX``): ``re.search`` on the file name; the
  camera is the first group (or the whole match without groups).

Camera names are sorted (numerically when every name is an integer) and numbered ``0..C-1``.
A file the rule cannot give a camera raises :class:`DatasetLayoutError` naming it; a single
camera is a warning (cross-camera evaluation and camera-aware methods then have nothing to
work with). Files that do not open as images are listed in one warning and skipped.
"""
from __future__ import annotations

import logging
import os
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from reid.data.datasets.base import DatasetLayoutError, ReIDDataset, Sample
from reid.data.datasets.registry import DATASET_REGISTRY

logger = logging.getLogger(__name__)

FOLDER_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp"})
_SHOW_BAD = 50  # unreadable files named in the warning (one per line); the rest are counted


def find_images(root: Path) -> list[Path]:
    """Sorted image files under ``root``, recursively (hidden files and folders skipped).

    Args:
        root: an existing folder.

    Returns:
        Paths with an extension in :data:`FOLDER_EXTENSIONS` (any case), sorted.
    """
    out: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        for name in filenames:
            if not name.startswith(".") and os.path.splitext(name)[1].lower() in FOLDER_EXTENSIONS:
                out.append(Path(dirpath) / name)
    return sorted(out)


def is_readable_image(path: str | Path) -> bool:
    """Cheap check that ``path`` is an image file that is not cut short.

    Opens the header and runs PIL's ``verify()`` (structure check, no full decode). A JPEG
    whose last 64 bytes lack the end-of-image marker (a truncated download, or data appended
    after the image by some cameras) is decoded fully to tell the two apart. About a
    millisecond per file.
    """
    try:
        with Image.open(path) as img:
            fmt = img.format
            img.verify()
        if fmt == "JPEG":
            with open(path, "rb") as f:
                f.seek(0, os.SEEK_END)
                f.seek(max(0, f.tell() - 64))
                tail = f.read()
            if b"\xff\xd9" not in tail:
                with Image.open(path) as img:
                    img.load()
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        return False
    return True


def drop_unreadable(paths: list[Path], dataset: str) -> list[Path]:
    """``paths`` without the files that fail :func:`is_readable_image`; one warning lists them."""
    bad = [p for p in paths if not is_readable_image(p)]
    if not bad:
        return paths
    shown = "".join(f"\n  {p}" for p in bad[:_SHOW_BAD])
    more = f"\n  ... and {len(bad) - _SHOW_BAD} more" if len(bad) > _SHOW_BAD else ""
    logger.warning("%s: skipping %d unreadable image files (of %d):%s%s", dataset, len(bad),
                   len(paths), shown, more)
    bad_set = set(bad)
    return [p for p in paths if p not in bad_set]


def _sort_names(names: set[str]) -> list[str]:
    if all(n.lstrip("-").isdigit() for n in names):
        return sorted(names, key=int)
    return sorted(names)


def camera_names(paths: Sequence[Path], root: Path, *, level: int, regex: str,
                 dataset: str) -> list[str]:
    """The camera name of every image, by the camera rule (see the module docstring).

    Args:
        paths: image files under ``root``.
        root: the dataset folder.
        level: index of the camera folder in the path relative to ``root`` (0 for
            ``folder:``, 1 for ``identities:``); used when ``regex`` is empty.
        regex: camera pattern searched in the file name, or "".
        dataset: name for the error messages.

    Raises:
        DatasetLayoutError: a file the rule gives no camera (the message names it), or an
            invalid regex.
    """
    out = []
    if regex:
        try:
            pattern = re.compile(regex)
        except re.error as err:
            raise DatasetLayoutError(f"{dataset}: invalid camera regex {regex!r}: {err}") from None
        for p in paths:
            m = pattern.search(p.name)
            if m is None:
                raise DatasetLayoutError(
                    f"{dataset}: camera regex {regex!r} (DATASETS.FOLDER.CAMERA_REGEX) matches "
                    f"nothing in the file name of {p}")
            out.append(m.group(1) if pattern.groups else m.group(0))
        return out
    where = "PATH/CAMERA/..." if level == 0 else "PATH/IDENTITY/CAMERA/..."
    for p in paths:
        parts = p.relative_to(root).parts
        if len(parts) < level + 2:
            raise DatasetLayoutError(
                f"{dataset}: {p} is not inside a camera folder: the default camera rule reads "
                f"the camera from the folder in {where}; move the crops into one folder per "
                "camera or set DATASETS.FOLDER.CAMERA_REGEX to read it from the file name")
        out.append(parts[level])
    return out


def _scan(path: str | Path, dataset: str, *, level: int, regex: str, verify: bool
          ) -> tuple[Path, list[Path], list[int]]:
    root = Path(path).expanduser()
    if not root.is_dir():
        raise DatasetLayoutError(f"{dataset}: folder not found: {root}")
    paths = find_images(root)
    if not paths:
        raise DatasetLayoutError(
            f"{dataset}: no image under {root} (looked recursively for "
            f"{', '.join(sorted(FOLDER_EXTENSIONS))} files, any case)")
    if verify:
        paths = drop_unreadable(paths, dataset)
        if not paths:
            raise DatasetLayoutError(f"{dataset}: no readable image under {root}")
    names = camera_names(paths, root, level=level, regex=regex, dataset=dataset)
    order = _sort_names(set(names))
    cam_ids = {n: i for i, n in enumerate(order)}
    if len(order) == 1:
        logger.warning("%s: every image is from one camera (%s): cross-camera evaluation is "
                       "impossible and camera-aware methods have nothing to use", dataset,
                       order[0])
    logger.info("%s: %d images, %d cameras (%s)", dataset, len(paths), len(order),
                ", ".join(f"{n}={i}" for n, i in list(cam_ids.items())[:20])
                + (" ..." if len(order) > 20 else ""))
    return root, paths, [cam_ids[n] for n in names]


@DATASET_REGISTRY.register("folder")
def folder(path: str, name: str | None = None, camera_regex: str = "",
           verify: bool = True) -> ReIDDataset:
    """An unlabelled tree of crops (``folder:PATH``): train only, pid -1, no test split.

    Args:
        path: the folder (``build_dataset`` resolves it against the data root).
        name: dataset name in logs and results (default ``folder:PATH``).
        camera_regex: camera pattern on the file name; "" = first-level sub-folder.
        verify: check every file with :func:`is_readable_image` and skip the bad ones.

    Returns:
        A dataset with ``extra["unlabelled"] = True`` and empty query / gallery.
    """
    name = name or f"folder:{path}"
    root, paths, cams = _scan(path, name, level=0, regex=camera_regex, verify=verify)
    train: list[Sample] = [(str(p), -1, c) for p, c in zip(paths, cams, strict=True)]
    return ReIDDataset(name=name, root=str(root), train=train, query=[], gallery=[],
                       extra={"unlabelled": True})


def split_query_gallery(samples: Sequence[Sample], seed: int = 0
                        ) -> tuple[list[Sample], list[Sample]]:
    """One query per (identity, camera) pair, drawn with ``seed``; the rest is the gallery.

    Pairs are visited in sorted ``(pid, camid)`` order; for each, ``rng.integers(m)`` with
    ``rng = np.random.default_rng(seed)`` picks one of its ``m`` images (sorted by path). An
    identity seen by a single camera has no cross-camera match, so all its images go to the
    gallery (as distractors).

    Args:
        samples: ``(path, pid, camid)`` items.
        seed: seed of the draw.

    Returns:
        ``(query, gallery)`` in input order.
    """
    pairs: dict[tuple[int, int], list[str]] = {}
    for path, pid, cam in samples:
        pairs.setdefault((int(pid), int(cam)), []).append(str(path))
    cams_of: dict[int, set[int]] = {}
    for pid, cam in pairs:
        cams_of.setdefault(pid, set()).add(cam)
    rng = np.random.default_rng(seed)
    chosen: set[str] = set()
    for key in sorted(pairs):
        if len(cams_of[key[0]]) < 2:
            continue
        items = sorted(pairs[key])
        chosen.add(items[int(rng.integers(len(items)))])
    query = [s for s in samples if str(s[0]) in chosen]
    gallery = [s for s in samples if str(s[0]) not in chosen]
    return query, gallery


@DATASET_REGISTRY.register("identities")
def identities(path: str, name: str | None = None, camera_regex: str = "",
               verify: bool = True, split_seed: int = 0) -> ReIDDataset:
    """One sub-folder per identity (``identities:PATH``), labelled.

    Train holds every image (pids relabelled ``0..P-1`` over the sorted identity folder names);
    query / gallery come from :func:`split_query_gallery` with ``split_seed`` and keep the same
    pids.

    Args:
        path: the folder (``build_dataset`` resolves it against the data root).
        name: dataset name in logs and results (default ``identities:PATH``).
        camera_regex: camera pattern on the file name; "" = the folder below the identity.
        verify: check every file with :func:`is_readable_image` and skip the bad ones.
        split_seed: seed of the query draw (``DATASETS.FOLDER.SPLIT_SEED``).
    """
    name = name or f"identities:{path}"
    root, paths, cams = _scan(path, name, level=1, regex=camera_regex, verify=verify)
    for p in paths:
        if len(p.relative_to(root).parts) < 2:
            raise DatasetLayoutError(f"{name}: {p} is not inside an identity folder "
                                     "(expected PATH/IDENTITY/...)")
    ids = [p.relative_to(root).parts[0] for p in paths]
    pid_of = {n: i for i, n in enumerate(_sort_names(set(ids)))}
    samples: list[Sample] = [(str(p), pid_of[i], c) for p, i, c in zip(paths, ids, cams,
                                                                       strict=True)]
    query, gallery = split_query_gallery(samples, seed=split_seed)
    if not query:
        logger.warning("%s: no identity is seen by two cameras, so there is no query", name)
    return ReIDDataset(name=name, root=str(root), train=list(samples), query=query,
                       gallery=gallery, extra={"identity_names": _sort_names(set(ids))})
