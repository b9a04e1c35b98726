"""CUHK01 (Li et al., ACCV 2012): 971 identities x 4 images (``PPPPKKK.png``), 2 cameras.

Two layouts are auto-detected, both giving the same samples:

* classic release: ``root/cuhk01/campus/PPPPKKK.png`` (used when ``campus/`` exists);
* the flat shared copy: ``root/cuhk01/PPPPKKK.png``.

``KKK`` 001-002 are camera A (camid 0), 003-004 camera B (camid 1). Split: by default the
project's deterministic rule (``/work/shared/data/README.md``): even identities train, odd
identities test (485 / 486); with an integer ``split_seed`` a random half of the identities
(485) is the train set instead. Test queries: for every test identity and camera, its image with
the smallest ``KKK``; the gallery holds the other test images.
"""
from __future__ import annotations

import re
from pathlib import Path

from reid.data.datasets.base import DatasetLayoutError, ReIDDataset
from reid.data.datasets.common import (
    dataset_candidates,
    dataset_top,
    layout_error,
    list_images,
    make_dataset,
    match_name,
    query_first_per_camera,
    split_ids,
)
from reid.data.datasets.registry import DATASET_REGISTRY

CUHK01_NAME = re.compile(r"^(\d{4})(\d{3})\.png$", re.IGNORECASE)


@DATASET_REGISTRY.register("cuhk01")
def cuhk01(root: str, split_seed: int | None = None) -> ReIDDataset:
    """CUHK01 from ``root/cuhk01/campus/`` or the flat ``root/cuhk01/`` (see the module doc).

    Args:
        root: data root.
        split_seed: None for the even/odd identity rule, an int for a seeded random half split.

    Counts (full set, default split): train 485 ids / 1,940 images; query 972 images and
    gallery 972 images of 486 ids; 2 cameras everywhere.
    """
    default = Path(root).expanduser() / "cuhk01"
    own = dataset_top(root, "cuhk01")  # a user's own path (cuhk01:PATH), else the default
    tops = [own] if own != default else [Path(root).expanduser() / folder for folder in
                                         dataset_candidates("cuhk01", ["cuhk01"])]
    expected = [
        "cuhk01/campus/PPPPKKK.png   (classic release), or",
        "cuhk01/PPPPKKK.png          (flat copy); KKK 001-002 camera A, 003-004 camera B",
    ]
    root_dir, tried = None, []
    for top in tops:
        if (top / "campus").is_dir():
            root_dir = top / "campus"
        elif top.is_dir() and any(p.suffix.lower() == ".png" for p in list_images(top)):
            root_dir = top
        if root_dir is not None:
            break
        note = "no such folder" if not top.is_dir() else "no campus/ folder and no PNG images"
        tried.append(f"{top} ({note})")
    if root_dir is None:
        raise layout_error("cuhk01", "layout not found", tried, expected)
    items = []
    for path in list_images(root_dir):
        m = match_name(CUHK01_NAME, path, "cuhk01", "PPPPKKK.png, e.g. 0001001.png")
        pid, k = int(m.group(1)), int(m.group(2))
        if not 1 <= k <= 4:
            raise DatasetLayoutError(f"cuhk01: image index {k} not in 1-4 in {path}")
        items.append((str(path), pid, 0 if k <= 2 else 1, k))
    ids = {s[1] for s in items}
    if split_seed is None:
        train_set = {p for p in ids if p % 2 == 0}
    else:
        train_set = set(split_ids(ids, split_seed)[0]) if len(ids) >= 2 else set()
    train = [s[:3] for s in items if s[1] in train_set]
    query, gallery = query_first_per_camera([s for s in items if s[1] not in train_set])
    return make_dataset(
        "cuhk01", root_dir, train, query, gallery,
        extra={"split": "parity" if split_seed is None else f"seed {split_seed}"},
    )
