"""GRID (Loy et al., 2009/2010): underground station, ``probe/`` and ``gallery/`` folders.

File names ``PPPP_C_*.jpeg`` (identity ``PPPP``, camera ``C`` 1-8). ``probe/`` holds 250
identities; ``gallery/`` the same 250 plus 775 images of identity ``0000``, distractors seen by
no probe. The 250 probe identities are split in half with ``split_seed``: train holds the probe
and gallery images of the train ids; test queries are the probe images of the test ids and the
gallery holds their gallery images plus every pid 0 distractor.
"""
from __future__ import annotations

import re

from reid.data.datasets.base import DatasetLayoutError, ReIDDataset
from reid.data.datasets.common import (
    find_dataset_dir,
    list_images,
    make_dataset,
    match_name,
    split_ids,
)
from reid.data.datasets.registry import DATASET_REGISTRY

GRID_NAME = re.compile(r"^(\d+)_(\d+)_")


def _parse(folder, expected: str) -> list[tuple[str, int, int]]:
    out = []
    for path in list_images(folder):
        m = match_name(GRID_NAME, path, "grid", expected)
        pid, cam = int(m.group(1)), int(m.group(2))
        if cam < 1:
            raise DatasetLayoutError(f"grid: camera numbers start at 1, got {cam} in {path}")
        out.append((str(path), pid, cam - 1))
    return out


@DATASET_REGISTRY.register("grid")
def grid(root: str, split_seed: int = 0) -> ReIDDataset:
    """GRID under ``root/grid/underground_reid`` (or ``root/grid``).

    Counts with the full release: 125 train ids (250 images), 125 queries, 900 gallery
    images (125 + 775 distractors), cameras 0..7.
    """
    expected_name = "PPPP_C_*.jpeg, e.g. 0001_1_25004_107_32_106_221.jpeg"
    base = find_dataset_dir(
        root, "grid", ["grid/underground_reid", "grid"], ["probe", "gallery"],
        ["grid/underground_reid/probe/    images " + expected_name,
         "grid/underground_reid/gallery/  images " + expected_name + " (PPPP 0000: distractor)"],
    )
    probe = _parse(base / "probe", expected_name)
    gal = _parse(base / "gallery", expected_name)
    ids = {pid for _, pid, _ in probe if pid != 0}
    if len(ids) < 2:
        raise DatasetLayoutError(f"grid: fewer than 2 probe identities in {base / 'probe'}")
    train_ids, test_ids = split_ids(ids, split_seed)
    train_set, test_set = set(train_ids), set(test_ids)
    train = [s for s in probe + gal if s[1] in train_set]
    query = [s for s in probe if s[1] in test_set]
    gallery = [s for s in gal if s[1] in test_set or s[1] == 0]
    return make_dataset("grid", base, train, query, gallery, extra={"split_seed": split_seed})
